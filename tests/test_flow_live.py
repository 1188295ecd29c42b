"""The whole flow over real HTTP, end to end: a ``requests.Session`` is the browser.

This site runs in pytest-django's ``live_server``, Pagero is the strict mock server; every hop
(login view, Pagero's login page, the approve form, the callback, the API call) is a real HTTP
request, with real cookies and the real middleware stack.
"""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault, MockPageroServer

pytestmark = pytest.mark.django_db(transaction=True)


class FormParser(HTMLParser):
    """The first form of a page: its action and its fields (hidden inputs and text inputs)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and not self._done:
            self.action, self._in_form = values.get("action", ""), True
        elif tag == "input" and self._in_form and "name" in values:
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._in_form:
            self._in_form, self._done = False, True


def first_form(response: requests.Response) -> tuple[str, dict[str, str]]:
    parser = FormParser()
    parser.feed(response.text)
    assert parser.action is not None, response.text
    return urljoin(response.url, parser.action), parser.fields


@pytest.fixture
def staff() -> Any:
    return get_user_model().objects.create_user(
        "bob", "bob@example.com", "correct horse", is_staff=True
    )


@pytest.fixture
def browser(live_site: Any, staff: Any) -> requests.Session:
    """A browser logged in to this site through the admin login form."""
    session = requests.Session()
    page = session.get(f"{live_site.url}/admin/login/", timeout=10)
    action, fields = first_form(page)
    fields.update(username="bob", password="correct horse", next="/plain/")
    landed = session.post(action, data=fields, timeout=10)
    assert landed.status_code == 200
    assert landed.url == f"{live_site.url}/plain/"
    return session


def open_pagero_login(
    browser: requests.Session, live_site: Any, mock_server: MockPageroServer, query: str = ""
) -> requests.Response:
    """Click "connect to Pagero": follow the redirect to Pagero's login page."""
    page = browser.get(f"{live_site.url}/pagero/login/{query}", timeout=10)
    assert page.status_code == 200
    assert page.url.startswith(mock_server.url + "/oauth/v2/oauth-authorize?")
    assert [hop.status_code for hop in page.history] == [302]
    return page


def decide(
    browser: requests.Session, page: requests.Response, action: str, publicid: str = "acme"
) -> requests.Response:
    """Press Approve or Deny at Pagero and follow every redirect back."""
    url, fields = first_form(page)
    fields.update(action=action, publicid=publicid)
    return browser.post(url, data=fields, timeout=10)


def test_connect_then_use_the_api(
    browser: requests.Session, live_site: Any, pagero_mock: MockPageroServer, staff: Any
) -> None:
    page = open_pagero_login(browser, live_site, pagero_mock, "?next=/api-data/")
    landed = decide(browser, page, "approve")

    hops = [(urlsplit(hop.url).path, hop.status_code) for hop in landed.history]
    assert hops == [("/oauth/v2/oauth-authorize", 302), ("/pagero/callback/", 302)]
    callback = landed.history[1]
    assert callback.headers["Referrer-Policy"] == "no-referrer"
    assert {"code", "state", "iss"} <= set(parse_qs(urlsplit(callback.url).query))
    assert landed.status_code == 200
    assert landed.url == f"{live_site.url}/api-data/"
    # The page called the mock API as the user, with the token the login stored.
    assert landed.json() == {
        "status": 200,
        "body": {"publicid": "acme", "name": "Demo Company AB", "client_id": "mock-client-id"},
    }
    token = PageroToken.objects.get(user=staff)
    assert pagero_mock.mock.is_refresh_token_valid(token.refresh_token)
    assert pagero_mock.mock.counts["authorization_code"] == 1
    assert pagero_mock.mock.counts["api"] == 1

    # Replaying the callback URL (e.g. from the history) does nothing.
    replay = browser.get(callback.url, allow_redirects=False, timeout=10)
    assert replay.status_code == 400
    assert "unknown or was already used" in replay.text
    assert pagero_mock.mock.counts["authorization_code"] == 1


def test_an_expired_access_token_is_refreshed_on_use(
    browser: requests.Session, live_site: Any, pagero_mock: MockPageroServer, staff: Any
) -> None:
    decide(browser, open_pagero_login(browser, live_site, pagero_mock), "approve")
    token = PageroToken.objects.get(user=staff)
    PageroToken.objects.filter(pk=token.pk).update(
        access_token_expires_at=token.access_token_issued_at
    )
    data = browser.get(f"{live_site.url}/api-data/", timeout=10)
    assert data.json()["status"] == 200
    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert not pagero_mock.mock.is_refresh_token_valid(token.refresh_token)
    assert pagero_mock.mock.is_refresh_token_valid(
        PageroToken.objects.get(user=staff).refresh_token
    )


def test_deny(
    browser: requests.Session, live_site: Any, pagero_mock: MockPageroServer, staff: Any
) -> None:
    page = open_pagero_login(browser, live_site, pagero_mock, "?next=/api-data/")
    landed = decide(browser, page, "deny")
    assert landed.status_code == 400
    assert urlsplit(landed.url).path == "/pagero/callback/"
    assert "cancelled or denied" in landed.text
    assert landed.headers["Referrer-Policy"] == "no-referrer"
    assert not PageroToken.objects.filter(user=staff).exists()
    assert pagero_mock.mock.counts["authorization_code"] == 0
    # Without a token, the protected page sends the browser to connect again.
    again = browser.get(f"{live_site.url}/api-data/", allow_redirects=False, timeout=10)
    assert again.status_code == 302
    assert again.headers["Location"].startswith("/pagero/login/?next=")


def test_with_pkce(
    browser: requests.Session,
    live_site: Any,
    pagero_mock: MockPageroServer,
    staff: Any,
    settings: Any,
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "PKCE": True}
    page = open_pagero_login(browser, live_site, pagero_mock)
    assert parse_qs(urlsplit(page.url).query)["code_challenge_method"] == ["S256"]
    landed = decide(browser, page, "approve")
    assert landed.url == f"{live_site.url}/"  # LOGIN_REDIRECT_URL (no page there: 404)
    assert PageroToken.objects.filter(user=staff).exists()


def test_a_failed_exchange_spends_the_state(
    browser: requests.Session, live_site: Any, pagero_mock: MockPageroServer, staff: Any
) -> None:
    """The 503 page is a 5xx, for which Django does not save the session by itself."""
    pagero_mock.mock.add_fault(Fault("token", status=503))
    landed = decide(browser, open_pagero_login(browser, live_site, pagero_mock), "approve")
    assert landed.status_code == 503
    assert "not reachable" in landed.text
    replay = browser.get(landed.url, timeout=10)
    assert replay.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 1
    assert not PageroToken.objects.filter(user=staff).exists()


def test_a_stranger_cannot_use_the_redirect_back(
    browser: requests.Session, live_site: Any, pagero_mock: MockPageroServer, staff: Any
) -> None:
    """An attacker who gets the URL back (with code and state) cannot use it in their browser."""
    get_user_model().objects.create_user("eve", "eve@example.com", "pw", is_staff=True)
    page = open_pagero_login(browser, live_site, pagero_mock)
    url, fields = first_form(page)
    back = browser.post(
        url, data={**fields, "action": "approve"}, allow_redirects=False, timeout=10
    ).headers["Location"]
    stranger = requests.Session()
    login_page = stranger.get(f"{live_site.url}/admin/login/", timeout=10)
    action, login_fields = first_form(login_page)
    stranger.post(action, data={**login_fields, "username": "eve", "password": "pw"}, timeout=10)
    stolen = stranger.get(back, allow_redirects=False, timeout=10)
    assert stolen.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert not PageroToken.objects.exists()
    # The user's own browser still completes the login.
    assert browser.get(back, allow_redirects=False, timeout=10).status_code == 302
    assert PageroToken.objects.filter(user=staff).exists()
