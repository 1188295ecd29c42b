"""Fixtures of the real-browser suite: Debian's Chromium, driven by Playwright, clicking through
the example project as ``manage.py demo`` serves it.

- ``demo_site``: the example project in a subprocess (``demo --port N --noreload``) on
  127.0.0.1, with its own SQLite file and so its own in-process mock Pagero, counters at zero.
  It also runs ``manage.py shell`` in the server's environment, to look at or change the stored
  tokens as an operator would.
- ``new_page``: a page in a new browser context (its own cookies); several in one test are
  several people. Requests to any host but 127.0.0.1 fail, and so does the test that made one.
- ``screenshot``: saves the final state under ``build/browser-screenshots/`` (a failed test's
  pages are saved there too, as ``FAILED-...``).

``test_package_pages.py`` drives another site, ``plain_site/``, which overrides nothing of the
package (the demo overrides its ``base.html``), served by gunicorn over HTTP and over HTTPS;
its pages come from ``page_factory`` here.

Without Chromium or Playwright the tests are skipped, except under CI (``CI`` set), where they
fail: a CI that silently skips its browser suite tests nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

import pytest
import requests

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Request, ViewportSize

REPO_ROOT = Path(__file__).resolve().parents[2]
MANAGE = REPO_ROOT / "example_project" / "manage.py"
SCREENSHOTS = REPO_ROOT / "build" / "browser-screenshots"

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; `playwright install` is never used
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
    # 127.0.0.1 only: directly, whatever proxy the environment names, and every other host
    # name or address is unresolvable (cheaper than intercepting each request in Python).
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
ALLOWED_HOST = "127.0.0.1"

#: Bounds on waiting, not expectations of speed.
STARTUP_DEADLINE = 60.0  # seconds for ``demo`` to answer HTTP
SHELL_TIMEOUT = 60.0  # seconds for one ``manage.py shell -c``
PAGE_TIMEOUT_MS = 15_000  # for each Playwright action and expectation
#: Wide enough for every column of the admin's token list (in the screenshots too).
VIEWPORT: ViewportSize = {"width": 1600, "height": 900}

#: Test user names and passwords, as ``manage.py demo`` creates them.
DEMO_USER = ("demo", "demo")
ADMIN_USER = ("admin", "admin")
VIEWER_USER = ("viewer", "viewer")

# --- availability ---------------------------------------------------------------------------


def browser_unavailable_reason() -> str | None:
    """Why the suite cannot run here, or ``None``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[browser]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or, under CI, fail) a browser test before its fixtures start a server."""
    if item.get_closest_marker("browser") is None:
        return
    reason = browser_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(
            f"The browser suite cannot run: {reason}. CI must run it, not skip it.", pytrace=False
        )
    pytest.skip(f"browser suite skipped: {reason}")


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Chromium, headless, with a fresh temporary profile (Playwright's ``launch`` creates one
    and deletes it on close).

    Package-scoped, not session-scoped: while Playwright's sync API runs, its asyncio loop is
    the running loop of the main thread, and Django refuses ORM calls from a thread with a
    running loop (``SynchronousOnlyOperation``): the tests outside this package would fail.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


# --- the example project in a subprocess ----------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((ALLOWED_HOST, 0))
        return int(sock.getsockname()[1])


def demo_env(database: Path, port: int) -> dict[str, str]:
    """A newcomer's environment (nothing about Pagero, Django or a ``.env`` file) plus the
    project's own variables: its database and its port (the mock's URLs contain it)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("PAGERO_", "DJANGO_", "DEMO_"))
        and key not in ("DATABASE_URL", "SECRET_KEY", "DEBUG", "RUN_MAIN", "ALLOWED_HOSTS")
    }
    env.update(
        DATABASE_URL=f"sqlite:///{database}",
        DEMO_ENV_FILE="",  # ignore a developer's example_project/.env
        DEMO_PORT=str(port),
        PYTHONUNBUFFERED="1",
    )
    return env


def run_manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (fixed arguments)
        [sys.executable, str(MANAGE), *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=SHELL_TIMEOUT,
        check=False,
    )


@pytest.fixture(scope="session")
def prepared_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database after ``demo --no-server``: migrating is the slow part of a start, do it once
    (each test starts from its own copy)."""
    database = tmp_path_factory.mktemp("browser-demo") / "db.sqlite3"
    result = run_manage("demo", "--no-server", env=demo_env(database, free_port()))
    assert result.returncode == 0, result.stdout + result.stderr
    return database


#: Run by ``manage.py shell -c`` in the server's environment: executes one script per input
#: line (JSON: ``{"script": ..., "names": {...}}``) and answers one line with the value the
#: script left in ``result``. Django starts once per test, not once per question.
OPERATOR_LOOP = """
import json, sys, traceback
from django.db import connections
for line in sys.stdin:
    request = json.loads(line)
    namespace = dict(request["names"])
    try:
        exec(request["script"], namespace)
        answer = {"result": namespace.get("result")}
    except Exception:
        answer = {"error": traceback.format_exc()}
    finally:
        connections.close_all()
    print(MARKER + json.dumps(answer), flush=True)
"""
ANSWER_MARKER = "\x1eoperator:"

#: Every stored token of ``USERNAME`` (everyone's when empty): its plain columns, and its
#: secrets both decrypted and as stored (ciphertext).
TOKENS_SCRIPT = """
from django.db.models import TextField
from django.db.models.functions import Cast
from django_pagero_oauth.models import PageroToken
names = ("access_token", "refresh_token", "id_token")
tokens = PageroToken.objects.select_related("user").order_by("pk")
if USERNAME:
    tokens = tokens.filter(user__username=USERNAME)
stored = {
    row["pk"]: row
    for row in tokens.values("pk", **{f"raw_{n}": Cast(n, TextField()) for n in names})
}
result = [
    {
        "pk": token.pk,
        "user": token.user.username,
        "fingerprint": token.fingerprint,
        "access_token_expires_at": token.access_token_expires_at.isoformat(),
        "secrets": [
            *(getattr(token, n) for n in names),
            *(stored[token.pk][f"raw_{n}"] for n in names),
        ],
    }
    for token in tokens
]
"""

EXPIRE_SCRIPT = """
from datetime import timedelta
from django.utils import timezone
from django_pagero_oauth.models import PageroToken
result = PageroToken.objects.filter(user__username=USERNAME).update(
    access_token_expires_at=timezone.now() - timedelta(seconds=1)
)
"""


class Operator:
    """One ``manage.py shell`` in the server's environment, asked questions over a pipe."""

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        command: Sequence[str] = (sys.executable, str(MANAGE)),
    ) -> None:
        """``command``: ``manage.py`` (or ``django-admin``) of the site, without arguments."""
        self.log = log
        with log.open("ab") as errors:
            self.process = subprocess.Popen(  # noqa: S603 (fixed arguments)
                [
                    *command,
                    "shell",
                    "-c",
                    f"MARKER = {ANSWER_MARKER!r}\n" + OPERATOR_LOOP,
                ],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                text=True,
                start_new_session=True,
            )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True, name="operator-stdout").start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(ANSWER_MARKER):
                self.lines.put(line[len(ANSWER_MARKER) :])
        self.lines.put(None)  # end of output: the shell exited

    def run(self, script: str, **names: str) -> Any:
        """Execute ``script`` with ``names`` as globals; the ``result`` it set."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"script": script, "names": names}) + "\n")
        self.process.stdin.flush()
        try:
            line = self.lines.get(timeout=SHELL_TIMEOUT)
        except queue.Empty:
            pytest.fail(f"manage.py shell did not answer in time:\n{self.log.read_text()}")
        if line is None:
            pytest.fail(f"manage.py shell exited:\n{self.log.read_text()}")
        answer = json.loads(line)
        assert "error" not in answer, answer["error"]
        return answer["result"]

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # the loop ends at end of input
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            stop(self.process)


@dataclass
class DemoSite:
    """The running example project, and what a test does with it."""

    url: str  # http://127.0.0.1:PORT, no trailing slash
    env: dict[str, str]
    log: Path
    operator: Operator
    http: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        self.http.trust_env = False  # no proxy: 127.0.0.1 only

    # --- as an operator, in the server's environment ------------------------------------

    def tokens(self, username: str = "") -> list[dict[str, Any]]:
        """The stored tokens (of ``username``, or everyone's), with their secret values (under
        ``"secrets"``: keep them out of assertions, whose messages would show them)."""
        tokens: list[dict[str, Any]] = self.operator.run(TOKENS_SCRIPT, USERNAME=username)
        return tokens

    def fingerprints(self, username: str = "") -> list[str]:
        """The stored tokens' fingerprints: what to compare in assertions."""
        return [token["fingerprint"] for token in self.tokens(username)]

    def expire_access_token(self, username: str) -> None:
        """Move the stored access token's expiry into the past, as ten minutes would."""
        assert self.operator.run(EXPIRE_SCRIPT, USERNAME=username) == 1

    def mock_counts(self) -> dict[str, int]:
        """What the in-process mock Pagero has seen (``GET /mock-pagero/_mock/stats``)."""
        response = self.http.get(f"{self.url}/mock-pagero/_mock/stats", timeout=30)
        response.raise_for_status()
        counts: dict[str, int] = response.json()["counts"]
        return counts

    # --- as a person, in a browser --------------------------------------------------------

    def log_in(self, page: Page, username: str, password: str) -> None:
        """Log in to the site through its login form."""
        from playwright.sync_api import expect

        page.goto("/accounts/login/?next=/")
        fill_login_form(page, username, password)
        expect(page.locator("nav .who")).to_have_text(f"Logged in as {username}")

    def connect(self, page: Page) -> None:
        """Connect the logged-in user to Pagero: the protected page sends them to the mock's
        login page, they approve, and they are back on the protected page."""
        from playwright.sync_api import expect

        page.goto("/invoices/")
        expect(page).to_have_title("Mock Pagero login")
        page.get_by_role("button", name="Approve").click()
        expect(page).to_have_url(f"{self.url}/invoices/")
        expect(page.locator("main")).to_contain_text("Demo Company AB")


def fill_login_form(page: Page, username: str, password: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


def stop(process: subprocess.Popen[Any]) -> None:
    """Terminate the server's whole process group, then reap it."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        process.wait(timeout=10)


class ServedSite(Protocol):
    url: str
    log: Path
    http: requests.Session


def wait_until_serving(
    process: subprocess.Popen[bytes], site: ServedSite, name: str = "the demo server"
) -> None:
    """Bounded readiness poll: the login page answers 200, or the server died, or time is up."""
    deadline = time.monotonic() + STARTUP_DEADLINE
    while True:
        try:
            if site.http.get(f"{site.url}/accounts/login/", timeout=5).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{name} did not answer in time:\n{site.log.read_text()}")
        try:
            process.wait(timeout=0.1)  # the poll's interval, and notices an early exit
        except subprocess.TimeoutExpired:
            continue
        pytest.fail(f"{name} exited with {process.returncode}:\n{site.log.read_text()}")


@pytest.fixture
def demo_site(tmp_path: Path, prepared_database: Path) -> Iterator[DemoSite]:
    """``manage.py demo --port N --noreload`` on a private copy of the prepared database."""
    port = free_port()
    database = tmp_path / "db.sqlite3"
    shutil.copyfile(prepared_database, database)
    log = tmp_path / "server.log"
    env = demo_env(database, port)
    # Started first: Django's start-up in the shell overlaps with the server's.
    operator = Operator(env, tmp_path / "operator.log")
    site = DemoSite(url=f"http://{ALLOWED_HOST}:{port}", env=env, log=log, operator=operator)
    with log.open("ab") as output:
        process = subprocess.Popen(  # noqa: S603 (fixed arguments)
            [sys.executable, str(MANAGE), "demo", "--port", str(port), "--noreload"],
            cwd=REPO_ROOT,
            env=site.env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as a whole
        )
    try:
        wait_until_serving(process, site)
        yield site
    finally:
        stop(process)
        operator.close()
        site.http.close()
        print(log.read_text())  # shown by pytest when the test failed


# --- pages and screenshots ------------------------------------------------------------------


CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[CALL_FAILED] = report.failed
    return report


def screenshot_name(request: pytest.FixtureRequest, suffix: str = "") -> Path:
    module = request.node.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    name = f"{module}-{request.node.name.removeprefix('test_')}{suffix}"
    return SCREENSHOTS / f"{name}.png"


@contextlib.contextmanager
def page_factory(
    browser: Browser, base_url: str, request: pytest.FixtureRequest, **context_options: Any
) -> Iterator[Callable[[], Page]]:
    """``make()``: a page in a fresh browser context whose base URL is ``base_url``.

    On leaving, a failed test's pages are saved as screenshots, and a request to a host other
    than 127.0.0.1 fails the test. ``context_options`` go to ``browser.new_context``.
    """
    contexts: list[BrowserContext] = []
    elsewhere: list[str] = []  # requests to other hosts (which fail: CHROMIUM_ARGS)
    failed_stem = f"FAILED-{screenshot_name(request).stem}"
    for stale in SCREENSHOTS.glob(f"{failed_stem}-*.png"):
        stale.unlink()  # from an earlier run

    def record_if_not_local(request: Request) -> None:
        split = urlsplit(request.url)
        if split.scheme not in ("data", "blob") and split.hostname != ALLOWED_HOST:
            elsewhere.append(request.url)

    def make() -> Page:
        options = {"viewport": VIEWPORT, **context_options}
        context = browser.new_context(base_url=base_url, **options)
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        context.on("request", record_if_not_local)
        contexts.append(context)
        return context.new_page()

    try:
        yield make
        if request.node.stash.get(CALL_FAILED, False):
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            for index, page in enumerate(p for c in contexts for p in c.pages):
                page.screenshot(
                    path=SCREENSHOTS / f"{failed_stem}-{index}.png",
                    full_page=True,
                )
        assert not elsewhere, f"the browser tried to leave {ALLOWED_HOST}: {elsewhere}"
    finally:
        for context in contexts:
            context.close()


@pytest.fixture
def new_page(
    browser: Browser, demo_site: DemoSite, request: pytest.FixtureRequest
) -> Generator[Callable[[], Page]]:
    """``new_page()``: a page in a fresh browser context, its base URL the demo site."""
    with page_factory(browser, demo_site.url, request) as make:
        yield make


@pytest.fixture
def screenshot(request: pytest.FixtureRequest) -> Callable[[Page], Path]:
    """``screenshot(page)``: save the page (whole) as the test's final state; the path."""

    def save(page: Page, suffix: str = "") -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = screenshot_name(request, f"-{suffix}" if suffix else "")
        page.screenshot(path=path, full_page=True)
        return path

    return save
