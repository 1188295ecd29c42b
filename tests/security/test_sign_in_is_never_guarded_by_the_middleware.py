"""What this proves: with ``PageroTokenMiddleware`` guarding the whole site
(``PROTECTED_PATHS = [r"^/"]``), "Sign in with Pagero" still reaches Pagero: the sign-in URL
(and the identity-link page) are exempt like the app's other flow URLs and ``LOGIN_URL``, since
enforcing a token there would lock out the very visitors who come to get one.

Found by a security review (low): ``middleware._exempt_paths`` left out
``pagero_oauth:sign_in``, so an anonymous visitor was sent to ``LOGIN_URL`` instead.
"""

from __future__ import annotations

from typing import Any

from django.test import Client

from django_pagero_oauth.testing.mock import MockPageroServer

SIGN_IN = "/pagero/sign-in/"


def test_sign_in_is_exempt_from_the_middleware_like_the_other_flow_urls(
    client: Client, pagero_mock: MockPageroServer, settings: Any, db: None
) -> None:
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "PROTECTED_PATHS": [r"^/"],
        "SIGN_IN_ENABLED": True,
    }
    # Control: the other flow URLs are exempt (the callback answers itself, not the guard).
    assert client.get("/pagero/callback/").status_code == 400
    response = client.get(SIGN_IN)
    assert response.status_code == 302
    assert response["Location"].startswith(pagero_mock.url), (
        f"anonymous sign-in was sent to {response['Location']!r}, not to Pagero"
    )
