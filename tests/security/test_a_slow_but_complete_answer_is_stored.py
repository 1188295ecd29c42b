"""What this proves broken: a refresh answer that arrives IN FULL, well within the request
deadline (``oauth.request_deadline``) and with every byte within ``TIMEOUT`` of the last, is
thrown away when its body took longer than ``TIMEOUT`` in all: ``transport.read_capped`` checks
its own deadline AFTER a read returned the whole body, and raises ``requests.Timeout`` on it.
Pagero has rotated; the new refresh token was in hand and is dropped; the stored one is dead.

The lease is kept alive while the answer comes (``lease.kept``) and the wall-clock cutoff
bounds the whole request, so the body deadline protects nothing any more, and "an answer that
is merely slow is still stored" (how-it-works, single-flight) does not hold for the body.

Real sockets: a TCP proxy between the site and the strict mock sends the first answer's
headers at once and its body in four pieces 0.6 s apart (``TIMEOUT`` 1 s).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import get_valid_token

from .refresh_helpers import FirstAnswerProxy, send_token_requests_to, token_upstream

pytestmark = pytest.mark.django_db(transaction=True)

PIECES, GAP, TIMEOUT = 4, 0.6, 1


class SlowBodyProxy(FirstAnswerProxy):
    """The first answer's body comes in ``PIECES`` pieces."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.closing = threading.Event()
        self.slowed = threading.Event()
        super().__init__(upstream)

    def forward(self, source: socket.socket, target: socket.socket, slow: bool) -> None:
        buffered = b""
        while data := source.recv(65536):
            if slow:
                buffered += data
                if b"\r\n\r\n" not in buffered:
                    continue
                head, body = buffered.split(b"\r\n\r\n", 1)
                while len(body) < 2 * PIECES:  # the body follows the headers
                    more = source.recv(65536)
                    if not more:
                        break
                    body += more
                target.sendall(head + b"\r\n\r\n")
                size = -(-len(body) // PIECES)
                for start in range(0, len(body), size):
                    self.closing.wait(GAP)  # a slow network, each piece within TIMEOUT
                    target.sendall(body[start : start + size])
                self.slowed.set()
                slow = False
                continue
            target.sendall(data)

    def close(self) -> None:
        self.closing.set()
        super().close()


@pytest.fixture
def slow_body(pagero_mock: Any, settings: Any) -> Iterator[SlowBodyProxy]:
    proxy = SlowBodyProxy(token_upstream(settings))
    send_token_requests_to(settings, proxy.port, timeout=TIMEOUT)
    try:
        yield proxy
    finally:
        proxy.close()


def test_a_slow_but_complete_answer_is_stored(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, slow_body: SlowBodyProxy
) -> None:
    token = pagero_token_factory(user, expired=True)

    fresh = get_valid_token(user)  # PageroUnavailable: "the connection broke while reading"

    assert slow_body.slowed.is_set(), "the answer did not come slowly"
    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.access_token == fresh.access_token
    assert pagero_mock.mock.is_refresh_token_valid(stored.refresh_token), (
        "Pagero's whole answer arrived; its rotated refresh token was dropped"
    )
