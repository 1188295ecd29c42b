"""What this proves broken: ``REVOKE_REPLACED_TOKEN`` off (documented for an authorization
server that revokes the whole grant, every token of the user and client, when one refresh token
is revoked, as RFC 7009 2.1 allows) is ignored by a refresh in flight. The user reconnects while
a refresh waits for Pagero's answer; the answer finds the row holding the new login's token and
``tokens._answer_unwanted`` revokes the orphaned refresh token unconditionally. On such a server
that ends the grant, and with it the connection the user has just made.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connections

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import TOKEN_PATH, Fault, MockRequest, MockResponse
from django_pagero_oauth.tokens import get_valid_token

from .conftest import Browser

pytestmark = pytest.mark.django_db(transaction=True)
DEADLINE = 30.0


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


@pytest.fixture
def refresh_answer_held(
    pagero_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[threading.Event, threading.Event]]:
    mock = pagero_mock.mock
    answer = mock.handle
    arrived, release = threading.Event(), threading.Event()

    def handle(request: MockRequest) -> MockResponse:
        response = answer(request)
        if request.path == TOKEN_PATH and request.form.get("grant_type") == ["refresh_token"]:
            arrived.set()
            release.wait(timeout=DEADLINE)
        return response

    monkeypatch.setattr(mock, "handle", handle)
    try:
        yield arrived, release
    finally:
        release.set()


def test_a_refresh_in_flight_never_revokes_the_grant_a_reconnect_just_made(
    browser: Browser,
    user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
    settings: Any,
    refresh_answer_held: Any,
) -> None:
    arrived, release = refresh_answer_held
    mock = pagero_mock.mock
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REVOKE_REPLACED_TOKEN": False}
    # This server revokes the whole grant when one refresh token is revoked.
    mock.add_fault(Fault(endpoint="revoke", revoke_grant=True, times=10))
    pagero_token_factory(user, expired=True, publicid="acme-ab")

    refresher = Caller(user)
    refresher.start()
    assert arrived.wait(timeout=DEADLINE), "no refresh reached Pagero"
    assert browser.login().status_code == 302  # the user reconnects meanwhile
    new = PageroToken.objects.get(user=user)
    assert mock.is_refresh_token_valid(new.refresh_token)
    release.set()
    refresher.outcome()

    assert mock.counts["revoke"] == 0, "a revocation REVOKE_REPLACED_TOKEN=False forbids"
    stored = PageroToken.objects.get(user=user)
    assert stored.refresh_token == new.refresh_token
    assert mock.is_refresh_token_valid(stored.refresh_token), "the new connection is dead"
