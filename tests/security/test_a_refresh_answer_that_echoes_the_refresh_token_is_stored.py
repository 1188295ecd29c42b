"""What this proves broken: the idempotent store ("the row already holds the refresh token
Pagero just issued: an earlier run committed and its acknowledgement was lost") is also true
on the FIRST run when the answer carries the refresh token that was spent. RFC 6749 section 6
lets a server answer a refresh with the same refresh token (it stays valid); so may a gateway
in front of Pagero. ``store.store_answer`` then takes the answer as already stored: the new
access token is thrown away, the refresh fails as ``PageroUnavailable`` with a back-off, and
every later refresh does the same: the user gets 503s forever and is never asked to log in.

Real sockets: the strict mock keeps the refresh token valid (``omit_refresh_token``) and
echoes it in the answer (``fields``).
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_refresh_answer_that_echoes_the_refresh_token_is_stored(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user, expired=True)
    mock = pagero_mock.mock
    mock.add_fault(
        Fault(
            endpoint="token",
            grant_type="refresh_token",
            omit_refresh_token=True,
            fields={"refresh_token": token.refresh_token},
        )
    )

    fresh = get_valid_token(user)  # PageroUnavailable: "could not be used in full"

    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.access_token == fresh.access_token != token.access_token
    assert not stored.is_access_token_expired()
    assert mock.is_refresh_token_valid(stored.refresh_token)
