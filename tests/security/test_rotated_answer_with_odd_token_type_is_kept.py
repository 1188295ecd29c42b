"""What this proves: a refresh answer that rotated the refresh token is kept when its
``token_type`` is not a string (``["Bearer"]``, ``{"type": "bearer"}``, ``1``, ``true``).

Pagero has already spent the old single-use refresh token, and such a value names no other
token type, so ``TokenResponse.from_json`` takes it as bearer (with a warning), as it does a
missing or empty one; only a string naming another type (``mac``, ``DPoP``) is refused.
Refusing it would throw away the new refresh token and end the user's 3-year connection.
(Found by the second security review, finding 3.)
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token

ODD_TYPES = {"list": ["Bearer"], "object": {"type": "bearer"}, "number": 1, "true": True}


@pytest.mark.parametrize("token_type", list(ODD_TYPES.values()), ids=list(ODD_TYPES))
def test_rotated_answer_with_a_non_string_token_type_keeps_the_new_refresh_token(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, token_type: Any
) -> None:
    token = pagero_token_factory(user, expired=True)
    mock = pagero_mock.mock
    mock.add_fault(
        Fault(endpoint="token", grant_type="refresh_token", fields={"token_type": token_type})
    )

    with contextlib.suppress(Exception):  # judged below by what survives
        get_valid_token(user)

    stored = PageroToken.objects.get(pk=token.pk)
    assert mock.is_refresh_token_valid(stored.refresh_token), (
        "Pagero rotated, the new refresh token was dropped and the stored one is dead"
    )
