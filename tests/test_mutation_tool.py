"""Tests of ``scripts/mutation.py`` itself, on a tiny rule and its test (not on the package).

The mutants of the rule must all die under its full test; with the boundary assertion removed,
the boundary mutant survives and fails the run; an accepted equivalent counts as killed; an
accepted id that matches no mutant any more is reported as stale and fails the run.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "mutation.py"

RULE = '''
def allowed(age: int, limit: int) -> bool:
    """Ages up to and including the limit are allowed."""
    if age > limit:
        raise ValueError("too old")
    return True
'''

FULL_TEST = """
import pytest
from rule import allowed

def test_the_limit_is_allowed_one_more_is_not():
    assert allowed(10, 10) is True
    with pytest.raises(ValueError, match="too old"):
        allowed(11, 10)
"""

#: The same test without the boundary: ``age >= limit`` passes it.
WEAK_TEST = """
import pytest
from rule import allowed

def test_far_over_the_limit_is_not_allowed():
    assert allowed(1, 10) is True
    with pytest.raises(ValueError, match="too old"):
        allowed(99, 10)
"""

BOUNDARY = "rule:allowed | cmp | age > limit -> age >= limit | 0"


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mutation_tool", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_tool"] = module
    spec.loader.exec_module(module)
    return module


def project(tmp_path: Path, test: str, equivalents: dict[str, str] | None = None) -> Path:
    tmp_path.mkdir()
    (tmp_path / "rule.py").write_text(RULE)
    (tmp_path / "test_rule.py").write_text(textwrap.dedent(test))
    (tmp_path / "areas.toml").write_text(
        "[area.rule]\n"
        'targets = ["rule:allowed"]\n'
        f'tests = ["{tmp_path / "test_rule.py"}"]\n'
        "ci_sample = 3\n"
        'pytest_args = ["-p", "no:django"]\n'
    )
    entries = "".join(
        f'[[equivalent]]\nid = "{entry}"\nreason = "{reason}"\n\n'
        for entry, reason in (equivalents or {}).items()
    )
    (tmp_path / "equivalents.toml").write_text(entries)
    return tmp_path


def run(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(where)}
    return subprocess.run(  # noqa: S603 (this interpreter and the tool)
        [
            sys.executable,
            str(SCRIPT),
            "--areas-file",
            str(where / "areas.toml"),
            "--equivalents-file",
            str(where / "equivalents.toml"),
            "--jobs",
            "1",
            *args,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )


def test_mutant_ids_name_the_change_not_the_line(
    tool: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "rule.py").write_text(RULE)
    first = [mutant.id for mutant in tool.mutants_of("rule", "allowed")]
    (tmp_path / "rule.py").write_text("# moved down\n\n\n" + RULE)
    assert [mutant.id for mutant in tool.mutants_of("rule", "allowed")] == first
    assert BOUNDARY in first
    assert "rule:allowed | raise | raise ValueError('too old') -> pass | 0" in first
    assert "rule:allowed | return | return True -> return | 0" in first
    assert "rule:allowed | const | True -> False | 0" in first
    assert not any("Ages up to" in mutant for mutant in first)  # docstrings are not mutated
    assert not any("int" in mutant for mutant in first)  # nor annotations


def test_a_mutant_replaces_the_live_functions_code(
    tool: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "rule.py").write_text(RULE)
    monkeypatch.delitem(sys.modules, "rule", raising=False)
    import rule  # type: ignore[import-not-found]

    alias = rule.allowed  # a `from rule import allowed` copy sees the mutant too
    original = alias.__code__
    (boundary,) = [m for m in tool.mutants_of("rule", "allowed") if m.id == BOUNDARY]
    tool.apply(boundary)
    try:
        with pytest.raises(ValueError, match="too old"):
            alias(10, 10)
    finally:
        alias.__code__ = original
    assert alias(10, 10) is True


#: Only the boundary mutant runs: one child per run keeps this test quick.
ONLY_THE_BOUNDARY = ("--match", "| cmp |")


def test_a_survivor_fails_the_run_and_the_full_test_kills_it(tmp_path: Path) -> None:
    weak = run(project(tmp_path / "weak", WEAK_TEST), *ONLY_THE_BOUNDARY)
    assert weak.returncode == 1, weak.stdout + weak.stderr
    assert f"SURVIVED {BOUNDARY}" in weak.stdout
    assert "Survivors not listed as equivalent" in weak.stdout

    full = run(project(tmp_path / "full", FULL_TEST), *ONLY_THE_BOUNDARY)
    assert full.returncode == 0, full.stdout + full.stderr
    assert "SURVIVED" not in full.stdout
    assert "rule                 1      0         0      1  100.0%" in full.stdout


def test_an_accepted_equivalent_counts_as_killed_and_a_stale_one_fails(tmp_path: Path) -> None:
    equivalents = {BOUNDARY: "the test says so"}
    accepted = run(project(tmp_path / "accepted", WEAK_TEST, equivalents), *ONLY_THE_BOUNDARY)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "rule                 0      1         0      1  100.0%" in accepted.stdout

    stale_id = "rule:allowed | cmp | age < limit -> age <= limit | 0"
    stale = run(project(tmp_path / "stale", FULL_TEST, {stale_id: "no such comparison"}), "--list")
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert "Stale entries" in stale.stdout and stale_id in stale.stdout
    assert f"rule: {BOUNDARY}" in stale.stdout
