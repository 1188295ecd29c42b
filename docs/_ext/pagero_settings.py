"""A Sphinx extension: the settings reference, generated from ``django_pagero_oauth.conf``.

``.. pagero-settings::`` writes one section per group of :data:`~django_pagero_oauth.conf.GROUPS`
and in it one ``.. setting::`` entry per :class:`~django_pagero_oauth.conf.Setting`: its name,
kind, default and description, straight from the code, so the reference cannot disagree with
it. ``:setting:`TIMEOUT``` links to an entry (and, with ``-n``, fails the build when there is
no such setting).
"""

from __future__ import annotations

import json
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles


def format_default(value: Any) -> str:
    """The default as a Python literal a reader can paste into ``PAGERO_OAUTH``."""
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def settings_rst() -> list[str]:
    """The reStructuredText of the whole reference."""
    from django_pagero_oauth.conf import GROUPS, SETTINGS

    lines: list[str] = []
    for group in GROUPS:
        lines += [group, "-" * len(group), ""]
        for setting in SETTINGS:
            if setting.group != group:
                continue
            lines += [
                f".. setting:: {setting.name}",
                "",
                f"   | Type: {setting.kind}",
                f"   | Default: ``{format_default(setting.default)}``",
                "",
                f"   {setting.description}",
                "",
            ]
    return lines


class PageroSettingsDirective(SphinxDirective):
    has_content = False

    def run(self) -> list[nodes.Node]:
        container = nodes.section()
        container.document = self.state.document
        source = StringList(settings_rst(), source="django_pagero_oauth/conf.py")
        nested_parse_with_titles(self.state, source, container)
        return container.children


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_object_type(
        "setting",
        "setting",
        indextemplate="pair: %s; setting",
    )
    app.add_directive("pagero-settings", PageroSettingsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
