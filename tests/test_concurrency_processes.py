"""Single-flight refreshing across real processes (PostgreSQL only).

Pagero's refresh tokens are single-use, so when a user's access token expires while many
requests are in flight, exactly one of them may call the token endpoint; every other one must
wait for it and use its result (``django_pagero_oauth.tokens``). Threads in one process prove
little about that: here the requests run in separate gunicorn worker processes (and, in the
second test, in background jobs started with ``multiprocessing``'s "spawn" context), all sharing
the pytest-django test database and the strict mock Pagero server running in this process.

To make the race certain rather than likely, the mock holds refresh grants at a gate until
PostgreSQL shows requests of every other process asking for their turn on the token row while
the refresh is held (they wait for its lease); only then does the refresh complete. A client that did not lock would send several refresh grants (the
strict mock rejects all but one with ``invalid_grant``) and fail these tests.

SQLite has no row locks (the package serialises on its database-wide write lock instead) and no
``pg_stat_activity``, so this module runs only on PostgreSQL.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.oauth import TokenResponse
from django_pagero_oauth.testing.mock import (
    TOKEN_PATH,
    MockPagero,
    MockPageroServer,
    MockRequest,
    MockResponse,
)
from django_pagero_oauth.tokens import get_valid_token
from tests.processes.api_caller import call_api

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: separate processes can only share a server database "
        "(set DATABASE_URL=postgres://...)",
    ),
]

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKERS = 4
#: gunicorn threads per worker, and the most connections one worker accepts at a time: so the
#: requests spread over all workers instead of queueing in whichever accepts fastest.
THREADS = 8
REQUESTS = 64
JOBS = 4
CALLS_PER_JOB = 2
#: Upper bound for anything the test waits for (startup, contention, completion).
DEADLINE = 30.0


class GatedMockPagero(MockPagero):
    """The strict mock, but every refresh grant waits at a gate that the test opens."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refresh_arrived = threading.Event()
        self.gate = threading.Event()

    def reset(self) -> None:
        super().reset()
        self.refresh_arrived.clear()
        self.gate.clear()

    def handle(self, request: MockRequest) -> MockResponse:
        if request.path == TOKEN_PATH and request.form.get("grant_type") == ["refresh_token"]:
            self.refresh_arrived.set()
            self.gate.wait(timeout=DEADLINE)
        return super().handle(request)


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gated_mock() -> Iterator[MockPageroServer]:
    server = MockPageroServer(GatedMockPagero()).start()
    try:
        yield server
    finally:
        server.mock.gate.set()  # type: ignore[attr-defined]
        server.stop()


@pytest.fixture(scope="module")
def process_env(django_db_setup: None, gated_mock: MockPageroServer) -> dict[str, str]:
    """What a child process needs to join this test run: the test database and the mock."""
    pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {
        "DJANGO_SETTINGS_MODULE": "tests.processes.settings",
        "PAGERO_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        "PAGERO_TEST_OAUTH": json.dumps(gated_mock.settings()),
        "PYTHONPATH": pythonpath,
    }


@pytest.fixture(scope="module")
def gunicorn(
    process_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """gunicorn serving tests.urls with WORKERS processes; yields its base URL.

    The test binds the listening socket and hands it over (``fd://``), so the port is known
    without a race; each worker reports readiness on a pipe (see tests/processes/gunicorn_conf).
    """
    listener = socket.create_server(("127.0.0.1", 0), backlog=REQUESTS * 2)
    port = listener.getsockname()[1]
    ready_read, ready_write = os.pipe()
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    command = [
        sys.executable, "-m", "gunicorn",
        "--config", "python:tests.processes.gunicorn_conf",
        "--bind", f"fd://{listener.fileno()}",
        "--worker-class", "gthread",
        "--workers", str(WORKERS),
        "--threads", str(THREADS),
        "--worker-connections", str(THREADS),
        "--keep-alive", "0",
        "--timeout", str(int(DEADLINE) * 2),
        "--graceful-timeout", "2",
        "--log-level", "warning",
        "tests.processes.wsgi:application",
    ]  # fmt: skip
    env = {
        **os.environ,
        **process_env,
        "PAGERO_TEST_ROLE": "worker",
        "PAGERO_TEST_READY_FD": str(ready_write),
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(  # noqa: S603 (a fixed command)
            command,
            cwd=REPO_ROOT,
            env=env,
            pass_fds=(listener.fileno(), ready_write),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    os.close(ready_write)
    listener.close()  # gunicorn holds its own copy
    try:
        _await_worker_pids(ready_read, process, log_path)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.close(ready_read)
        _stop(process)


def _await_worker_pids(ready_read: int, process: subprocess.Popen[bytes], log: Path) -> None:
    """Read one line per worker from the readiness pipe, within DEADLINE."""
    deadline = time.monotonic() + DEADLINE
    received = b""
    while received.count(b"\n") < WORKERS:
        remaining = deadline - time.monotonic()
        readable, _, _ = select.select([ready_read], [], [], max(remaining, 0))
        chunk = os.read(ready_read, 4096) if readable else b""
        if not chunk:
            _stop(process)
            pytest.fail(
                f"gunicorn did not start {WORKERS} workers within {DEADLINE} s "
                f"(exit code {process.poll()}):\n{log.read_text(errors='replace')[-4000:]}"
            )
        received += chunk


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Quick shutdown (SIGINT); the whole process group of this gunicorn if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
def mock(gated_mock: MockPageroServer) -> Iterator[GatedMockPagero]:
    state = gated_mock.mock
    assert isinstance(state, GatedMockPagero)
    state.reset()
    try:
        yield state
    finally:
        state.gate.set()  # never leave a worker hanging at the gate


@pytest.fixture
def expired_token(user: Any, mock: GatedMockPagero, transactional_db: None) -> PageroToken:
    """``user``'s token as the mock issued it, but with the access token stored as expired."""
    response = TokenResponse.from_json(mock.issue_tokens(publicid="acme"))
    with transaction.atomic():
        token = PageroToken.store_for_user(user, response)
    PageroToken.objects.filter(pk=token.pk).update(
        access_token_expires_at=timezone.now() - timedelta(seconds=1)
    )
    token.refresh_from_db()
    assert token.access_token_needs_refresh()
    return token


# --- helpers -------------------------------------------------------------------------------


def _session_cookies(user: Any, count: int) -> list[str]:
    """``count`` separate logged-in sessions of ``user`` (committed: transactional_db)."""
    cookies = []
    for _ in range(count):
        client = Client()
        client.force_login(user)
        cookies.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
    return cookies


def _fetch(url: str, cookie: str, start: threading.Barrier) -> tuple[int, Any]:
    start.wait(timeout=DEADLINE)
    response = requests.get(
        url,
        cookies={settings.SESSION_COOKIE_NAME: cookie},
        headers={"Accept": "application/json"},
        allow_redirects=False,
        timeout=DEADLINE * 2,
    )
    try:
        body = response.json()
    except ValueError:
        body = response.text[:500]
    return response.status_code, body


def _storm_paths() -> list[str]:
    """Half the requests only need a token, half also call Pagero's API with it."""
    return ["/protected/" if index % 2 else "/api-data/" for index in range(REQUESTS)]


def _database_time() -> Any:
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        return cursor.fetchone()[0]


def _processes_waiting_for_the_refresh(since: Any) -> set[str]:
    """``application_name`` (``<role>-<pid>``) of every backend that looked at the token row's
    refresh lease after ``since``: that is what a request does while it waits for another's
    refresh to end (``lease.Waiter``), and while the refresh is held at the gate a request whose
    token has expired cannot finish.
    """
    table = PageroToken._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT application_name FROM pg_stat_activity "
            "WHERE datname = current_database() AND query_start >= %s "
            "AND starts_with(query, %s) AND pid <> pg_backend_pid()",
            [since, f'SELECT "{table}"."refresh_lease_owner"'],
        )
        return {name for (name,) in cursor.fetchall()}


def _release_refresh_once_contended(mock: GatedMockPagero, processes: int) -> set[str]:
    """Wait until a refresh is at the gate AND ``processes`` other processes wait for its lease
    (a bounded poll of PostgreSQL's activity view), then let the refresh complete."""
    try:
        assert mock.refresh_arrived.wait(timeout=DEADLINE), "no refresh reached the mock"
        since = _database_time()
        deadline = time.monotonic() + DEADLINE
        waiting = _processes_waiting_for_the_refresh(since)
        while len(waiting) < processes and time.monotonic() < deadline:
            time.sleep(0.02)
            waiting = _processes_waiting_for_the_refresh(since)
        return waiting
    finally:
        mock.gate.set()


def _assert_one_refresh_and_token_kept(mock: GatedMockPagero, token: PageroToken) -> None:
    assert mock.counts["refresh_token"] == 1
    assert mock.counts["refresh_token_failed"] == 0
    token.refresh_from_db()
    assert not token.needs_reauthorization
    assert token.refresh_token == mock.issued_refresh_tokens[-1]
    assert mock.is_refresh_token_valid(token.refresh_token)
    assert not token.access_token_needs_refresh()
    assert get_valid_token(token.user).access_token == token.access_token


# --- tests ---------------------------------------------------------------------------------


def test_expiry_under_64_requests_in_4_workers_refreshes_once(
    gunicorn: str, mock: GatedMockPagero, expired_token: PageroToken, user: Any
) -> None:
    cookies = _session_cookies(user, REQUESTS)
    paths = _storm_paths()
    start = threading.Barrier(REQUESTS)
    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        futures = [
            pool.submit(_fetch, gunicorn + path, cookie, start)
            for path, cookie in zip(paths, cookies, strict=True)
        ]
        waiting = _release_refresh_once_contended(mock, processes=WORKERS)
        results = [future.result(timeout=DEADLINE * 2) for future in futures]

    # While the one refresh was in flight, requests in every worker process waited for it.
    assert len(waiting) == WORKERS, waiting
    assert all(name.startswith("worker-") for name in waiting), waiting
    assert [status for status, _ in results] == [200] * REQUESTS, results
    _assert_one_refresh_and_token_kept(mock, expired_token)
    for path, (_, body) in zip(paths, results, strict=True):
        if path == "/api-data/":
            assert body == {"status": 200, "body": body["body"]}
            assert body["body"]["publicid"] == "acme"
        else:  # every view saw the refreshed token
            assert body == {"ok": True, "fingerprint": expired_token.fingerprint}
    # Every API call went out once, with a valid token (no 401 and retry).
    assert mock.counts["api"] == REQUESTS // 2


def test_expiry_with_background_jobs_in_spawned_processes_refreshes_once(
    gunicorn: str,
    mock: GatedMockPagero,
    expired_token: PageroToken,
    user: Any,
    process_env: dict[str, str],
) -> None:
    cookies = _session_cookies(user, REQUESTS)
    paths = _storm_paths()
    context = multiprocessing.get_context("spawn")
    jobs_ready = context.Barrier(JOBS + 1)
    outcomes = context.Queue()
    jobs = [
        context.Process(
            target=call_api,
            args=(
                {**process_env, "PAGERO_TEST_ROLE": "job"},
                user.pk,
                CALLS_PER_JOB,
                jobs_ready,
                outcomes,
            ),
            name=f"pagero-job-{index}",
        )
        for index in range(JOBS)
    ]
    for job in jobs:
        job.start()
    try:
        start = threading.Barrier(REQUESTS)
        with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
            jobs_ready.wait(timeout=DEADLINE)  # all jobs have set up Django; go together
            futures = [
                pool.submit(_fetch, gunicorn + path, cookie, start)
                for path, cookie in zip(paths, cookies, strict=True)
            ]
            # Every process but (possibly) a refreshing job has a request waiting on the lock.
            waiting = _release_refresh_once_contended(mock, processes=WORKERS + JOBS - 1)
            results = [future.result(timeout=DEADLINE * 2) for future in futures]
        job_outcomes = dict(outcomes.get(timeout=DEADLINE) for _ in jobs)
        for job in jobs:
            job.join(timeout=DEADLINE)
    finally:
        for job in jobs:
            if job.is_alive():
                job.kill()
                job.join(timeout=10)

    assert len(waiting) >= WORKERS + JOBS - 1, waiting
    assert {name.split("-")[0] for name in waiting} == {"worker", "job"}, waiting
    assert [status for status, _ in results] == [200] * REQUESTS, results
    assert [job.exitcode for job in jobs] == [0] * JOBS
    assert set(job_outcomes) == {job.pid for job in jobs}
    for outcome in job_outcomes.values():
        assert outcome == [(200, "acme")] * CALLS_PER_JOB
    _assert_one_refresh_and_token_kept(mock, expired_token)
    assert mock.counts["api"] == REQUESTS // 2 + JOBS * CALLS_PER_JOB
