"""A Sphinx extension: resolve the short names the app's docstrings use.

The docstrings are written for a reader of the source, so they say
``:class:`PageroUnavailable``` in ``tokens.py`` (imported there from ``exceptions``) and
``:func:`django_pagero_oauth.get_valid_token``` (re-exported lazily by the package). Python's
domain looks such names up only in the current module. This handler resolves a reference the
domain could not, when exactly one documented object of ``django_pagero_oauth`` has that last
name (preferring the referring module's own). Anything else stays a missing reference, which
``-n`` turns into an error.
"""

from __future__ import annotations

from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment

PACKAGE = "django_pagero_oauth"


def resolve_short_name(
    app: Sphinx, env: BuildEnvironment, node: pending_xref, contnode: nodes.TextElement
) -> nodes.reference | None:
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    name = target.rsplit(".", 1)[-1]
    if name.startswith("_"):
        return None
    if "." in target and not target.startswith(PACKAGE + "."):
        return None
    domain: Any = env.get_domain("py")
    matches = [
        fullname
        for fullname in domain.objects
        if fullname.startswith(PACKAGE + ".") and fullname.rsplit(".", 1)[-1] == name
    ]
    module = node.get("py:module") or ""
    if len(matches) > 1 and module:
        own = [fullname for fullname in matches if fullname.startswith(module + ".")]
        matches = own or matches
    if len(matches) != 1:
        return None
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], matches[0], node, contnode
    )


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("missing-reference", resolve_short_name)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
