"""The callback URL carries the code: it must not leak onwards, and no token is ever put in a
URL (item 12). RFC 6749 10.5 / RFC 6819 4.4.1.1 (code leakage through the Referer header).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from django_pagero_oauth import get_client
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token

from .conftest import CALLBACK_PATH, Browser, SentRequest, query_of, with_query


def _assert_leaves_nothing_behind(response: Any) -> None:
    assert response["Referrer-Policy"] == "no-referrer"
    cache_control = response.get("Cache-Control", "")
    assert "no-store" in cache_control  # the callback page is never cached either


def test_successful_callback_redirects_at_once_without_referrer(browser: Browser) -> None:
    callback_url = browser.pagero_answer(browser.start_login("/plain/"))
    response = browser.callback(callback_url)
    assert response.status_code == 302  # a real redirect, not a page that redirects later
    assert response.content == b""
    _assert_leaves_nothing_behind(response)
    params = query_of(callback_url)
    assert params["code"] not in response["Location"]
    assert params["state"] not in response["Location"]
    assert "code=" not in response["Location"]


@pytest.mark.parametrize(
    "change",
    [
        {"state": "forged"},
        {"code": None, "error": "access_denied"},
        {"iss": "https://evil.example"},
        {"code": None},
    ],
    ids=["bad state", "error", "bad iss", "no code"],
)
def test_failed_callback_pages_send_no_referrer(
    browser: Browser, change: dict[str, str | None]
) -> None:
    callback_url = browser.pagero_answer(browser.start_login())
    response = browser.callback(with_query(callback_url, **change))
    assert response.status_code == 400
    _assert_leaves_nothing_behind(response)
    # The page's own links (here: "try again") cannot carry the code either.
    assert query_of(callback_url)["code"] not in response.content.decode()
    assert b'name="referrer" content="no-referrer"' in response.content


def test_callback_error_after_the_exchange_sends_no_referrer(
    browser: Browser, pagero_mock: Any
) -> None:
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=503))
    response = browser.login()
    assert response.status_code == 503
    _assert_leaves_nothing_behind(response)


def test_no_token_or_secret_in_any_url_of_the_whole_flow(
    browser: Browser,
    user: Any,
    pagero_mock: Any,
    settings: Any,
    transport: list[SentRequest],
) -> None:
    """Every URL the browser saw (Location headers, pages opened) and every URL this app
    requested: no access, refresh or ID token, no client secret, and the code only in the
    one URL that must carry it (the callback)."""
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SCOPE": "all openid"}
    callback_url = browser.pagero_answer(browser.start_login("/plain/"))
    browser.callback(callback_url)
    token = get_valid_token(user, force_refresh=True)
    get_client(user).get("v1/me")
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401))
    get_client(user).get("v1/documents")
    token = PageroToken.objects.get()
    assert token.id_token  # the openid scope gave one: it is checked too

    secrets = {
        "client secret": settings.PAGERO_OAUTH["CLIENT_SECRET"],
        "access token": token.access_token,
        "refresh token": token.refresh_token,
        "id token": token.id_token,
        **{
            f"issued refresh token {i}": t
            for i, t in enumerate(pagero_mock.mock.issued_refresh_tokens)
        },
    }
    code = query_of(callback_url)["code"]
    urls = browser.urls + [request.url for request in transport]
    assert len(transport) >= 5
    for url in urls:
        for name, value in secrets.items():
            assert value not in url, f"{name} in {url}"
        if urlsplit(url).path != CALLBACK_PATH:
            assert code not in url, url
    for request in transport:  # tokens travel in headers and bodies, never in the URL
        assert "token=" not in request.url and "code=" not in request.url
