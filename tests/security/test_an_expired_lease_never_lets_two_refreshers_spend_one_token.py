"""What this proves broken: the lease is not a fence. A holder that outlives its lease (the
process stopped by SIGSTOP, a GC or VM pause, swapping; or the database server's clock stepped
forward, which ends every lease at once) is taken over: a second refresher spends the SAME
refresh token the first one already spent. Pagero answers it ``invalid_grant``; the second
refresher re-reads the row, which still holds the spent token (the first has not stored yet),
and marks the connection dead (``token_refresh_failed`` reason ``reauthorization_required``).

Here the mock Pagero rotates the token for the first refresher and holds its answer; the
lease's end is brought forward in the row (what the DB clock stepping forward, or the pause,
does); a second caller then refreshes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_pagero_oauth.exceptions import PageroAuthorizationRequired, PageroUnavailable
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import MockRequest

from .refresh_helpers import DEADLINE, Caller, on_refresh_grant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def first_answer_held(
    pagero_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[threading.Event, threading.Event, list[str]]]:
    """The first refresh grant is processed (the token rotated), its answer held."""
    arrived, release = threading.Event(), threading.Event()
    spent: list[str] = []

    def hold_first(request: MockRequest) -> None:
        spent.append(request.form["refresh_token"][0])
        if len(spent) == 1:
            arrived.set()
            release.wait(timeout=DEADLINE)

    on_refresh_grant(pagero_mock, monkeypatch, hold_first)
    try:
        yield arrived, release, spent
    finally:
        release.set()


def test_an_expired_lease_never_lets_two_refreshers_spend_one_token(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, first_answer_held: Any
) -> None:
    arrived, release, spent = first_answer_held
    mock = pagero_mock.mock
    token = pagero_token_factory(user, expired=True)

    first = Caller(user)
    first.start()
    assert arrived.wait(timeout=DEADLINE), "no refresh reached Pagero"
    row = PageroToken.objects.get(pk=token.pk)
    assert row.refresh_lease_until is not None, "the first refresher holds no lease"
    # The first refresher is paused past its lease (or the DB clock stepped forward).
    PageroToken.objects.filter(pk=token.pk).update(
        refresh_lease_until=timezone.now() - timedelta(seconds=1)
    )
    second = Caller(user)
    second.start()
    deadline = time.monotonic() + DEADLINE
    while second.is_alive() and time.monotonic() < deadline:
        second.join(timeout=0.05)
    second_result = second.outcome()
    release.set()
    first_result = first.outcome()

    # The lease is not a fence (Pagero takes no fencing token): a holder paused past its lease
    # cannot be told from a dead one, so the taker may spend the same refresh token. What must
    # hold is that its invalid_grant is not taken for a dead connection: the holder that spent
    # the token first stores Pagero's answer.
    assert len(set(spent)) == 1
    assert isinstance(second_result, PageroUnavailable), repr(second_result)
    assert not isinstance(second_result, PageroAuthorizationRequired)
    stored = PageroToken.objects.get(pk=token.pk)
    assert not stored.needs_reauthorization
    assert mock.is_refresh_token_valid(stored.refresh_token)
    assert not isinstance(first_result, BaseException), repr(first_result)
