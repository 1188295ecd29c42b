"""``REVOKE_REPLACED_TOKEN = False`` is the setting for a server that revokes the whole grant
(RFC 7009 2.1) when one refresh token is revoked; with it, a reconnect keeps the connection.

The other revocations of the callback ignore it: the tokens of a sign-in that waits for the
link confirmation (or is refused) are revoked once the answer is sent, whatever the setting.
On such a server that revocation ends every token of the grant, so a logged-in user who
already has a working connection and clicks "Sign in with Pagero" to link their identity
(the same Pagero account) loses the connection, on exactly the server the setting exists for.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from django_pagero_oauth import get_client
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from tests.security.test_refused_sign_in_tokens_are_revoked import REFUSALS
from tests.test_signin import CALLBACK, LINK, SIGN_IN, at_pagero, single, start


def test_linking_an_identity_keeps_the_connection_when_revoke_replaced_token_is_off(
    user: Any, user_client: Client, pagero_mock: Any, pagero_token_factory: Any, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "SIGN_IN_ENABLED": True,
        "REVOKE_REPLACED_TOKEN": False,  # the server revokes whole grants
    }
    stored = pagero_token_factory(user, publicid="acme-ab")
    mock = pagero_mock.mock
    mock.add_fault(Fault(endpoint="revoke", revoke_grant=True))
    assert get_client(user).get("v1/me").status_code == 200

    back = user_client.get(CALLBACK, single(at_pagero(start(user_client, SIGN_IN), "acme-ab")))
    assert back.status_code == 302 and back["Location"] == LINK  # asks to confirm the link
    assert user_client.post(LINK, {"confirm": "1"}).status_code == 302

    kept = PageroToken.objects.get(pk=stored.pk)
    assert mock.is_refresh_token_valid(kept.refresh_token), (
        "linking the identity ended the user's working Pagero connection"
    )
    assert mock.counts["revoke"] == 0, "the link flow revoked a token at a grant-revoking server"


@pytest.mark.parametrize("case", list(REFUSALS))
def test_with_revoke_replaced_token_off_no_refused_sign_in_revokes(
    client: Client,
    user: Any,
    other_user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
    settings: Any,
    sign_in_enabled: None,
    case: str,
) -> None:
    """Every path the callback discards a sign-in's tokens on revokes nothing when the setting
    is off: on a grant-revoking server it would end the stored connection of the account."""
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REVOKE_REPLACED_TOKEN": False}
    stored = pagero_token_factory(other_user, publicid="acme-ab")
    pagero_mock.mock.add_fault(Fault(endpoint="revoke", revoke_grant=True))
    walk, status = REFUSALS[case]
    assert walk(client, user, other_user, pagero_mock, settings).status_code == status
    assert pagero_mock.mock.counts["revoke"] == 0
    assert pagero_mock.mock.is_refresh_token_valid(stored.refresh_token)
