"""The callback URL carries the code: it must not leak onwards, and no token is ever put in a
URL (item 12). RFC 6749 10.5 / RFC 6819 4.4.1.1 (code leakage through the Referer header).

The referrer policy is decided per answer, by a header: ``no-referrer`` where the URL holds a
secret (every answer of the callback), ``same-origin`` on the pages with POST forms (disconnect,
link), whose URLs hold none: there the browser must send this site's origin, or Django's CSRF
check refuses the POST (``Origin: null`` under ``no-referrer``). No template sets a policy of
its own, which would override the header for its page. The real browser proves the forms work:
``tests/browser/test_package_pages.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.template.loader import get_template
from django.test import Client

import django_pagero_oauth
from django_pagero_oauth import get_client
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token
from tests.test_signin import CALLBACK, LINK, SIGN_IN, at_pagero, single, start

from .conftest import CALLBACK_PATH, DISCONNECT_PATH, Browser, SentRequest, query_of, with_query


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


def _assert_sends_this_sites_origin(response: Any) -> None:
    """What a browser sends with a POST from this page: the site's origin, never ``null``."""
    assert response["Referrer-Policy"] == "same-origin"
    assert b'name="referrer"' not in response.content


@pytest.fixture
def no_site_wide_policy(settings: Any) -> None:
    """The site sets no policy (``SecurityMiddleware`` adds none): the package's answers say."""
    settings.SECURE_REFERRER_POLICY = None


@pytest.mark.usefixtures("no_site_wide_policy")
def test_disconnect_pages_send_this_sites_origin_with_their_forms(
    browser: Browser, pagero_mock: Any
) -> None:
    browser.login()
    page = browser.client.get(DISCONNECT_PATH)
    assert page.status_code == 200 and b'method="post"' in page.content
    _assert_sends_this_sites_origin(page)

    pagero_mock.mock.add_fault(Fault(endpoint="revoke", status=503))
    failed = browser.client.post(DISCONNECT_PATH)  # "Remove from this site only" is offered
    assert failed.status_code == 503 and b'name="local_only"' in failed.content
    _assert_sends_this_sites_origin(failed)

    done = browser.client.post(DISCONNECT_PATH)
    assert done.status_code == 302 and done["Referrer-Policy"] == "same-origin"


@pytest.mark.usefixtures("no_site_wide_policy", "sign_in_enabled")
def test_the_link_page_sends_this_sites_origin_with_its_form(
    user_client: Client, pagero_mock: Any
) -> None:
    back = user_client.get(CALLBACK, single(at_pagero(start(user_client, SIGN_IN), "acme-ab")))
    assert back.status_code == 302 and back["Location"] == LINK
    assert back["Referrer-Policy"] == "no-referrer"  # the callback's URL holds the code

    page = user_client.get(LINK)
    assert page.status_code == 200 and b'method="post"' in page.content
    _assert_sends_this_sites_origin(page)
    linked = user_client.post(LINK, {"confirm": "1"})
    assert linked.status_code == 302 and linked["Referrer-Policy"] == "same-origin"


def test_no_template_sets_a_referrer_policy_of_its_own() -> None:
    """A ``<meta name="referrer">`` would override the answer's header for its page."""
    templates = Path(django_pagero_oauth.__file__).parent / "templates"
    names = sorted(str(path.relative_to(templates)) for path in templates.rglob("*.html"))
    assert "django_pagero_oauth/base.html" in names
    for name in names:
        source = get_template(name).template.source  # type: ignore[attr-defined]
        assert "referrer" not in source.lower(), name
