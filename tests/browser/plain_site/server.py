"""Serving the plain site as production does: gunicorn (threads), over HTTP or over HTTPS with a
self-signed certificate made here, against the bundled mock Pagero server on a real socket.

``start_plain_site()`` migrates a fresh SQLite file, creates the ``admin`` superuser, starts
gunicorn in its own process group and waits until the login page answers; ``PlainSite.stop()``
ends it. The mock runs in the test process (``MockPageroServer``, a thread), so a test can read
its counters and queue faults directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from django_pagero_oauth.testing.mock import MockPageroServer

from ...tls import self_signed_certificate
from ..conftest import ALLOWED_HOST, REPO_ROOT, Operator, free_port, stop, wait_until_serving

SETTINGS_MODULE = "tests.browser.plain_site.settings"
PACKAGE_TEMPLATES = REPO_ROOT / "django_pagero_oauth" / "templates"
ADMIN_USER = ("admin", "admin-password")


def site_env(database: Path, pagero: dict[str, Any], *, https: bool) -> dict[str, str]:
    """The server's environment: nothing of the developer's Django or Pagero settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PAGERO_", "DJANGO_", "DEMO_", "PLAIN_SITE_"))
        and key not in ("DATABASE_URL", "PYTHONPATH")
    }
    env.update(
        DJANGO_SETTINGS_MODULE=SETTINGS_MODULE,
        PYTHONPATH=str(REPO_ROOT),
        PYTHONUNBUFFERED="1",
        PLAIN_SITE_DATABASE=str(database),
        PLAIN_SITE_PAGERO=json.dumps(pagero),
        PLAIN_SITE_HTTPS="1" if https else "",
    )
    return env


#: Run by the operator (``django-admin shell``) once the site is up.
SETUP_SCRIPT = """
from django.contrib.auth import get_user_model
get_user_model().objects.create_superuser(USERNAME, password=PASSWORD)
result = True
"""


@dataclass
class PlainSite:
    """The running plain site, its mock Pagero, and an operator shell in its environment."""

    url: str  # http(s)://127.0.0.1:PORT, no trailing slash
    https: bool
    mock: MockPageroServer
    operator: Operator
    log: Path
    process: subprocess.Popen[bytes]
    http: requests.Session = field(default_factory=requests.Session)

    def run(self, script: str, **names: str) -> Any:
        """Execute ``script`` in the site's environment; the ``result`` it set."""
        return self.operator.run(script, **names)

    def stop(self) -> None:
        stop(self.process)
        self.operator.close()
        self.mock.stop()
        self.http.close()


def start_plain_site(directory: Path, *, https: bool) -> PlainSite:
    """Migrate, start gunicorn (HTTPS: with a new self-signed certificate), create ``admin``."""
    mock = MockPageroServer(host=ALLOWED_HOST).start()
    pagero = {**mock.settings(), "SIGN_IN_ENABLED": True}
    database = directory / "db.sqlite3"
    env = site_env(database, pagero, https=https)
    log = directory / "server.log"
    migrate = subprocess.run(
        [sys.executable, "-m", "django", "migrate", "--verbosity", "0"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "tests.browser.plain_site.wsgi:application",
        "--bind",
        f"{ALLOWED_HOST}:{port}",
        "--workers",
        "1",
        "--worker-class",
        "gthread",
        "--threads",
        "8",
        "--graceful-timeout",
        "5",
        "--access-logfile",
        "-",
        "--error-logfile",
        "-",
    ]
    session = requests.Session()
    session.trust_env = False  # no proxy: 127.0.0.1 only
    if https:
        cert, key = self_signed_certificate(directory)
        command += ["--certfile", str(cert), "--keyfile", str(key)]
        session.verify = str(cert)  # this certificate and no other
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 (fixed arguments)
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
        )
    operator = Operator(env, directory / "operator.log", command=(sys.executable, "-m", "django"))
    site = PlainSite(
        url=f"{'https' if https else 'http'}://{ALLOWED_HOST}:{port}",
        https=https,
        mock=mock,
        operator=operator,
        log=log,
        process=process,
        http=session,
    )
    try:
        wait_until_serving(site.process, site, "gunicorn")
        assert site.run(SETUP_SCRIPT, USERNAME=ADMIN_USER[0], PASSWORD=ADMIN_USER[1])
    except BaseException:
        site.stop()
        print(log.read_text())
        raise
    return site
