"""The example project, run the way a newcomer runs it: ``example_project/manage.py``.

Each test starts the project in a subprocess with its own SQLite file (so it does not depend on
the suite's database, SQLite or PostgreSQL) and no Pagero credentials, so the project serves the
mock Pagero server itself. The click-through drives a real ``runserver`` over HTTP with
``requests``: log in, connect through the mock's login page, see the API data, disconnect.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
MANAGE = REPO_ROOT / "example_project" / "manage.py"
STARTUP_DEADLINE = 60.0  # seconds; a bound on polling, not an expectation of speed


def example_env(database: Path, **extra: str) -> dict[str, str]:
    """The environment of a newcomer's shell: nothing about Pagero, Django or a .env file."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PAGERO_", "DJANGO_", "DEMO_"))
        and key not in ("DATABASE_URL", "SECRET_KEY", "DEBUG", "RUN_MAIN", "ALLOWED_HOSTS")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{database}",
        DEMO_ENV_FILE="",  # ignore a developer's example_project/.env
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def manage(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (fixed arguments)
        [sys.executable, str(MANAGE), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- setup only -----------------------------------------------------------------------------


@dataclass
class Prepared:
    """A database after ``demo --no-server --port 8123``, and what the command printed."""

    database: Path
    stdout: str

    def copy_to(self, directory: Path) -> Path:
        """A private copy (for one test: tests do not share data)."""
        target = directory / "db.sqlite3"
        shutil.copyfile(self.database, target)
        return target


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    """Migrating and hashing three passwords is the slow part of a start: do it once."""
    database = tmp_path_factory.mktemp("example") / "db.sqlite3"
    result = manage("demo", "--no-server", "--port", "8123", env=example_env(database))
    assert result.returncode == 0, result.stderr
    return Prepared(database=database, stdout=result.stdout)


def test_check_passes(tmp_path: Path) -> None:
    result = manage("check", "--fail-level", "WARNING", env=example_env(tmp_path / "db.sqlite3"))
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_demo_no_server_sets_up_database_and_users(prepared: Prepared, tmp_path: Path) -> None:
    assert "http://127.0.0.1:8123/" in prepared.stdout
    assert "demo / demo" in prepared.stdout
    assert "mock-pagero" in prepared.stdout
    database = prepared.copy_to(tmp_path)

    # Run again after someone changed a demo user: it is reset, nothing is duplicated, and
    # the password hashes that were right are kept (a new hash would end open sessions).
    with sqlite3.connect(database) as db:
        db.execute(
            "UPDATE auth_user SET is_active = 0, is_staff = 1, password = '!' "
            "WHERE username = 'demo'"
        )
        (admin_hash,) = db.execute(
            "SELECT password FROM auth_user WHERE username = 'admin'"
        ).fetchone()
    second = manage("demo", "--no-server", env=example_env(database))
    assert second.returncode == 0, second.stderr
    assert "http://127.0.0.1:8000/" in second.stdout

    with sqlite3.connect(database) as db:
        users = {
            row[0]: row[1:]
            for row in db.execute(
                "SELECT username, is_active, is_staff, is_superuser, password FROM auth_user"
            )
        }
        viewer_permissions = [
            row[0]
            for row in db.execute(
                "SELECT p.codename FROM auth_user_user_permissions up "
                "JOIN auth_permission p ON p.id = up.permission_id "
                "JOIN auth_user u ON u.id = up.user_id WHERE u.username = 'viewer'"
            )
        ]
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {name: flags[:3] for name, flags in users.items()} == {
        "demo": (1, 0, 0),
        "admin": (1, 1, 1),
        "viewer": (1, 1, 0),
    }
    assert users["admin"][3] == admin_hash
    assert users["demo"][3] != "!"  # usable again (the click-through logs in with it)
    assert viewer_permissions == ["view_pagerotoken"]
    assert "django_pagero_oauth_pagerotoken" in tables


SETTINGS_SCRIPT = """
import json
from django.conf import settings
from django.urls import Resolver404, resolve
try:
    resolve("/mock-pagero/oauth/v2/oauth-token")
    mounted = True
except Resolver404:
    mounted = False
print(json.dumps({"mounted": mounted, "debug": settings.DEBUG, "oauth": settings.PAGERO_OAUTH}))
"""


def example_settings(tmp_path: Path, **extra_env: str) -> dict[str, object]:
    result = manage("shell", "-c", SETTINGS_SCRIPT, env=example_env(tmp_path / "db", **extra_env))
    assert result.returncode == 0, result.stderr
    settings: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return settings


def test_without_credentials_the_mock_is_mounted_and_configured(tmp_path: Path) -> None:
    env_file = tmp_path / "demo.env"
    env_file.write_text("PAGERO_PKCE=true\nDEMO_PORT=9999\n")
    # The .env file is read; the environment wins over it.
    settings = example_settings(tmp_path, DEMO_ENV_FILE=str(env_file), DEMO_PORT="8124")
    base = "http://127.0.0.1:8124/mock-pagero"
    assert settings == {
        "mounted": True,
        "debug": True,
        "oauth": {
            "CLIENT_ID": "demo-client-id",
            "CLIENT_SECRET": "demo-client-secret",
            "AUTHORIZE_URL": f"{base}/oauth/v2/oauth-authorize",
            "TOKEN_URL": f"{base}/oauth/v2/oauth-token",
            "REVOKE_URL": f"{base}/oauth/v2/oauth-revoke",
            "API_BASE_URL": f"{base}/api",
            "ISSUER": base,
            "SIGN_IN_ENABLED": True,
            "PKCE": True,
        },
    }


def test_real_credentials_do_not_mount_the_mock(tmp_path: Path) -> None:
    settings = example_settings(
        tmp_path,
        PAGERO_CLIENT_ID="real-client",
        PAGERO_CLIENT_SECRET="real-secret",
        PAGERO_ENCRYPTION_KEYS="key-one,key-two",
        PAGERO_TIMEOUT="4.5",
    )
    assert settings == {
        "mounted": False,
        "debug": True,
        # Only what the environment set, typed: every other key keeps the app's default.
        "oauth": {
            "CLIENT_ID": "real-client",
            "CLIENT_SECRET": "real-secret",
            "TIMEOUT": 4.5,
            "ENCRYPTION_KEYS": ["key-one", "key-two"],
        },
    }


# --- the running site -----------------------------------------------------------------------


@dataclass
class Site:
    url: str
    log: Path
    database: Path

    def get(self, session: requests.Session, path: str, **kwargs: object) -> requests.Response:
        return session.get(urljoin(self.url, path), timeout=30, **kwargs)  # type: ignore[arg-type]

    def post(self, session: requests.Session, path: str, **kwargs: object) -> requests.Response:
        return session.post(urljoin(self.url, path), timeout=30, **kwargs)  # type: ignore[arg-type]


def start_site(
    tmp_path: Path, prepared: Prepared, *, port: int | None = None
) -> tuple[subprocess.Popen[bytes], Site]:
    """``manage.py demo --port N --noreload``, once it answers HTTP.

    The database is a copy of ``prepared`` (unless ``tmp_path`` has one already), so ``demo``
    runs its whole setup but finds nothing to migrate.
    """
    port = port or free_port()
    log = tmp_path / "server.log"
    database = tmp_path / "db.sqlite3"
    if not database.exists():
        prepared.copy_to(tmp_path)
    env = example_env(database)
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 (fixed arguments)
            [sys.executable, str(MANAGE), "demo", "--port", str(port), "--noreload"],
            cwd=REPO_ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    site = Site(url=f"http://127.0.0.1:{port}/", log=log, database=database)
    deadline = time.monotonic() + STARTUP_DEADLINE
    while True:
        try:
            requests.get(site.url, timeout=5)
            return process, site
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            stop(process)
            pytest.fail(f"the demo server did not answer in time:\n{log.read_text()}")
        try:
            process.wait(timeout=0.1)  # bounded readiness polling; notices an early exit
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"the demo server exited with {process.returncode}:\n{log.read_text()}")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def site(tmp_path: Path, prepared: Prepared) -> Iterator[Site]:
    process, site = start_site(tmp_path, prepared)
    try:
        yield site
    finally:
        stop(process)
        print(site.log.read_text())  # shown by pytest when the test failed


class FormParser(HTMLParser):
    """The fields and action of every form on a page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attributes.get("action") or "", "fields": {}})
        elif tag == "input" and self.forms and attributes.get("name"):
            fields = self.forms[-1]["fields"]
            assert isinstance(fields, dict)
            fields[attributes["name"]] = attributes.get("value") or ""


def forms_of(html: str) -> list[dict[str, object]]:
    parser = FormParser()
    parser.feed(html)
    return parser.forms


def csrf_of(html: str) -> str:
    for form in forms_of(html):
        fields = form["fields"]
        assert isinstance(fields, dict)
        if "csrfmiddlewaretoken" in fields:
            return str(fields["csrfmiddlewaretoken"])
    raise AssertionError("no CSRF token on the page")


def log_in(site: Site, session: requests.Session, username: str, password: str) -> None:
    page = site.get(session, "accounts/login/")
    response = site.post(
        session,
        "accounts/login/",
        data={
            "username": username,
            "password": password,
            "csrfmiddlewaretoken": csrf_of(page.text),
            "next": "/",
        },
        headers={"Referer": page.url},
        allow_redirects=False,
    )
    assert response.status_code == 302, response.text


def connect(site: Site, browser: requests.Session, publicid: str) -> None:
    """Connect to Pagero the way a person does: the site's login view, the mock's login page."""
    response = site.get(browser, "pagero/login/?next=/invoices/", allow_redirects=False)
    assert response.status_code == 302
    authorize = response.headers["Location"]
    assert authorize.startswith(f"{site.url}mock-pagero/oauth/v2/oauth-authorize?")
    query = parse_qs(urlsplit(authorize).query)
    assert query["client_id"] == ["demo-client-id"]
    assert query["redirect_uri"] == [f"{site.url}pagero/callback/"]

    login_page = browser.get(authorize, timeout=30)
    assert login_page.status_code == 200
    (form,) = forms_of(login_page.text)
    fields = dict(form["fields"])  # type: ignore[call-overload]
    fields.update(publicid=publicid, action="approve")
    response = browser.post(
        urljoin(login_page.url, str(form["action"])),
        data=fields,
        allow_redirects=False,
        timeout=30,
    )
    assert response.status_code == 302
    callback = response.headers["Location"]
    assert callback.startswith(f"{site.url}pagero/callback/?")
    assert parse_qs(urlsplit(callback).query)["iss"] == [f"{site.url}mock-pagero"]

    response = browser.get(callback, allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text
    assert response.headers["Location"] == "/invoices/"


def assert_invoices_page(site: Site, browser: requests.Session, publicid: str) -> None:
    invoices = site.get(browser, "invoices/", allow_redirects=False)
    assert invoices.status_code == 200
    assert "Demo Company AB" in invoices.text
    assert f"<code>{publicid}</code>" in invoices.text
    for number in ("INV-1001", "INV-1002", "INV-1003"):
        assert f"<td>{number}</td>" in invoices.text


def mock_counts(site: Site, browser: requests.Session) -> dict[str, int]:
    counts: dict[str, int] = site.get(browser, "mock-pagero/_mock/stats").json()["counts"]
    return counts


def test_click_through_connect_invoices_refresh_disconnect(site: Site) -> None:
    browser = requests.Session()

    # Anonymous: the protected page sends to the site's login page.
    response = site.get(browser, "invoices/", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "/accounts/login/?next=/invoices/"

    log_in(site, browser, "demo", "demo")
    home = site.get(browser, "")
    assert "Logged in as demo" in home.text
    assert "Connect to Pagero" in home.text
    assert 'href="/pagero/login/?next=/invoices/"' in home.text

    connect(site, browser, "acme-demo")

    # The protected page shows what the (mock) API returned for this company.
    assert_invoices_page(site, browser, "acme-demo")
    data = site.get(browser, "api/invoices.json", headers={"Accept": "application/json"})
    assert data.status_code == 200
    assert data.json()["publicid"] == "acme-demo"
    assert [d["number"] for d in data.json()["documents"]] == ["INV-1001", "INV-1002", "INV-1003"]
    home = site.get(browser, "")
    assert "Connected as <strong>acme-demo</strong>" in home.text
    assert mock_counts(site, browser)["refresh_token"] == 0

    # Ten minutes later (the access token has expired): the next page refreshes it once.
    with sqlite3.connect(site.database) as db:
        changed = db.execute(
            "UPDATE django_pagero_oauth_pagerotoken SET access_token_expires_at = ?",
            ("2000-01-01 00:00:00",),
        ).rowcount
    assert changed == 1
    assert_invoices_page(site, browser, "acme-demo")
    assert mock_counts(site, browser)["refresh_token"] == 1
    with sqlite3.connect(site.database) as db:
        (last_refreshed,) = db.execute(
            "SELECT last_refreshed FROM django_pagero_oauth_pagerotoken"
        ).fetchone()
    assert last_refreshed is not None

    # Disconnect (POST with CSRF): revoked at the mock, removed here.
    home = site.get(browser, "")
    response = site.post(
        browser,
        "pagero/disconnect/",
        data={"csrfmiddlewaretoken": csrf_of(home.text), "next": "/"},
        headers={"Referer": site.url},
        allow_redirects=False,
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = site.get(browser, "")
    assert "the connection was revoked and removed" in home.text
    assert "Connect to Pagero" in home.text

    # A fetch() caller now gets the decorator's 401 JSON, not a redirect.
    data = site.get(
        browser, "api/invoices.json", headers={"Accept": "application/json"}, allow_redirects=False
    )
    assert data.status_code == 401
    assert data.json() == {
        "error": "pagero_authorization_required",
        "login_url": "/pagero/login/?next=%2Fapi%2Finvoices.json",
    }
    response = site.get(browser, "invoices/", allow_redirects=False)
    assert response.status_code == 302
    assert response.headers["Location"] == "/pagero/login/?next=%2Finvoices%2F"

    counts = mock_counts(site, browser)
    assert counts["authorization_code"] == 1
    assert counts["refresh_token"] == 1
    assert counts["revoke"] == 1
    assert counts["api"] == 5  # me + documents, documents (JSON), me + documents

    # The staff user who may only view tokens gets into the admin.
    staff = requests.Session()
    log_in(site, staff, "viewer", "viewer")
    admin = site.get(staff, "admin/")
    assert admin.status_code == 200
    assert admin.url == f"{site.url}admin/"  # not bounced to the admin's login page


def test_restarted_demo_asks_to_connect_again(tmp_path: Path, prepared: Prepared) -> None:
    """The mounted mock forgets its tokens when the server restarts; the site copes."""
    process, site = start_site(tmp_path, prepared)
    try:
        browser = requests.Session()
        log_in(site, browser, "demo", "demo")
        connect(site, browser, "acme-demo")
        assert_invoices_page(site, browser, "acme-demo")
    finally:
        stop(process)
    process, site = start_site(tmp_path, prepared, port=urlsplit(site.url).port)
    try:
        # Same port, same database and session cookie; a new mock that knows no token. The
        # API rejects the access token, the forced refresh gets invalid_grant: log in again.
        response = site.get(browser, "invoices/", allow_redirects=False)
        assert response.status_code == 302
        assert response.headers["Location"] == "/pagero/login/?next=%2Finvoices%2F"
        home = site.get(browser, "")
        assert "Your Pagero connection has ended" in home.text
        counts = mock_counts(site, browser)
        assert (counts["api"], counts["refresh_token"], counts["refresh_token_failed"]) == (1, 1, 1)

        connect(site, browser, "acme-demo")
        assert_invoices_page(site, browser, "acme-demo")
    finally:
        stop(process)
        print(site.log.read_text())


def approve_at_mock(site: Site, browser: requests.Session, authorize: str, publicid: str) -> str:
    """Approve on the mock's login page; returns the callback URL it redirects to."""
    login_page = browser.get(authorize, timeout=30)
    assert login_page.status_code == 200
    (form,) = forms_of(login_page.text)
    fields = dict(form["fields"])  # type: ignore[call-overload]
    fields.update(publicid=publicid, action="approve")
    response = browser.post(
        urljoin(login_page.url, str(form["action"])), data=fields, allow_redirects=False, timeout=30
    )
    assert response.status_code == 302
    callback = str(response.headers["Location"])
    assert callback.startswith(f"{site.url}pagero/callback/?")
    return callback


def test_sign_in_with_pagero_from_the_login_page(site: Site) -> None:
    """A newcomer clicks "Sign in with Pagero" and is logged in as demo, offline."""
    browser = requests.Session()
    page = site.get(browser, "accounts/login/?next=/invoices/")
    assert 'href="/pagero/sign-in/?next=/invoices/"' in page.text
    assert "Sign in with Pagero" in page.text
    response = site.get(browser, "pagero/sign-in/?next=/invoices/", allow_redirects=False)
    assert response.status_code == 302
    authorize = response.headers["Location"]
    assert "openid" in parse_qs(urlsplit(authorize).query)["scope"][0].split()

    callback = approve_at_mock(site, browser, authorize, "demo-company")
    response = browser.get(callback, allow_redirects=False, timeout=30)
    assert response.status_code == 302, response.text
    assert response.headers["Location"] == "/invoices/"
    assert "Logged in as demo" in site.get(browser, "").text
    assert_invoices_page(site, browser, "demo-company")  # the same flow connected the API
    assert mock_counts(site, browser)["jwks"] == 1  # the id_token was verified

    # Another company is not linked to anyone: refused, nobody logged in.
    stranger = requests.Session()
    response = site.get(stranger, "pagero/sign-in/", allow_redirects=False)
    callback = approve_at_mock(site, stranger, response.headers["Location"], "acme-unknown")
    refused = stranger.get(callback, allow_redirects=False, timeout=30)
    assert refused.status_code == 403
    assert "not linked to a user of this site" in refused.text
    assert "Logged in as" not in site.get(stranger, "").text
