"""What this proves: the package cannot be installed with a PyJWT that matches ``iss``
partially (2.10.0, CVE-2024-53861): ``setup.cfg`` requires 2.10.1 or newer, and the PyJWT in
use is one of those."""

from __future__ import annotations

import configparser
from importlib.metadata import version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

SETUP_CFG = Path(__file__).resolve().parents[2] / "setup.cfg"


def _pyjwt_requirement() -> Requirement:
    config = configparser.ConfigParser()
    config.read(SETUP_CFG)
    lines = config["options"]["install_requires"].splitlines()
    requirements = [Requirement(line) for line in lines if line.strip() and "#" not in line]
    (pyjwt,) = [req for req in requirements if req.name.lower() == "pyjwt"]
    return pyjwt


def test_the_pyjwt_requirement_excludes_the_partial_iss_match() -> None:
    specifier = _pyjwt_requirement().specifier
    assert not specifier.contains("2.10.0"), "PyJWT 2.10.0 matches iss partially"
    assert not specifier.contains("2.9.0")
    assert specifier.contains("2.10.1")


def test_the_installed_pyjwt_is_not_the_vulnerable_one() -> None:
    assert Version(version("PyJWT")) >= Version("2.10.1")
