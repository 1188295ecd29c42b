"""What this proves broken: ``REVOKE_REPLACED_TOKEN`` off (documented for an authorization
server that revokes the whole grant, every token of the user and client, when one refresh token
is revoked, as RFC 7009 2.1 allows) is ignored by a refresh in flight. The user reconnects while
a refresh waits for Pagero's answer; the answer finds the row holding the new login's token and
``store._answer_unwanted`` revokes the orphaned refresh token unconditionally. On such a server
that ends the grant, and with it the connection the user has just made.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault

from .conftest import Browser
from .refresh_helpers import DEADLINE, Caller

pytestmark = pytest.mark.django_db(transaction=True)


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
