"""scripts/check_links.py: the check over the built documentation finds every broken link.

CI runs it on docs/_build/html after the Sphinx build (./scripts/docs). Here it runs on small
sites written for each case, so that each kind of broken link is proved to be caught.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "check_links.py"


@pytest.fixture(scope="module")
def check_links() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_links", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_links"] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["check_links"]
    return module


def site(root: Path, pages: dict[str, str]) -> Path:
    for name, body in pages.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"<!DOCTYPE html>\n<html><body>\n{body}\n</body></html>\n")
    return root


def broken(module: ModuleType, root: Path) -> list[tuple[str, str, str]]:
    found, _checked = module.check(root)
    return [(item.link.page.as_posix(), item.link.target, item.reason) for item in found]


def test_links_that_resolve_pass(check_links: ModuleType, tmp_path: Path) -> None:
    root = site(
        tmp_path,
        {
            "index.html": (
                '<h1 id="top">Top</h1><a name="legacy"></a>\n'
                '<a href="guide/page.html#step-1">step</a>\n'
                '<a href="#top">top</a> <a href="#legacy">old anchor</a> <a href="#">back</a>\n'
                '<a href="guide/">the guide</a> <a href="guide/page.html?x=1">query</a>\n'
                '<img src="_static/logo%20small.png"> <link href="_static/site.css">\n'
                '<a href="https://example.org/missing.html">external</a>\n'
                '<a href="mailto:security@example.org">mail</a> <a href="//cdn.example/x.js">cdn</a>'
            ),
            "guide/index.html": '<a href="../index.html#top">home</a>',
            "guide/page.html": '<section id="step-1"></section><a href="/index.html">root</a>',
        },
    )
    (root / "_static").mkdir()
    (root / "_static" / "logo small.png").write_bytes(b"png")
    (root / "_static" / "site.css").write_text("")

    found, checked = check_links.check(root)

    assert found == []
    assert checked == 10
    assert check_links.main([str(root)]) == 0


def test_a_raw_href_to_a_file_that_is_not_in_the_site_is_broken(
    check_links: ModuleType, tmp_path: Path
) -> None:
    # What an .rst link written for GitHub becomes once the file is included in a Sphinx page.
    root = site(
        tmp_path,
        {
            "index.html": '<a href="contributing.html">contributing</a>',
            "contributing.html": (
                '<p>see <a class="reference external" href="SECURITY.rst">SECURITY.rst</a>\n'
                'and <a class="reference external" href="docs/architecture.rst">architecture</a>'
                "</p>"
            ),
        },
    )

    assert broken(check_links, root) == [
        ("contributing.html", "SECURITY.rst", "no such file"),
        ("contributing.html", "docs/architecture.rst", "no such file"),
    ]


def test_an_anchor_missing_from_its_page_is_broken(check_links: ModuleType, tmp_path: Path) -> None:
    root = site(
        tmp_path,
        {
            "index.html": (
                '<h2 id="here">Here</h2>\n'
                '<a href="#here">ok</a>\n'
                '<a href="#nowhere">same page</a>\n'
                '<a href="other.html#renamed-section">other page</a>\n'
                '<a href="other.html#present">ok too</a>'
            ),
            # The id is on this page, but not on the page the link names.
            "other.html": '<h2 id="present">Present</h2><p id="nowhere-else"></p>',
            "third.html": '<p id="renamed-section"></p>',
        },
    )

    assert broken(check_links, root) == [
        ("index.html", "#nowhere", "no id 'nowhere' in this page"),
        ("index.html", "other.html#renamed-section", "no id 'renamed-section' in other.html"),
    ]


def test_src_and_links_out_of_the_site_are_broken(check_links: ModuleType, tmp_path: Path) -> None:
    root = site(
        tmp_path / "html",
        {"index.html": '<img src="_images/gone.png">\n<a href="../../etc/passwd">out</a>'},
    )

    assert broken(check_links, root) == [
        ("index.html", "_images/gone.png", "no such file"),
        ("index.html", "../../etc/passwd", "leaves the site"),
    ]


def test_main_names_each_broken_link_and_fails(
    check_links: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = site(tmp_path, {"index.html": '\n\n<a href="SECURITY.rst">policy</a>'})

    assert check_links.main([str(root)]) == 1

    out, err = capsys.readouterr()
    assert out == "index.html:5: SECURITY.rst: no such file\n"
    assert "1 internal links in 1 pages, 1 broken" in err


def test_main_refuses_a_site_that_was_not_built(check_links: ModuleType, tmp_path: Path) -> None:
    assert check_links.main([str(tmp_path / "missing")]) == 2
    assert check_links.main([str(tmp_path)]) == 2
