"""What this proves broken: the user disconnects (``revocation.revoke``: Pagero revokes the refresh
token, the row is deleted) while a refresh of that token is on its way to Pagero. Pagero answers
the refresh ``invalid_grant``; ``store.store_invalid_grant`` finds no row and marks the deleted row
dead anyway: ``save(update_fields=...)`` on a missing row raises ``DatabaseError``, which
``durable.durably`` takes for a broken connection and retries, on new connections, for ``TIMEOUT``
seconds, and then the raw ``DatabaseError`` escapes ``get_valid_token``: a server error (500 in
a view, a crashed job) instead of :class:`TokenGone` (the caller's "connect to Pagero" answer).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from django_pagero_oauth.exceptions import TokenGone
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import MockRequest
from django_pagero_oauth.tokens import revoke

from .refresh_helpers import DEADLINE, Caller, on_refresh_grant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def refresh_request_delayed(
    pagero_mock: Any, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """The refresh request reaches Pagero, which processes it only when ``release`` is set."""
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TIMEOUT": 1}
    arrived, release = threading.Event(), threading.Event()

    def delay(request: MockRequest) -> None:
        arrived.set()
        release.wait(timeout=DEADLINE)

    on_refresh_grant(pagero_mock, monkeypatch, delay, answered=False)
    try:
        yield arrived, release
    finally:
        release.set()


def test_a_disconnect_during_a_refresh_is_token_gone_not_a_server_error(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, refresh_request_delayed: Any
) -> None:
    arrived, release = refresh_request_delayed
    token = pagero_token_factory(user, expired=True)

    refresher = Caller(user)
    refresher.start()
    assert arrived.wait(timeout=DEADLINE), "no refresh reached Pagero"
    assert revoke(PageroToken.objects.get(pk=token.pk)).remote  # the user disconnects
    release.set()
    result = refresher.outcome()

    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert not PageroToken.objects.filter(pk=token.pk).exists()
    assert isinstance(result, TokenGone), repr(result)
