#!/usr/bin/env python3
"""Check that the built distributions of django-pagero-oauth hold what they must.

Usage::

    python scripts/check_wheel.py [--install] PATH [PATH ...]

Each PATH is a wheel (``.whl``), an sdist (``.tar.gz``) or a directory holding
them (``python -m build --outdir DIR`` output). For a wheel it asserts that

* ``django_pagero_oauth/py.typed`` is there,
* ``django_pagero_oauth/migrations/0001_initial.py`` is there,
* at least one template is under ``django_pagero_oauth/templates/django_pagero_oauth/``,
* the locale directory is there if the source tree has one,
* every other file of the source package (templates, locale, static, modules)
  made it in, and nothing from tests/, example_project/ or benchmarks/ did,
* the ``pytest11`` entry point names a module that is in the wheel.

For an sdist it asserts that the files needed to build and document the
package (README, LICENSE, setup.cfg, ...) and the migrations are there.

With ``--install`` the wheel is also installed into a new, empty virtual
environment (its dependencies come from the package index), and a smoke test
runs there, outside the source tree: import the app, ``django.setup()``,
load the migrations, ``migrate`` an in-memory SQLite database and compile every
shipped template.

Exits non-zero with a message naming each problem.
"""

from __future__ import annotations

import argparse
import configparser
import os
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import venv
import zipfile
from pathlib import Path, PurePosixPath

PACKAGE = "django_pagero_oauth"
DIST = "django-pagero-oauth"
REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_PACKAGE = REPO_ROOT / PACKAGE

REQUIRED_WHEEL_FILES = (
    f"{PACKAGE}/__init__.py",
    f"{PACKAGE}/py.typed",
    f"{PACKAGE}/migrations/__init__.py",
    f"{PACKAGE}/migrations/0001_initial.py",
)
TEMPLATE_DIR = f"{PACKAGE}/templates/{PACKAGE}/"
FORBIDDEN_TOP_LEVEL = ("tests", "example_project", "benchmarks", "docs", "scripts")
REQUIRED_SDIST_FILES = (
    "PKG-INFO",
    "setup.cfg",
    "pyproject.toml",
    "README.rst",
    "LICENSE",
    "CHANGELOG.rst",
    f"{PACKAGE}/__init__.py",
    f"{PACKAGE}/py.typed",
    f"{PACKAGE}/migrations/0001_initial.py",
)


def _ignored(path: PurePosixPath) -> bool:
    """Files that are never expected in a distribution."""
    return (
        "__pycache__" in path.parts
        or path.suffix in {".pyc", ".pyo", ".pyd"}
        or any(part.startswith(".") for part in path.parts)
        or path.name.endswith("~")
    )


def source_package_files() -> set[str]:
    """Every file of the source package, as wheel member names."""
    if not SOURCE_PACKAGE.is_dir():
        return set()
    files = set()
    for path in SOURCE_PACKAGE.rglob("*"):
        if path.is_file():
            rel = PurePosixPath(path.relative_to(REPO_ROOT).as_posix())
            if not _ignored(rel):
                files.add(str(rel))
    return files


def check_wheel(wheel: Path) -> list[str]:
    problems: list[str] = []
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(
            (zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt")),
            "",
        )
        metadata = next(
            (zf.read(n).decode() for n in names if n.endswith(".dist-info/METADATA")),
            "",
        )

    for required in REQUIRED_WHEEL_FILES:
        if required not in names:
            problems.append(f"missing {required}")

    templates = sorted(n for n in names if n.startswith(TEMPLATE_DIR) and not n.endswith("/"))
    if not templates:
        problems.append(f"no template under {TEMPLATE_DIR}")

    source_locale = SOURCE_PACKAGE / "locale"
    has_locale = source_locale.is_dir() and any(p.is_file() for p in source_locale.rglob("*"))
    if has_locale and not any(n.startswith(f"{PACKAGE}/locale/") for n in names):
        problems.append(f"the source has {PACKAGE}/locale/ but the wheel has no locale files")

    missing = sorted(source_package_files() - names)
    if missing:
        problems.append(
            "files of the source package missing from the wheel "
            "(package_data / MANIFEST.in?):\n      " + "\n      ".join(missing)
        )

    leaked = sorted(n for n in names if PurePosixPath(n).parts[0] in FORBIDDEN_TOP_LEVEL)
    if leaked:
        problems.append("files that must not ship:\n      " + "\n      ".join(leaked[:20]))

    parser = configparser.ConfigParser()
    parser.read_string(entry_points)
    if not parser.has_option("pytest11", PACKAGE):
        problems.append("no pytest11 entry point named django_pagero_oauth")
    else:
        module = parser.get("pytest11", PACKAGE).split(":")[0].strip()
        path = module.replace(".", "/")
        if f"{path}.py" not in names and f"{path}/__init__.py" not in names:
            problems.append(f"the pytest11 entry point names {module}, which is not in the wheel")

    if "Requires-Dist: Django>=5.2" not in metadata:
        problems.append("METADATA does not require Django>=5.2")
    return problems


def check_sdist(sdist: Path) -> list[str]:
    problems: list[str] = []
    with tarfile.open(sdist) as tf:
        # Strip the leading "django_pagero_oauth-X.Y.Z/" directory.
        names = {PurePosixPath(*PurePosixPath(n).parts[1:]).as_posix() for n in tf.getnames()}
    for required in REQUIRED_SDIST_FILES:
        if required not in names:
            problems.append(f"missing {required}")
    if not any(n.startswith(TEMPLATE_DIR) for n in names):
        problems.append(f"no template under {TEMPLATE_DIR}")
    return problems


SMOKE_TEST = textwrap.dedent(
    """
    import importlib.metadata
    import pathlib

    import django
    from django.conf import settings

    import django_pagero_oauth as pkg

    location = pathlib.Path(pkg.__file__).resolve()
    assert "site-packages" in location.parts, f"imported from {location}, not the wheel"
    assert pkg.__version__ == importlib.metadata.version("django-pagero-oauth"), (
        pkg.__version__, importlib.metadata.version("django-pagero-oauth"))

    settings.configure(
        SECRET_KEY="check-wheel-smoke-test-" + "x" * 40,
        # What a site using the app has (the admin templates need contrib.admin).
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django_pagero_oauth",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                    "APP_DIRS": True}],
        USE_TZ=True,
    )
    django.setup()

    from django.core.management import call_command
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader
    from django.template.loader import get_template

    loader = MigrationLoader(connection)
    assert ("django_pagero_oauth", "0001_initial") in loader.disk_migrations, loader.disk_migrations
    call_command("migrate", verbosity=0)

    root = location.parent / "templates"
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html"))
    for name in names:
        get_template(name)
    assert (location.parent / "py.typed").is_file()
    own = [key for key in loader.disk_migrations if key[0] == "django_pagero_oauth"]
    print(f"smoke test passed: {pkg.__name__} {pkg.__version__}, "
          f"{len(own)} migration(s) applied, {len(names)} template(s) compiled")
    """
)


def install_and_smoke_test(wheel: Path) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="check-wheel-") as tmp:
        env_dir = Path(tmp) / "venv"
        print(f"  creating a fresh virtual environment in {env_dir}")
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        python = env_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        env.pop("DJANGO_SETTINGS_MODULE", None)
        print(f"  installing {wheel.name} and its dependencies")
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", str(wheel)], env=env, cwd=tmp
        )
        if result.returncode:
            return [f"pip could not install {wheel.name} (exit {result.returncode})"]
        # -I: isolated mode, so neither the cwd nor PYTHONPATH can put the
        # source tree ahead of the installed wheel.
        result = subprocess.run([str(python), "-I", "-c", SMOKE_TEST], env=env, cwd=tmp)
        if result.returncode:
            rc = result.returncode
            return [f"the smoke test of the installed {wheel.name} failed (exit {rc})"]
    return []


def collect(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(path.glob("*.whl")) + sorted(path.glob("*.tar.gz")))
        elif path.is_file():
            found.append(path)
        else:
            sys.exit(f"check_wheel: {raw}: no such file or directory")
    if not any(p.suffix == ".whl" for p in found):
        sys.exit(f"check_wheel: no wheel among {', '.join(paths)}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="wheel, sdist or directory holding them")
    parser.add_argument(
        "--install",
        action="store_true",
        help="also install the wheel into a fresh virtual environment and smoke-test it",
    )
    args = parser.parse_args(argv)

    failed = False
    for dist in collect(args.paths):
        if dist.name.endswith(".whl"):
            problems = check_wheel(dist)
            if not problems and args.install:
                problems = install_and_smoke_test(dist)
        elif dist.name.endswith(".tar.gz"):
            problems = check_sdist(dist)
        else:
            problems = [f"neither a wheel nor an sdist: {dist}"]
        if problems:
            failed = True
            print(f"FAIL {dist.name}:", file=sys.stderr)
            for problem in problems:
                print(f"    - {problem}", file=sys.stderr)
        else:
            print(f"ok   {dist.name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
