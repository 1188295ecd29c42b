"""The admin's token page shows a token whose (unverified) JWT has out-of-range timestamps.

The access token comes from the token endpoint unverified, so its ``iat``/``nbf``/``exp``/
``auth_time`` may be anything; ``exp: 10**20`` or ``iat: -10**20`` is no date
(``datetime.fromtimestamp`` raises). What this proves: the change view (with its "Refresh now"
and "Revoke" buttons) still answers 200, showing the dates it can and skipping the others.
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
