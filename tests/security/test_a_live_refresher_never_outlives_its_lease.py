"""What this proves broken: the lease (``3 * TIMEOUT + 10`` s) is not longer than a token request
can take. ``TIMEOUT`` bounds each socket read, not the response's headers as a whole: a slow
network or proxy that delivers Pagero's answer a byte at a time, each byte within ``TIMEOUT``,
keeps the first refresher alive and waiting past its lease (so do DNS resolution, which no
timeout covers, and one connect timeout per address of the host). The lease runs out while its
holder lives; an expired-token caller takes it over and spends the SAME single-use refresh token
(Pagero answers ``invalid_grant``, and the caller reports the connection dead).

Real sockets: a TCP proxy between the site and the strict mock trickles the first answer's
headers (one byte every 0.3 s, ``TIMEOUT`` 1 s) until the test lets it go.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connections

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import TOKEN_PATH, MockRequest, MockResponse
from django_pagero_oauth.tokens import get_valid_token

pytestmark = pytest.mark.django_db(transaction=True)
DEADLINE = 40.0


class Caller(threading.Thread):
    def __init__(self, user: Any) -> None:
        super().__init__(daemon=True)
        self.user = user
        self.result: Any = None

    def run(self) -> None:
        try:
            self.result = get_valid_token(self.user)
        except BaseException as exc:  # the test asserts on it
            self.result = exc
        finally:
            connections.close_all()

    def outcome(self) -> Any:
        self.join(timeout=DEADLINE)
        assert not self.is_alive(), "the caller never returned"
        return self.result


class TricklingProxy:
    """Forwards TCP to ``upstream``; the FIRST connection's answer comes a byte at a time until
    ``release`` is set."""

    def __init__(self, upstream: tuple[str, int], interval: float) -> None:
        self.upstream, self.interval = upstream, interval
        self.release = threading.Event()
        self.trickling = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            slow = self.connections == 1
            upstream = socket.create_connection(self.upstream)
            threading.Thread(
                target=self._pipe, args=(downstream, upstream, False), daemon=True
            ).start()
            threading.Thread(
                target=self._pipe, args=(upstream, downstream, slow), daemon=True
            ).start()

    def _pipe(self, source: socket.socket, target: socket.socket, slow: bool) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if slow:
                    self.trickling.set()
                    while data and not self.release.is_set():
                        target.sendall(data[:1])
                        data = data[1:]
                        self.release.wait(self.interval)
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.release.set()
        self.listener.close()


@pytest.fixture
def proxy(pagero_mock: Any, settings: Any) -> Iterator[TricklingProxy]:
    token_url = settings.PAGERO_OAUTH["TOKEN_URL"]
    parts = urlsplit(token_url)
    trickler = TricklingProxy((parts.hostname, parts.port), interval=0.3)
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "TOKEN_URL": token_url.replace(parts.netloc, f"127.0.0.1:{trickler.port}"),
        "TIMEOUT": 1,
    }
    try:
        yield trickler
    finally:
        trickler.close()


@pytest.fixture
def spent(pagero_mock: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    mock = pagero_mock.mock
    answer = mock.handle
    seen: list[str] = []

    def handle(request: MockRequest) -> MockResponse:
        if request.path == TOKEN_PATH and request.form.get("grant_type") == ["refresh_token"]:
            seen.append(request.form["refresh_token"][0])
        return answer(request)

    monkeypatch.setattr(mock, "handle", handle)
    return seen


def test_a_live_refresher_never_outlives_its_lease(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, proxy: TricklingProxy, spent: list[str]
) -> None:
    token = pagero_token_factory(user, expired=True)
    first = Caller(user)
    first.start()
    assert proxy.trickling.wait(timeout=DEADLINE), "no answer started"

    second = Caller(user)  # an ordinary expired-token caller: it waits for the lease
    second.start()
    started = time.monotonic()
    while second.is_alive() and time.monotonic() - started < DEADLINE:
        second.join(timeout=0.1)
    second_result = second.outcome()
    assert first.is_alive(), "the first refresher gave up while its answer was still arriving"
    proxy.release.set()
    first_result = first.outcome()

    assert len(spent) == len(set(spent)), (
        f"one refresh token was spent {len(spent)} times while its first spender was alive; "
        f"the second caller got {second_result!r}"
    )
    assert not isinstance(first_result, BaseException), repr(first_result)
    stored = PageroToken.objects.get(pk=token.pk)
    assert pagero_mock.mock.is_refresh_token_valid(stored.refresh_token)
