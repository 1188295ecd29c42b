"""The GitHub workflows and .readthedocs.yaml say what .ci/run and tox.ini say.

.ci/run is the CI that runs on every submission; .github/workflows/ci.yml is the same CI on
GitHub's runners, .readthedocs.yaml builds the documentation that CI checks, and
.github/workflows/release.yml publishes what CI tested. ./scripts/lint_workflows validates the
files (schemas, zizmor); these tests keep them from drifting away from .ci/run and tox.ini.
"""

from __future__ import annotations

import configparser
import itertools
import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def run_lines(workflow: dict[str, Any]) -> list[str]:
    return [
        line.strip()
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        for line in step.get("run", "").splitlines()
    ]


def ci_run_lines() -> list[str]:
    return [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]


def scripts_run_by(lines: list[str]) -> set[str]:
    return {name for line in lines for name in re.findall(r"\./scripts/([\w.-]+)", line)}


def expand_envlist() -> list[str]:
    """tox.ini's envlist, braces expanded: py312-dj{52,60} is py312-dj52 and py312-dj60."""
    tox = configparser.ConfigParser(interpolation=None)
    tox.read(REPO / "tox.ini")
    envs = []
    for entry in tox["tox"]["envlist"].split():
        parts = re.split(r"\{([^}]*)\}", entry)
        choices = [[part] if i % 2 == 0 else part.split(",") for i, part in enumerate(parts)]
        envs += ["".join(combination) for combination in itertools.product(*choices)]
    return envs


def test_the_test_matrix_is_tox_ini_s_on_both_databases() -> None:
    job = load(WORKFLOWS / "ci.yml")["jobs"]["tests"]
    matrix = job["strategy"]["matrix"]

    python_envs = [env for env in expand_envlist() if env.startswith("py")]
    assert matrix["toxenv"] == python_envs
    assert matrix["database"] == ["sqlite", "postgres"]
    pythons = {entry["toxenv"]: entry["python"] for entry in matrix["include"] if "toxenv" in entry}
    assert pythons == {env: f"3.{env[3:].split('-')[0]}" for env in python_envs}
    (postgres,) = [entry for entry in matrix["include"] if entry.get("database") == "postgres"]
    assert postgres["database_url"] in "\n".join(ci_run_lines())
    assert set(job["services"]) == {"postgres", "redis"}
    assert 'tox -- -m "not browser"' in run_lines({"jobs": {"tests": job}})


def test_the_workflow_runs_every_script_of_ci_run_and_no_other() -> None:
    # ./scripts/test runs through run_tests() in .ci/run; the other steps call their script.
    in_ci_run = scripts_run_by(ci_run_lines()) | {"test"}
    in_workflow = scripts_run_by(run_lines(load(WORKFLOWS / "ci.yml")))

    assert in_workflow == in_ci_run, (
        "a step of .ci/run has no job in .github/workflows/ci.yml, or the other way round"
    )


def test_read_the_docs_builds_with_the_command_ci_runs() -> None:
    config = load(REPO / ".readthedocs.yaml")
    docs = re.compile(r"\./scripts/docs(\s.*)?")
    ci_docs = [line for line in ci_run_lines() if docs.fullmatch(line)]
    workflow_docs = [line for line in run_lines(load(WORKFLOWS / "ci.yml")) if docs.fullmatch(line)]

    commands = config["build"]["commands"]
    assert ci_docs == workflow_docs == [commands[0]]
    # scripts/docs writes the site where Read the Docs then takes it from.
    assert "docs docs/_build/html" in (REPO / "scripts" / "docs").read_text()
    assert commands[1:] == [
        'mkdir -p "$READTHEDOCS_OUTPUT"',
        'cp -r docs/_build/html "$READTHEDOCS_OUTPUT/html"',
    ]
    assert config["build"]["tools"]["python"] == "3.11"


def test_a_version_tag_publishes_by_trusted_publishing_what_ci_tested() -> None:
    release = load(WORKFLOWS / "release.yml")
    jobs = release["jobs"]

    assert release["on"]["push"] == {"tags": ["v*"]}
    assert release["permissions"] == {}
    assert jobs["ci"]["uses"].endswith("/.github/workflows/ci.yml")
    assert "workflow_call" in load(WORKFLOWS / "ci.yml")["on"]
    assert jobs["build"]["needs"] == "ci"
    build = run_lines({"jobs": {"build": jobs["build"]}})
    assert "twine check --strict dist/*" in build
    assert "python scripts/check_wheel.py --install dist" in build

    publish = jobs["pypi"]
    assert publish["needs"] == "build"
    assert publish["environment"]["name"] == "pypi"
    assert publish["permissions"] == {"id-token": "write"}
    (step,) = [step for step in publish["steps"] if "gh-action-pypi-publish" in step["uses"]]
    assert "with" not in step, "no password, no token: trusted publishing"
    # Only the publishing jobs get an OIDC token, and nothing else.
    publishing = {name for name, job in jobs.items() if "id-token" in job.get("permissions", {})}
    assert publishing == {"pypi", "testpypi"}
    assert jobs["testpypi"]["permissions"] == {"id-token": "write"}
    assert jobs["testpypi"]["environment"]["name"] == "testpypi"


def test_every_action_is_pinned_to_a_commit() -> None:
    for path in sorted(WORKFLOWS.glob("*.yml")):
        for line in path.read_text().splitlines():
            match = re.match(r"\s*(?:- )?uses: (\S+)(.*)", line)
            if not match or match[1].startswith(("$/", "./")):
                continue
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40}", match[1]), (path.name, line)
            assert re.fullmatch(r" # v\d+(\.\d+)*", match[2]), (path.name, line)


def test_no_checkout_keeps_its_credentials() -> None:
    checkouts = [
        step
        for path in sorted(WORKFLOWS.glob("*.yml"))
        for job in load(path)["jobs"].values()
        for step in job.get("steps", [])
        if step.get("uses", "").startswith("actions/checkout@")
    ]
    assert checkouts
    for step in checkouts:
        assert step["with"]["persist-credentials"] is False
