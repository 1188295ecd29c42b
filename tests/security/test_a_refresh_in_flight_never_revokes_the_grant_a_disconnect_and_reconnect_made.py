"""What this proves broken: with ``REVOKE_REPLACED_TOKEN`` off (an authorization server that
revokes the whole grant, every token of the user and client, later logins too, when one refresh
token is revoked), a refresh in flight still revokes its orphaned refresh token when the user
DISCONNECTED and then CONNECTED AGAIN while Pagero answered. The disconnect deleted the row, the
reconnect made a new one (a new primary key); ``store._answer_unwanted`` finds no row under the
old key, takes it for "disconnected meanwhile" and revokes the orphan unconditionally: on such a
server that ends the grant, and with it the connection the user has just made. (The fix for a
plain reconnect, ``test_a_refresh_in_flight_never_revokes_the_grant_a_reconnect_just_made``,
covers a row that was replaced in place only.)

Real sockets: the strict mock spends the refresh token and holds its answer; the disconnect
revokes the spent (dead) token, which RFC 7009 2.2 answers with 200 and nothing else.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import revoke

from .conftest import Browser
from .refresh_helpers import DEADLINE, Caller

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_refresh_in_flight_never_revokes_the_grant_a_disconnect_and_reconnect_made(
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
    # This server revokes the whole grant when one live refresh token is revoked.
    mock.add_fault(Fault(endpoint="revoke", revoke_grant=True, times=10))
    old = pagero_token_factory(user, expired=True, publicid="acme-ab")

    refresher = Caller(user)
    refresher.start()
    assert arrived.wait(timeout=DEADLINE), "no refresh reached Pagero"
    assert revoke(PageroToken.objects.get(pk=old.pk)).remote  # the user disconnects
    assert browser.login().status_code == 302  # and connects again
    new = PageroToken.objects.get(user=user)
    assert new.pk != old.pk
    assert mock.is_refresh_token_valid(new.refresh_token)
    release.set()
    refresher.outcome()

    stored = PageroToken.objects.get(user=user)
    assert stored.refresh_token == new.refresh_token
    assert mock.is_refresh_token_valid(stored.refresh_token), (
        "the refresh in flight revoked its orphan, and the grant with it: the new connection "
        "is dead"
    )
