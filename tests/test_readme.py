"""README.rst is the package index page: short, no images, its commands and links real.

The depth lives in docs/ (Sphinx). The README keeps what an index page needs, and the two
commands a newcomer runs (``scripts/fresh_clone_check`` runs the first one in CI).
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.rst").read_text(encoding="utf-8")


def test_the_readme_is_an_index_page() -> None:
    assert len(README.splitlines()) < 250
    # Relative image paths do not show on the package index, and there is no absolute URL.
    assert ".. image::" not in README
    assert ".. figure::" not in README


def test_the_two_commands_are_there() -> None:
    assert "\n    ./scripts/demo\n" in README
    assert "\n    ./scripts/test\n" in README
    for script in ("demo", "test", "docs"):
        assert (REPO / "scripts" / script).is_file()


def test_every_relative_link_names_a_file_of_the_repository() -> None:
    targets = re.findall(r"`[^`<]*<([^>]+)>`_", README)
    relative = [target for target in targets if "://" not in target]
    assert relative, "the README links to the docs pages"
    for target in relative:
        assert (REPO / target).is_file(), target


def test_every_docs_page_is_linked() -> None:
    pages = {
        path.relative_to(REPO).as_posix()
        for path in (REPO / "docs").glob("*.rst")
        if path.stem not in {"index", "changelog", "contributing", "releasing", "security"}
    }
    linked = set(re.findall(r"<(docs/[\w-]+\.rst)>`_", README))
    assert pages - linked == set()
