"""What the benchmarks share: the mock server, a throw-away database, gunicorn, load generators.

Nothing here asserts anything: the benchmarks measure and report.
"""

from __future__ import annotations

import http.client
import math
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = REPO_ROOT / "build" / "benchmarks"
READY_TIMEOUT = 60.0
REQUEST_TIMEOUT = 60.0


# --- the mock Pagero server, in its own process ------------------------------------------


@contextmanager
def mock_server() -> Iterator[str]:
    """``python -m django_pagero_oauth.testing.mock --port 0``; yields its URL.

    A separate process, so that serving Pagero does not compete with the load generator for
    the driver's GIL.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "django_pagero_oauth.testing.mock", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        first_line = process.stdout.readline()  # printed once it listens; "" if it died
        prefix = "Mock Pagero listening on "
        if not first_line.startswith(prefix):
            raise RuntimeError(f"the mock server did not start: {first_line!r}")
        yield first_line[len(prefix) :].strip()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def mock_settings(url: str) -> dict[str, str]:
    """The ``PAGERO_OAUTH`` fragment for the mock at ``url`` (the CLI's default client)."""
    from django_pagero_oauth.testing.mock import MockPagero

    return MockPagero().settings_for(url)


def mock_stats(url: str) -> dict[str, Any]:
    response = requests.get(f"{url}/_mock/stats", timeout=10)
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


# --- Django in the driver ----------------------------------------------------------------


@contextmanager
def bench_database() -> Iterator[str]:
    """Create a fresh, migrated database (``pagero_bench_<pid>``), drop it afterwards."""
    from django.db import connection, connections

    original = connection.settings_dict["NAME"]
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield name
    finally:
        connections.close_all()
        connection.creation.destroy_test_db(original, verbosity=0)


def connected_user(mock_url: str, username: str) -> Any:
    """A user connected to the mock through the real flow: login page, code, code exchange."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from django_pagero_oauth.conf import app_settings
    from django_pagero_oauth.models import PageroToken
    from django_pagero_oauth.oauth import exchange_code

    user = get_user_model().objects.create_user(username, password="x")
    redirect_uri = "http://127.0.0.1/bench/callback/"
    answer = requests.post(
        app_settings.AUTHORIZE_URL,
        data={
            "response_type": "code",
            "client_id": app_settings.CLIENT_ID,
            "redirect_uri": redirect_uri,
            "state": "bench",
            "action": "approve",
            "publicid": f"{username}-company",
        },
        allow_redirects=False,
        timeout=10,
    )
    code = parse_qs(urlsplit(answer.headers["Location"]).query)["code"][0]
    with transaction.atomic():
        PageroToken.store_for_user(user, exchange_code(code, redirect_uri=redirect_uri))
    return user


def session_cookies(user: Any, count: int) -> list[str]:
    """``count`` logged-in sessions of ``user``, as session cookie values."""
    from django.conf import settings
    from django.test import Client

    cookies = []
    for _ in range(count):
        client = Client()
        client.force_login(user)
        cookies.append(client.cookies[settings.SESSION_COOKIE_NAME].value)
    return cookies


def expire_access_token(user: Any) -> None:
    from django.utils import timezone

    from django_pagero_oauth.models import PageroToken

    PageroToken.objects.filter(user_id=user.pk).update(
        access_token_expires_at=timezone.now() - timedelta(seconds=1)
    )


def access_token_inside_leeway(user: Any) -> None:
    """The access token still works, but for less than ``REFRESH_LEEWAY``: a refresh is due."""
    from django.utils import timezone

    from django_pagero_oauth.conf import app_settings
    from django_pagero_oauth.models import PageroToken

    expires = timezone.now() + timedelta(seconds=app_settings.REFRESH_LEEWAY / 2)
    PageroToken.objects.filter(user_id=user.pk).update(
        access_token_issued_at=expires - timedelta(seconds=600), access_token_expires_at=expires
    )


# --- gunicorn ----------------------------------------------------------------------------


@contextmanager
def gunicorn(
    *,
    workers: int,
    threads: int,
    env: dict[str, str],
    worker_connections: int | None = None,
    keepalive: int = 5,
    log_name: str = "gunicorn",
) -> Iterator[str]:
    """gunicorn (gthread) serving :mod:`benchmarks.wsgi`; yields its base URL once every worker
    has loaded the application. ``worker_connections`` caps what one worker accepts, so that
    a burst spreads over all workers."""
    import socket

    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    listener = socket.create_server(("127.0.0.1", 0), backlog=2048)
    port = listener.getsockname()[1]
    ready_read, ready_write = os.pipe()
    command = [
        sys.executable, "-m", "gunicorn",
        "--config", "python:benchmarks.gunicorn_conf",
        "--bind", f"fd://{listener.fileno()}",
        "--worker-class", "gthread",
        "--workers", str(workers),
        "--threads", str(threads),
        "--worker-connections", str(worker_connections or 1000),
        "--keep-alive", str(keepalive),
        "--backlog", "2048",
        "--timeout", "120",
        "--graceful-timeout", "2",
        "--log-level", "warning",
        "benchmarks.wsgi:application",
    ]  # fmt: skip
    full_env = {
        **os.environ,
        **env,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
        "BENCH_READY_FD": str(ready_write),
    }
    log_path = BUILD_DIR / f"{log_name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 (a fixed command)
            command,
            cwd=REPO_ROOT,
            env=full_env,
            pass_fds=(listener.fileno(), ready_write),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    os.close(ready_write)
    listener.close()
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        received = b""
        while received.count(b"\n") < workers:
            readable, _, _ = select.select(
                [ready_read], [], [], max(deadline - time.monotonic(), 0)
            )
            chunk = os.read(ready_read, 4096) if readable else b""
            if not chunk:
                raise RuntimeError(f"gunicorn did not start its workers; see {log_path}")
            received += chunk
        yield f"http://127.0.0.1:{port}"
    finally:
        os.close(ready_read)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# --- uvicorn -----------------------------------------------------------------------------


@contextmanager
def uvicorn(*, env: dict[str, str], log_name: str = "uvicorn") -> Iterator[str]:
    """uvicorn (one process, one event loop) serving :mod:`benchmarks.asgi`; yields its base URL.

    The driver binds the socket and hands it over (``--fd``), so the port is known without a
    race and connections queue in the kernel until uvicorn accepts them: readiness is the first
    answer on the socket (no sleeping).
    """
    import socket

    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    listener = socket.create_server(("127.0.0.1", 0), backlog=2048)
    port = listener.getsockname()[1]
    command = [
        sys.executable, "-m", "uvicorn",
        "--fd", str(listener.fileno()),
        "--lifespan", "off",
        "--loop", "asyncio",
        "--http", "h11",
        "--log-level", "warning",
        "--no-access-log",
        "benchmarks.asgi:application",
    ]  # fmt: skip
    full_env = {
        **os.environ,
        **env,
        "DJANGO_SETTINGS_MODULE": "benchmarks.settings",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    log_path = BUILD_DIR / f"{log_name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 (a fixed command)
            command,
            cwd=REPO_ROOT,
            env=full_env,
            pass_fds=(listener.fileno(),),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    listener.close()
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            requests.get(f"{url}/unrelated-async/", timeout=READY_TIMEOUT).raise_for_status()
        except requests.RequestException as exc:
            raise RuntimeError(f"uvicorn did not answer ({exc}); see {log_path}") from None
        yield url
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


# --- load ---------------------------------------------------------------------------------


def _headers(cookie: str) -> dict[str, str]:
    from django.conf import settings

    return {"Cookie": f"{settings.SESSION_COOKIE_NAME}={cookie}", "Accept": "application/json"}


@dataclass
class Throughput:
    requests: int
    errors: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def closed_loop(base_url: str, path: str, cookies: Sequence[str], seconds: float) -> Throughput:
    """One client per cookie on a keep-alive connection, each sending its next request as soon
    as it has read the previous answer, for ``seconds``."""
    split = urlsplit(base_url)
    start = threading.Barrier(len(cookies) + 1)
    counts: list[tuple[int, int]] = []
    lock = threading.Lock()
    stop_at = [0.0]

    def client(cookie: str) -> None:
        headers = _headers(cookie)
        connection = http.client.HTTPConnection(
            split.hostname or "127.0.0.1", split.port, timeout=REQUEST_TIMEOUT
        )
        done = errors = 0
        start.wait()
        while time.perf_counter() < stop_at[0]:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                done += 1
            else:
                errors += 1
            if response.will_close:
                connection.close()
        connection.close()
        with lock:
            counts.append((done, errors))

    threads = [threading.Thread(target=client, args=(cookie,)) for cookie in cookies]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    return Throughput(sum(d for d, _ in counts), sum(e for _, e in counts), elapsed)


@dataclass
class Answer:
    status: int
    seconds: float


def burst(base_url: str, path: str, cookies: Sequence[str]) -> list[Answer]:
    """One request per cookie, all at once: every client connects first, then all send together.

    The latency is from sending the request to having read the whole answer."""
    split = urlsplit(base_url)
    start = threading.Barrier(len(cookies))
    answers: list[Answer] = []
    lock = threading.Lock()

    def client(cookie: str) -> None:
        connection = http.client.HTTPConnection(
            split.hostname or "127.0.0.1", split.port, timeout=REQUEST_TIMEOUT
        )
        connection.connect()
        start.wait()
        began = time.perf_counter()
        try:
            connection.request("GET", path, headers=_headers(cookie))
            response = connection.getresponse()
            response.read()
            status = response.status
        except OSError:
            status = 0
        answer = Answer(status, time.perf_counter() - began)
        connection.close()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=client, args=(cookie,)) for cookie in cookies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@dataclass
class Sample:
    started: float
    seconds: float
    status: int


def timed_loop(
    base_url: str, path: str, cookies: Sequence[str], began: float, seconds: float
) -> list[Sample]:
    """One keep-alive client per cookie, each sending its next request as soon as it has read
    the previous answer, from ``began`` (a ``perf_counter`` time) for ``seconds``; every
    request's start (relative to ``began``), latency and status."""
    split = urlsplit(base_url)
    samples: list[Sample] = []
    lock = threading.Lock()

    def client(cookie: str) -> None:
        headers = _headers(cookie)
        connection = http.client.HTTPConnection(
            split.hostname or "127.0.0.1", split.port, timeout=REQUEST_TIMEOUT
        )
        connection.connect()
        mine = []
        while (now := time.perf_counter()) < began + seconds:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            mine.append(Sample(now - began, time.perf_counter() - now, response.status))
            if response.will_close:
                connection.close()
        connection.close()
        with lock:
            samples.extend(mine)

    threads = [threading.Thread(target=client, args=(cookie,)) for cookie in cookies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return samples


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"
