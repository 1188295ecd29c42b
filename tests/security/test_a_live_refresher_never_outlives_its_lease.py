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

import time
from typing import Any

import pytest

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import MockRequest

from .refresh_helpers import Caller, TricklingProxy, on_refresh_grant

pytestmark = pytest.mark.django_db(transaction=True)
DEADLINE = 40.0


@pytest.fixture
def spent(pagero_mock: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []

    def record(request: MockRequest) -> None:
        seen.append(request.form["refresh_token"][0])

    on_refresh_grant(pagero_mock, monkeypatch, record, answered=False)
    return seen


def test_a_live_refresher_never_outlives_its_lease(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, proxy: TricklingProxy, spent: list[str]
) -> None:
    token = pagero_token_factory(user, expired=True)
    first = Caller(user, DEADLINE)
    first.start()
    assert proxy.trickling.wait(timeout=DEADLINE), "no answer started"

    second = Caller(user, DEADLINE)  # an ordinary expired-token caller: it waits for the lease
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
