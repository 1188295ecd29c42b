#!/usr/bin/env python3
"""Fail on any internal link of a built HTML site that does not resolve.

Usage::

    python scripts/check_links.py [DIR]     # DIR defaults to docs/_build/html

Every ``href`` and ``src`` of every ``.html`` file under DIR is read (with the standard
library's ``html.parser``, so a link the Sphinx build let through as raw text, such as
``<a href="SECURITY.rst">``, is read like any other). A link with a scheme (``https:``,
``mailto:``, ...) or a host (``//example.org``) is external and left alone. Every other link
must name a file inside DIR (a directory stands for its ``index.html``), and a fragment
(``page.html#id``, ``#id``) must be an ``id`` (or an ``<a name>``) of the HTML page it names.

Prints one line per broken link (``page.html:line: link: reason``) and a summary; exits 1 when
there is at least one, 0 otherwise.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / "docs" / "_build" / "html"
LINK_ATTRIBUTES = frozenset({"href", "src"})


@dataclass(frozen=True)
class Link:
    page: Path
    line: int
    target: str


@dataclass(frozen=True)
class Broken:
    link: Link
    reason: str

    def __str__(self) -> str:
        return f"{self.link.page}:{self.link.line}: {self.link.target}: {self.reason}"


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[int, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name == "id" or (tag == "a" and name == "name"):
                self.ids.add(value)
            elif name in LINK_ATTRIBUTES:
                self.links.append((self.getpos()[0], value))

    handle_startendtag = handle_starttag


@dataclass
class _Page:
    ids: set[str]
    links: list[tuple[int, str]]


def _parse(path: Path) -> _Page:
    parser = _PageParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    parser.close()
    return _Page(parser.ids, parser.links)


def _is_external(target: str) -> bool:
    parts = urlsplit(target)
    return bool(parts.scheme or parts.netloc)


def _resolve(root: Path, page: Path, path: str) -> Path | None:
    """The file a relative URL path of ``page`` names, or None when it leaves ``root``."""
    if path.startswith("/"):
        relative = PurePosixPath(path.lstrip("/"))
    else:
        relative = PurePosixPath(page.parent.relative_to(root).as_posix()) / path
    parts: list[str] = []
    for part in relative.parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(part)
    return root.joinpath(*parts)


def _pages(root: Path) -> Iterator[Path]:
    yield from sorted(root.rglob("*.html"))


def check(root: Path) -> tuple[list[Broken], int]:
    """Check every page under ``root``: the broken links, and how many links were checked."""
    root = root.resolve()
    parsed: dict[Path, _Page] = {}

    def page_of(path: Path) -> _Page:
        if path not in parsed:
            parsed[path] = _parse(path)
        return parsed[path]

    broken: list[Broken] = []
    checked = 0
    for page in _pages(root):
        for line, target in page_of(page).links:
            target = target.strip()
            if not target or _is_external(target):
                continue
            checked += 1
            link = Link(page.relative_to(root), line, target)
            parts = urlsplit(target)
            if parts.path:
                resolved = _resolve(root, page, unquote(parts.path))
                if resolved is None:
                    broken.append(Broken(link, "leaves the site"))
                    continue
                if resolved.is_dir():
                    resolved = resolved / "index.html"
                if not resolved.is_file():
                    broken.append(Broken(link, "no such file"))
                    continue
            else:
                resolved = page
            fragment = unquote(parts.fragment)
            if fragment and resolved.suffix == ".html" and fragment not in page_of(resolved).ids:
                where = "this page" if resolved == page else resolved.relative_to(root).as_posix()
                broken.append(Broken(link, f"no id {fragment!r} in {where}"))
    return broken, checked


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", nargs="?", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    root: Path = args.root
    if not root.is_dir():
        print(f"check_links: {root} is not a directory (build the docs first)", file=sys.stderr)
        return 2
    pages = sum(1 for _ in _pages(root))
    if not pages:
        print(f"check_links: no HTML page under {root}", file=sys.stderr)
        return 2
    broken, checked = check(root)
    for item in broken:
        print(item)
    print(
        f"check_links: {checked} internal links in {pages} pages, {len(broken)} broken",
        file=sys.stderr if broken else sys.stdout,
    )
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
