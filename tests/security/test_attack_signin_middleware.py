"""Attack (availability): with ``PageroTokenMiddleware`` guarding the whole site, "Sign in with
Pagero" is unreachable.

``middleware._exempt_paths`` exempts the app's login, callback and disconnect URLs and
``LOGIN_URL`` ("enforcing a token there would lock users out"), but not ``pagero_oauth:sign_in``,
added with OpenID Connect. A site with ``PROTECTED_PATHS = [r"^/"]`` (every page needs Pagero)
sends an anonymous visitor who clicks "Sign in with Pagero" to ``LOGIN_URL`` instead of Pagero,
and a logged-in user without a token to the connect flow instead of the sign-in/link flow: the
sign-in feature is dead, and the README's promise ("never enforced ... lock users out") is
broken for it.

Impact: denial of the sign-in feature on such sites (no bypass, nothing leaks). Severity: low.
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
