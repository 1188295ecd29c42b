"""The keep-alive fan-out on a real Celery worker: prefork, 4 processes, Redis, PostgreSQL.

2,000 tokens whose refresh tokens expire soon are fanned out in chunks to a worker started
by this module (``celery -A tests.processes.celery_app worker --pool=prefork
--concurrency=4``), which shares the test database and reaches the strict mock Pagero server
running in this process. Halfway through, the mock holds every refresh at a gate while a
second fan-out queues the tokens the first has not done yet; then the gate opens and both
runs race to the end. The mock proves each token was refreshed exactly once (each original
refresh token presented once, none rejected) and that none was lost (every stored refresh
token is one the mock will still honour).

PostgreSQL only: separate processes share a server database (SQLite's file lock would
serialise the workers, and the test database is a file only this process knows).
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from celery import Celery
from celery.signals import after_task_publish
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone

from django_pagero_oauth.contrib.celery import REFRESH_CHUNK_TASK, refresh_pagero_tokens
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.oauth import TokenResponse
from django_pagero_oauth.testing.mock import (
    REFRESH_TOKEN_PREFIX,
    TOKEN_PATH,
    MockPagero,
    MockPageroServer,
    MockRequest,
    MockResponse,
)

pytestmark = [
    pytest.mark.postgres_only,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: the worker processes share the test database "
        "(set DATABASE_URL=postgres://...)",
    ),
]

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
TOKENS = 2000
CHUNK_SIZE = 50
WORKER_PROCESSES = 4
#: The mock holds refreshes from this one on, until the second fan-out is queued.
PAUSE_AT = TOKENS // 2
#: Upper bound for anything the test waits for (startup, the gate, completion).
DEADLINE = 120.0


class GatedCountingMock(MockPagero):
    """The strict mock; it also counts each refresh token presented, and from ``pause_at``
    on holds refresh grants at a gate until the test opens it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.presented: collections.Counter[str] = collections.Counter()
        self.pause_at = 0
        self.paused = threading.Event()
        self.gate = threading.Event()
        self.arrived = 0
        self.count_lock = threading.Lock()

    def reset(self) -> None:
        super().reset()
        with self.count_lock:
            self.presented.clear()
            self.arrived = 0
        self.paused.clear()
        self.gate.clear()

    def handle(self, request: MockRequest) -> MockResponse:
        if request.path == TOKEN_PATH and request.form.get("grant_type") == ["refresh_token"]:
            with self.count_lock:
                self.arrived += 1
                self.presented.update(request.form.get("refresh_token", []))
                hold = self.pause_at and self.arrived >= self.pause_at
            if hold:
                self.paused.set()
                self.gate.wait(timeout=DEADLINE)
        return super().handle(request)


@pytest.fixture(scope="module")
def counting_mock() -> Iterator[MockPageroServer]:
    server = MockPageroServer(GatedCountingMock()).start()
    try:
        yield server
    finally:
        server.mock.gate.set()  # type: ignore[attr-defined]
        server.stop()


@pytest.fixture(scope="module")
def redis_namespace() -> Iterator[tuple[str, str]]:
    """(Redis URL, key prefix) of this run: a dedicated database, keys of this process only."""
    import redis

    url = os.environ.get("PAGERO_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    prefix = f"pagero-test-{os.getpid()}:"
    client = redis.Redis.from_url(url)

    def flush() -> None:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)

    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not answering at {url}: {exc} (start it: redis-server --daemonize yes)"
        )
    flush()
    try:
        yield url, prefix
    finally:
        flush()
        client.close()


@pytest.fixture(scope="module")
def celery_app(redis_namespace: tuple[str, str]) -> Iterator[Celery]:
    """This process's side of the worker's app (same broker and prefix): it queues tasks."""
    from tests.processes.celery_app import make_app

    app = make_app(*redis_namespace)
    app.set_current()
    try:
        yield app
    finally:
        app.close()


@pytest.fixture(scope="module")
def worker(
    django_db_setup: None,
    counting_mock: MockPageroServer,
    redis_namespace: tuple[str, str],
    celery_app: Celery,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Path]:
    """A prefork worker with 4 processes, ready (it answered a ping); yields its log file."""
    url, prefix = redis_namespace
    nodename = f"pagero-test-{os.getpid()}@localhost"
    log_path = tmp_path_factory.mktemp("celery") / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.processes.settings",
        "PAGERO_TEST_DB_NAME": str(connection.settings_dict["NAME"]),
        # A refresh held at the gate must not time out meanwhile.
        "PAGERO_TEST_OAUTH": json.dumps({**counting_mock.settings(), "TIMEOUT": DEADLINE}),
        "PAGERO_TEST_ROLE": "celery",
        "PAGERO_TEST_REDIS_URL": url,
        "PAGERO_TEST_REDIS_PREFIX": prefix,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [
        sys.executable, "-m", "celery", "-A", "tests.processes.celery_app", "worker",
        "--pool=prefork", f"--concurrency={WORKER_PROCESSES}", "--hostname", nodename,
        "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
    ]  # fmt: skip
    with open(log_path, "wb") as log:
        process = subprocess.Popen(  # noqa: S603 (a fixed command)
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + DEADLINE
        while not celery_app.control.ping(destination=[nodename], timeout=1.0):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"the Celery worker did not answer a ping within {DEADLINE} s (exit code "
                    f"{process.poll()}):\n{log_path.read_text(errors='replace')[-4000:]}"
                )
        yield log_path
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Warm shutdown (SIGTERM); the whole process group if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture
def mock(counting_mock: MockPageroServer) -> Iterator[GatedCountingMock]:
    state = counting_mock.mock
    assert isinstance(state, GatedCountingMock)
    state.reset()
    try:
        yield state
    finally:
        state.gate.set()  # never leave a worker hanging at the gate


@pytest.fixture
def expiring_tokens(mock: GatedCountingMock, transactional_db: None) -> list[PageroToken]:
    """TOKENS users, each with a token the mock issued, its refresh token expiring in 5 days."""
    users = get_user_model().objects.bulk_create(
        [get_user_model()(username=f"keepalive{index}") for index in range(TOKENS)]
    )
    soon = timezone.now() + timedelta(days=5)
    rows = []
    for index, user in enumerate(users):
        token = PageroToken(user=user)
        token.apply_token_response(
            TokenResponse.from_json(mock.issue_tokens(publicid=f"company-{index}"))
        )
        token.refresh_token_expires_at = soon
        rows.append(token)
    return PageroToken.objects.bulk_create(rows, batch_size=500)


class Published:
    """The ids of the chunk tasks this process queues."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def __call__(self, sender: Any = None, headers: Any = None, **kwargs: Any) -> None:
        if sender == REFRESH_CHUNK_TASK:
            self.ids.append(headers["id"])


def test_two_overlapping_fan_outs_refresh_2000_tokens_once_each(
    worker: Path, celery_app: Celery, mock: GatedCountingMock, expiring_tokens: list[PageroToken]
) -> None:
    original = {token.pk: token.refresh_token for token in expiring_tokens}
    mock.pause_at = PAUSE_AT
    published = Published()
    after_task_publish.connect(published, weak=False)
    try:
        first = refresh_pagero_tokens.apply(kwargs={"chunk_size": CHUNK_SIZE}).get()
        assert first == {"tokens": TOKENS, "chunks": TOKENS // CHUNK_SIZE}
        # Halfway: the worker's refreshes from now on wait at the gate.
        assert mock.paused.wait(timeout=DEADLINE), "the worker refreshed nothing"
        second = refresh_pagero_tokens.apply(kwargs={"chunk_size": CHUNK_SIZE}).get()
        mock.gate.set()
        outcomes: collections.Counter[str] = collections.Counter()
        for task_id in published.ids:
            outcomes.update(celery_app.AsyncResult(task_id).get(timeout=DEADLINE))
    finally:
        after_task_publish.disconnect(published)
        mock.gate.set()

    # The second run started while the first was going: it queued tokens not yet refreshed.
    # (Give or take the refreshes in flight, one per worker process.)
    low, high = TOKENS - PAUSE_AT - WORKER_PROCESSES, TOKENS - PAUSE_AT + WORKER_PROCESSES + 1
    assert low <= second["tokens"] <= high, second
    assert len(published.ids) == first["chunks"] + second["chunks"]
    assert set(outcomes) <= {"refreshed", "skipped"}, outcomes

    # Exactly once each: every original refresh token was presented once, and only those.
    assert mock.counts["refresh_token"] == TOKENS
    assert mock.counts["refresh_token_failed"] == 0
    assert mock.presented == collections.Counter(original.values())
    # None lost: every stored refresh token is a new one the mock will honour.
    stored = {token.pk: token.refresh_token for token in PageroToken.objects.all()}
    assert len(stored) == TOKENS
    for pk, refresh_token in stored.items():
        assert refresh_token != original[pk]
        assert mock.is_refresh_token_valid(refresh_token)
    assert not PageroToken.objects.needing_reauthorization().exists()

    # Nothing secret reached the worker's log (task arguments, results, our log lines).
    log = worker.read_text(errors="replace")
    # The chunks were shared: several pool processes finished some ("ForkPoolWorker-N").
    finishers = set(re.findall(r"/(ForkPoolWorker-\d+)\] Task \S+ succeeded", log))
    assert len(finishers) >= 2, finishers
    assert REFRESH_TOKEN_PREFIX not in log
    assert "eyJ" not in log  # no JWT (access token) either
