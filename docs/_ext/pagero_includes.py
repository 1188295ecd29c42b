"""A Sphinx extension: links between the repository's own files work in the built site too.

``CONTRIBUTING.rst``, ``SECURITY.rst`` and ``CHANGELOG.rst`` live at the root of the repository,
where GitHub shows them, and the site includes them (``docs/contributing.rst`` is
``.. include:: ../CONTRIBUTING.rst``). Their links are written for a reader on GitHub:
```SECURITY.rst <SECURITY.rst>`_`` names a file relative to the including file. In the site
the same link would point at a raw file that is not there.

While a page of the site includes such a file, this handler rewrites each relative link of its
text into a ``:doc:`` reference to the page that shows that file: a ``docs/<name>.rst`` is the
page ``<name>``, and a file that a page of the site includes is that page. A relative link to
anything else (``LICENSE``, a script) has no page in the site: it is a warning, which ``-W``
turns into a failed build. Links with a scheme (``https://...``) are left alone.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: An embedded-URI hyperlink reference: `text <target>`_ (or __ for an anonymous one).
LINK = re.compile(r"`(?P<text>[^`<]*?)\s*<(?P<target>[^<>`\s]+)>`__?")
INCLUDE = re.compile(r"^\.\. include::\s*(\S+)\s*$", re.MULTILINE)


def _included_files(srcdir: Path) -> dict[Path, str]:
    """Each file outside the source directory that a page includes, and that page's name."""
    pages: dict[Path, str] = {}
    for page in sorted(srcdir.rglob("*.rst")):
        if "_build" in page.relative_to(srcdir).parts:
            continue
        docname = page.relative_to(srcdir).with_suffix("").as_posix()
        for argument in INCLUDE.findall(page.read_text(encoding="utf-8")):
            target = Path(os.path.normpath(page.parent / argument))
            if not target.is_relative_to(srcdir):
                pages.setdefault(target, docname)
    return pages


def _docname_for(srcdir: Path, included: dict[Path, str], target: Path) -> str | None:
    if target in included:
        return included[target]
    if target.suffix == ".rst" and target.is_relative_to(srcdir) and target.is_file():
        return target.relative_to(srcdir).with_suffix("").as_posix()
    return None


def rewrite_links(
    app: Sphinx, relative_path: Path, parent_docname: str, content: list[str]
) -> None:
    srcdir = Path(app.srcdir).resolve()
    source = Path(os.path.normpath(srcdir / relative_path))
    if source.is_relative_to(srcdir):
        return  # a page of the site including a fragment: its links are Sphinx's already
    included = _included_files(srcdir)

    def replace(match: re.Match[str]) -> str:
        target = match["target"]
        if "://" in target or target.startswith(("mailto:", "#")) or target.endswith("_"):
            return match[0]
        path, _, fragment = target.partition("#")
        docname = _docname_for(srcdir, included, Path(os.path.normpath(source.parent / path)))
        if docname is None or fragment:
            logger.warning(
                "%s links to %r, which has no page in the documentation: link to a page of "
                "docs/ or to a file the documentation includes",
                relative_path.name,
                target,
                location=parent_docname,
            )
            return match[0]
        text = match["text"] or path
        return f":doc:`{text} </{docname}>`"

    content[0] = LINK.sub(replace, content[0])


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("include-read", rewrite_links)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
