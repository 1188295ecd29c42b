"""What this proves broken: the wall-clock cutoff (``oauth.request_deadline``) misses a request
whose connection is still being made when the deadline passes. ``transport._HTTPConnection``
registers the connection at the start of ``request()``, before it connects; ``Cutoff.cut``
then finds no socket to shut down, and ``Cutoff.add`` (which shuts down a late connection)
has already run. Once connected, the answer may trickle in (each byte within ``TIMEOUT``) for
as long as the network likes, and the lease keeper (``lease.kept``), which has no deadline of
its own, extends the refresh lease all that time: every expired-token caller of the user gets
``TokenLockTimeout`` (a 503) and nobody else may refresh, with no bound at all.

(Over https the connection is made before ``request()``; a handshake trickling past the
deadline is likewise cut only when it ends. DNS resolution, which no socket shutdown reaches,
holds a refresh and its lease the same way.)

Real sockets: a TCP proxy whose accept queue is full (its connects wait) until after the
deadline, then forwarding to the strict mock and trickling the answer a byte every 0.3 s.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from django_pagero_oauth import oauth
from django_pagero_oauth.exceptions import PageroUnavailable

from .refresh_helpers import Caller, send_token_requests_to, shut_down, token_upstream

pytestmark = pytest.mark.django_db(transaction=True)

REQUEST_DEADLINE = 1.5
CONNECT_WAIT = 4.0  # the network's delay: past the deadline, within TIMEOUT
TIMEOUT = 8
TRICKLE = 0.3
DEADLINE = 15.0


class SlowConnectProxy:
    """Connects wait ``CONNECT_WAIT`` (the accept queue is full); then TCP is forwarded to
    ``upstream`` and the answers come a byte at a time until ``release`` is set."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.release = threading.Event()
        self.trickling = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(0)
        self.port = self.listener.getsockname()[1]
        # One connection nobody accepts fills the queue (backlog 0): later connects wait.
        self.fillers = [socket.create_connection(("127.0.0.1", self.port))]
        self.filler_addresses = {filler.getsockname() for filler in self.fillers}
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        self.release.wait(CONNECT_WAIT)  # the slow network
        try:
            while True:
                downstream, address = self.listener.accept()
                if address in self.filler_addresses:
                    downstream.close()
                    continue
                upstream = socket.create_connection(self.upstream)
                for source, target, slow in (
                    (downstream, upstream, False),
                    (upstream, downstream, True),
                ):
                    threading.Thread(
                        target=self._pipe, args=(source, target, slow), daemon=True
                    ).start()
        except OSError:
            return

    def _pipe(self, source: socket.socket, target: socket.socket, slow: bool) -> None:
        try:
            while data := source.recv(65536):
                while slow and data and not self.release.is_set():
                    self.trickling.set()
                    target.sendall(data[:1])
                    data = data[1:]
                    self.release.wait(TRICKLE)
                target.sendall(data)
        except OSError:
            pass
        finally:
            shut_down(source, target)

    def close(self) -> None:
        self.release.set()
        for sock in [self.listener, *self.fillers]:
            shut_down(sock)
            sock.close()


@pytest.fixture
def slow_connect(
    pagero_mock: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SlowConnectProxy]:
    monkeypatch.setattr(oauth, "request_deadline", lambda: REQUEST_DEADLINE)
    proxy = SlowConnectProxy(token_upstream(settings))
    send_token_requests_to(settings, proxy.port, timeout=TIMEOUT)
    try:
        yield proxy
    finally:
        proxy.close()


def test_a_request_whose_connect_outlasts_the_deadline_is_still_cut_off(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, slow_connect: SlowConnectProxy
) -> None:
    pagero_token_factory(user, expired=True)
    refresher = Caller(user, deadline=40.0)
    refresher.start()

    refresher.join(timeout=DEADLINE)
    still_running = refresher.is_alive()
    slow_connect.release.set()
    result = refresher.outcome()

    assert not still_running, (
        f"the refresh (and its lease) outlived its {REQUEST_DEADLINE}s deadline by "
        f"{DEADLINE - REQUEST_DEADLINE:.0f}s and more"
    )
    assert isinstance(result, PageroUnavailable), repr(result)
    assert "did not answer in time" in str(result)
