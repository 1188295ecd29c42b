"""Attack: a JWT access token with an out-of-range timestamp claim crashes the admin change view.

``admin.PageroTokenAdmin.decoded_access_token`` turns every integer ``iat``/``nbf``/``exp``/
``auth_time`` of the (unverified) access-token payload into a date with
``datetime.fromtimestamp``, which raises ``OverflowError``/``ValueError``/``OSError`` for values
such as ``10**20`` or ``-10**20``. The access token comes from the token endpoint unverified
(``TokenResponse.from_json`` only wants a non-empty string), so one odd answer makes the user's
token page answer 500 until the next refresh; with the "Refresh now" / "Revoke" buttons on that
page, staff cannot act on that one connection from its page. (A hostile or broken token endpoint;
nothing secret leaks: the 500 report of that frame shows the decoded payload only.)

Severity: low (availability of one admin page).

Fix (suggested): ``admin.PageroTokenAdmin.decoded_access_token``: convert each timestamp inside
``try/except (OverflowError, ValueError, OSError)`` and skip (or show raw) the ones that fail.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.urls import reverse

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token


def _jwt(payload: dict[str, Any]) -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(payload)}.c2lnbmF0dXJl"


@pytest.mark.parametrize("claims", [{"exp": 10**20}, {"iat": -(10**20)}], ids=["exp", "iat"])
def test_change_view_of_a_token_with_an_odd_timestamp_is_no_500(
    admin_client: Any, user: Any, pagero_mock: Any, pagero_token_factory: Any, claims: Any
) -> None:
    token = pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(
        Fault(
            endpoint="token",
            grant_type="refresh_token",
            fields={"access_token": _jwt({"publicid": "acme", **claims})},
        )
    )
    get_valid_token(user)  # stores the answer (a good rotated answer, as far as from_json goes)
    assert PageroToken.objects.get(pk=token.pk).publicid == "acme"

    url = reverse("admin:django_pagero_oauth_pagerotoken_change", args=[token.pk])
    try:
        response = admin_client.get(url)
    except Exception as exc:  # the test client re-raises what the view let escape
        pytest.fail(f"the change view crashed: {type(exc).__name__}: {exc}")
    assert response.status_code == 200
