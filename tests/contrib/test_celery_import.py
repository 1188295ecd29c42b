"""``django_pagero_oauth.contrib.celery`` imported before Django is set up, as a Celery app module
does: in fresh interpreters, with the docs' own ``proj/__init__.py`` and ``proj/celery.py``
(``docs/examples/background-jobs/``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = REPO_ROOT / "docs" / "examples" / "background-jobs"

SETTINGS = """
SECRET_KEY = "celery-import-test-" + "x" * 40
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django_pagero_oauth",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
PAGERO_OAUTH = {
    "CLIENT_ID": "id",
    "CLIENT_SECRET": "secret",
    "REDIRECT_URI": "https://www.example.com/pagero/callback/",
}
CELERY_BROKER_URL = "memory://"
"""


def run(code: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    environ["PYTHONPATH"] = os.pathsep.join([str(cwd), str(REPO_ROOT)])
    environ.update(env)
    return subprocess.run(  # noqa: S603 (this interpreter, fixed code)
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_module_imports_without_django_set_up(tmp_path: Path) -> None:
    result = run(
        """
        import sys

        from django.apps import apps

        from django_pagero_oauth.contrib.celery import keep_alive_schedule

        assert not apps.ready
        assert "django_pagero_oauth.models" not in sys.modules
        entry = keep_alive_schedule(hour="4")
        print(entry["task"], entry["schedule"])
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("django_pagero_oauth.refresh_tokens <crontab: 17 4 "), (
        result.stdout
    )


def test_the_documented_celery_layout_passes_manage_py_check(tmp_path: Path) -> None:
    """``proj/__init__.py`` imports ``proj/celery.py`` as the docs say: Django imports both
    while it loads ``proj.settings``, before any app is ready."""
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(EXAMPLES / "__init__.py", proj / "__init__.py")
    shutil.copy(EXAMPLES / "celery.py", proj / "celery.py")
    (proj / "settings.py").write_text(SETTINGS)

    result = run(
        """
        from django.core.management import execute_from_command_line

        execute_from_command_line(["manage.py", "check"])

        from proj import celery_app

        celery_app.loader.import_default_modules()
        assert "django_pagero_oauth.refresh_tokens" in celery_app.tasks
        entry = celery_app.conf.beat_schedule["pagero-keep-alive"]
        assert entry["task"] == "django_pagero_oauth.refresh_tokens", entry
        print("beat:", entry["task"])
        """,
        tmp_path,
        DJANGO_SETTINGS_MODULE="proj.settings",
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout
    assert "beat: django_pagero_oauth.refresh_tokens" in result.stdout
