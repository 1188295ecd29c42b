"""Helpers of the security tests that race a refresh: a caller thread, a hook on the mock's
refresh grants, and TCP proxies that slow Pagero's answer on real sockets."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.db import connections

from django_pagero_oauth.testing.mock import TOKEN_PATH, MockRequest, MockResponse
from django_pagero_oauth.tokens import get_valid_token

#: Upper bound for anything a test waits for; never reached when the code is right.
DEADLINE = 30.0


class Caller(threading.Thread):
    """``get_valid_token(user)`` in a thread with database connections of its own; the result,
    or the exception raised, is kept for the test."""

    def __init__(self, user: Any, deadline: float = DEADLINE) -> None:
        super().__init__(daemon=True)
        self.user = user
        self.deadline = deadline
        self.result: Any = None
        self.connection: Any = None

    def run(self) -> None:
        try:
            self.connection = connections["default"]
            self.result = get_valid_token(self.user)
        except BaseException as exc:  # the test asserts on it
            self.result = exc
        finally:
            self.close()

    def close(self) -> None:
        """What the thread closes when it ends."""
        connections.close_all()

    def outcome(self) -> Any:
        self.join(timeout=self.deadline)
        assert not self.is_alive(), "the caller never returned"
        return self.result


def on_refresh_grant(
    pagero_mock: Any,
    monkeypatch: pytest.MonkeyPatch,
    hook: Callable[[MockRequest], None],
    *,
    answered: bool = True,
) -> None:
    """The mock calls ``hook(request)`` for every refresh grant it gets: after it has processed
    the grant (the token rotated, the answer not yet sent), or before, if ``answered`` is
    false."""
    mock = pagero_mock.mock
    answer = mock.handle

    def handle(request: MockRequest) -> MockResponse:
        refresh = request.path == TOKEN_PATH and request.form.get("grant_type") == ["refresh_token"]
        if refresh and not answered:
            hook(request)
        response = answer(request)
        if refresh and answered:
            hook(request)
        return response

    monkeypatch.setattr(mock, "handle", handle)


# --- proxies between the site and the mock --------------------------------------------------


def token_upstream(settings: Any) -> tuple[str, int]:
    """The host and port that ``TOKEN_URL`` names (the strict mock's)."""
    parts = urlsplit(settings.PAGERO_OAUTH["TOKEN_URL"])
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def send_token_requests_to(settings: Any, port: int, timeout: float) -> None:
    """Token requests go to ``127.0.0.1:port`` (a proxy), with ``TIMEOUT`` set to ``timeout``."""
    token_url = settings.PAGERO_OAUTH["TOKEN_URL"]
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "TOKEN_URL": token_url.replace(urlsplit(token_url).netloc, f"127.0.0.1:{port}"),
        "TIMEOUT": timeout,
    }


def shut_down(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


class FirstAnswerProxy:
    """Forwards TCP to ``upstream``; the FIRST connection's answer goes through
    :meth:`forward` with ``slow`` set, which subclasses make slow."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        first = True
        while True:
            try:
                downstream, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            for source, target, slow in (
                (downstream, upstream, False),
                (upstream, downstream, first),
            ):
                threading.Thread(
                    target=self._pipe, args=(source, target, slow), daemon=True
                ).start()
            first = False

    def _pipe(self, source: socket.socket, target: socket.socket, slow: bool) -> None:
        try:
            self.forward(source, target, slow)
        except OSError:
            pass
        finally:
            shut_down(source, target)

    def forward(self, source: socket.socket, target: socket.socket, slow: bool) -> None:
        while data := source.recv(65536):
            target.sendall(data)

    def close(self) -> None:
        self.listener.close()


class TricklingProxy(FirstAnswerProxy):
    """The first connection's answer comes a byte at a time until ``release`` is set."""

    def __init__(self, upstream: tuple[str, int], interval: float) -> None:
        self.interval = interval
        self.release = threading.Event()
        self.trickling = threading.Event()
        super().__init__(upstream)

    def forward(self, source: socket.socket, target: socket.socket, slow: bool) -> None:
        while data := source.recv(65536):
            if slow:
                self.trickling.set()
                while data and not self.release.is_set():
                    target.sendall(data[:1])
                    data = data[1:]
                    self.release.wait(self.interval)
            target.sendall(data)

    def close(self) -> None:
        self.release.set()
        super().close()
