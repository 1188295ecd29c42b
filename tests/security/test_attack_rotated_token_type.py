"""Attack: a rotated refresh answer whose ``token_type`` is not a string loses the connection.

``TokenResponse.from_json`` promises that an answer WITH a new refresh token (Pagero has
already spent the old single-use one) is refused only when it cannot be stored and used;
for ``token_type`` only when it "names another type (``mac``, ``DPoP``)". A missing, ``null``
or empty one is taken as bearer. But ``_check_bearer`` refuses any non-string value:
``"token_type": ["Bearer"]``, ``{"type": "bearer"}``, ``1`` or ``true`` names no other token
type, yet the whole answer is refused with ``InvalidTokenResponse``; the new refresh token
is thrown away, the stored one is already dead at Pagero, and the next refresh gets
``invalid_grant``: the user's 3-year connection ends. A proxy or gateway that rewrites
JSON (or a Pagero bug) is enough; the package's own rule says such answers are repaired.

Severity: medium (permanent loss of the connection from one malformed field; needs a
misbehaving server or middlebox).

Fix: in ``oauth._check_bearer``, for a rotated answer treat a ``token_type`` that is not a
string (or a list whose only item is "bearer") as a missing one (bearer, with a warning);
refuse only a string naming another type.
"""

from __future__ import annotations

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

    try:
        get_valid_token(user)
    except Exception:  # noqa: BLE001 - judged below by what survives
        pass

    stored = PageroToken.objects.get(pk=token.pk)
    assert mock.is_refresh_token_valid(stored.refresh_token), (
        "Pagero rotated, the new refresh token was dropped and the stored one is dead"
    )
