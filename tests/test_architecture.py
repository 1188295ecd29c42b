"""docs/architecture.rst says what each module may import: hold the code to it.

The page has one section per module (its heading names the module, e.g. ````tokens````) with
a ``:May import:`` field listing the package's modules it may import (``nothing`` for none).
Every module of the package with code in it must have a section, every section must name a
module that exists, and no module may import (at the top or inside a function) a module of
the package its section does not allow.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "django_pagero_oauth"
PAGE = REPO / "docs" / "architecture.rst"

HEADING = re.compile(r"^(?P<title>\S.*)\n-{3,}$", re.MULTILINE)
LITERAL = re.compile(r"``([\w.]+)``")
FIELD = re.compile(r"^:May import:(?P<value>.*(?:\n[ \t]+.*)*)", re.MULTILINE)


def module_name(path: Path) -> str:
    """``tokens`` for django_pagero_oauth/tokens.py, ``""`` for the package itself."""
    parts = list(path.relative_to(REPO / PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def has_code(tree: ast.Module) -> bool:
    body = tree.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring
    return bool(body)


def package_imports(path: Path, tree: ast.Module) -> set[str]:
    """The package's modules ``path`` imports, by their short names."""
    name = module_name(path)
    parts = name.split(".") if name else []
    here = parts if path.name == "__init__.py" else parts[:-1]
    modules = {module_name(p) for p in (REPO / PACKAGE).rglob("*.py")}
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and (node.module + ".").startswith(PACKAGE + "."):
                target = node.module.split(".")[1:]
            else:
                continue
            module = ".".join(target)
            # ``from . import tokens`` imports a module; ``from .tokens import x`` a name.
            for alias in node.names:
                candidate = ".".join([*target, alias.name])
                found.add(candidate if candidate in modules else module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if (alias.name + ".").startswith(PACKAGE + "."):
                    found.add(".".join(alias.name.split(".")[1:]))
    found.discard(name)
    return found


@functools.cache
def code_modules() -> dict[str, set[str]]:
    result = {}
    for path in sorted((REPO / PACKAGE).rglob("*.py")):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if has_code(tree):
            result[module_name(path)] = package_imports(path, tree)
    return result


@functools.cache
def page_sections() -> dict[str, set[str]]:
    """Module -> what it may import, as the page says."""
    text = PAGE.read_text(encoding="utf-8")
    headings = list(HEADING.finditer(text))
    sections: dict[str, set[str]] = {}
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        body = text[heading.end() : end]
        names = ["" if name == PACKAGE else name for name in LITERAL.findall(heading["title"])]
        field = FIELD.search(body)
        assert names, f"section {heading['title']!r} names no module"
        assert field, f"section {heading['title']!r} has no ':May import:' line"
        value = field["value"].strip()
        allowed = set() if value == "nothing" else set(LITERAL.findall(value))
        for name in names:
            sections[name] = allowed
    return sections


def test_every_module_has_a_section_and_every_section_a_module() -> None:
    modules, sections = set(code_modules()), set(page_sections())
    assert modules - sections == set(), "modules without a section in docs/architecture.rst"
    assert sections - modules == set(), "sections of docs/architecture.rst naming no module"


@pytest.mark.parametrize("module", sorted(code_modules()), ids=lambda name: name or PACKAGE)
def test_a_module_imports_only_what_the_page_allows(module: str) -> None:
    allowed = page_sections().get(module, set())
    imported = code_modules()[module]
    assert imported - allowed == set(), (
        f"{module or PACKAGE} imports modules docs/architecture.rst does not allow it"
    )


def test_the_page_allows_nothing_a_module_does_not_import() -> None:
    """A stale ``May import`` entry would hide a new dependency behind an old one."""
    modules = code_modules()
    stale = {
        name: sorted(allowed - modules.get(name, set()))
        for name, allowed in page_sections().items()
        if allowed - modules.get(name, set())
    }
    # testing.views and testing.urls share a section: their union is what it allows.
    shared = modules.get("testing.views", set()) | modules.get("testing.urls", set())
    for name in ("testing.views", "testing.urls"):
        if name in stale and not set(stale[name]) - shared:
            del stale[name]
    assert stale == {}


# How big a piece of the package may grow before it has to be split: a module a reader can
# hold in mind, a function that fits on a screen.
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 50


def package_files() -> list[Path]:
    return [
        path
        for path in sorted((REPO / PACKAGE).rglob("*.py"))
        if "migrations" not in path.relative_to(REPO / PACKAGE).parts
    ]


def test_no_module_is_longer_than_the_limit() -> None:
    long = {
        str(path.relative_to(REPO)): lines
        for path in package_files()
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}


def test_no_function_is_longer_than_the_limit() -> None:
    long = {}
    for path in package_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(REPO)}:{node.lineno} {node.name}"] = lines
    assert long == {}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, set())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_import_cycles_are_found() -> None:
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle() -> None:
    """Counting imports inside functions too: a cycle there is a cycle of design."""
    graph = {
        name or PACKAGE: {t or PACKAGE for t in targets} for name, targets in code_modules().items()
    }
    assert import_cycles(graph) == []
