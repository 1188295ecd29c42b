"""Tests of ``views.py``: login, callback and disconnect, against the mock over real sockets.

The browser is Django's test client; the user's visit to Pagero's login page and every call
from this site to Pagero (code exchange, revocation) go over real HTTP to the strict mock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote_plus, unquote_plus, urljoin, urlsplit

import pytest
import requests
from django.contrib.messages import get_messages
from django.test import Client

from django_pagero_oauth import flows
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.signals import token_obtained
from django_pagero_oauth.testing.mock import OMIT, Fault, MockPageroServer
from django_pagero_oauth.transport import MAX_RESPONSE_BYTES

LOGIN = "/pagero/login/"
CALLBACK = "/pagero/callback/"
DISCONNECT = "/pagero/disconnect/"
REDIRECT_URI = "http://testserver" + CALLBACK
AWKWARD_SECRET = "s3:cr%2et+ é/x"
ISSUER = "https://sso.pagero.example"


def single(url: str) -> dict[str, str]:
    """The query of ``url``; every parameter must appear exactly once."""
    parsed = parse_qs(urlsplit(url).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in parsed.values()), parsed
    return {name: values[0] for name, values in parsed.items()}


def start_login(client: Client, **params: str) -> str:
    """GET the login view; returns the authorization URL it redirects to."""
    response = client.get(LOGIN, params)
    assert response.status_code == 302, response.content
    return str(response["Location"])


def at_pagero(authorize_url: str, action: str = "approve", publicid: str = "demo-company") -> str:
    """What the user does at Pagero's login page (over real HTTP); returns the URL back."""
    page = requests.get(authorize_url, timeout=5)
    assert page.status_code == 200, page.text  # the strict mock accepted the request
    endpoint = authorize_url.split("?", 1)[0]
    form = {**single(authorize_url), "action": action, "publicid": publicid}
    answer = requests.post(endpoint, data=form, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    back = answer.headers["Location"]
    assert back.startswith(REDIRECT_URI + "?")
    return back


def come_back(client: Client, url_back: str) -> Any:
    """The browser following the redirect back to this site's callback."""
    return client.get(CALLBACK, single(url_back))


def connect(client: Client, **params: str) -> Any:
    """The whole flow; returns the callback's response."""
    return come_back(client, at_pagero(start_login(client, **params)))


def pending(client: Client) -> dict[str, Any]:
    return dict(client.session.get(flows.SESSION_KEY, {}))


def message_texts(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def recorded(pagero_mock: MockPageroServer, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every request the mock receives, in order."""
    seen: list[Any] = []
    handle = pagero_mock.mock.handle

    def recording(request: Any) -> Any:
        seen.append(request)
        return handle(request)

    monkeypatch.setattr(pagero_mock.mock, "handle", recording)
    return seen


def token_requests(recorded: list[Any]) -> list[Any]:
    return [request for request in recorded if request.path == "/oauth/v2/oauth-token"]


@pytest.fixture
def mock_(pagero_mock: MockPageroServer, settings: Any) -> MockPageroServer:
    """The mock, with ``LOGIN_REDIRECT_URL`` left at Django's ``/``."""
    return pagero_mock


def set_pagero(settings: Any, **values: Any) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, **values}


def assert_nothing_stored(*users: Any) -> None:
    assert not PageroToken.objects.filter(user__in=users).exists()


def assert_error_page(response: Any, status: int, text: str) -> None:
    assert response.status_code == status
    assert response["Referrer-Policy"] == "no-referrer"
    assert "django_pagero_oauth/error.html" in [t.name for t in response.templates]
    content = response.content.decode()
    assert text in content, content
    assert f'href="{LOGIN}' in content  # "Try again" (with the flow's next, when it is known)


# --- login ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_login_requires_a_logged_in_user(client: Client) -> None:
    response = client.get(LOGIN, {"next": "/plain/"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?")
    back_here = single(response["Location"])["next"]
    assert back_here.startswith(LOGIN + "?")
    assert single(back_here) == {"next": "/plain/"}
    assert flows.SESSION_KEY not in client.session


def test_login_redirects_to_the_authorization_endpoint(
    user_client: Client, user: Any, pagero_mock: MockPageroServer
) -> None:
    response = user_client.get(LOGIN, {"next": "/plain/"})
    assert response.status_code == 302
    assert "no-cache" in response["Cache-Control"]
    location = response["Location"]
    assert location.startswith(pagero_mock.url + "/oauth/v2/oauth-authorize?")
    params = single(location)
    state = params.pop("state")
    challenge = params.pop("code_challenge")  # PKCE is on by default
    assert params == {
        "response_type": "code",
        "client_id": pagero_mock.mock.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "all",
        "code_challenge_method": "S256",
    }
    assert len(base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))) * 8 >= 128
    entry = pending(user_client)[state]
    assert entry["user_id"] == str(user.pk)
    assert entry["redirect_uri"] == REDIRECT_URI
    assert entry["next_url"] == "/plain/"
    digest = hashlib.sha256(entry["code_verifier"].encode()).digest()
    assert challenge == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert isinstance(entry["created"], float)


def test_login_with_prompt(user_client: Client, pagero_mock: MockPageroServer) -> None:
    assert single(start_login(user_client, prompt="login"))["prompt"] == "login"
    assert "prompt" not in single(start_login(user_client, prompt="none"))


def test_login_with_pkce(user_client: Client, pagero_mock: MockPageroServer, settings: Any) -> None:
    set_pagero(settings, PKCE=True)
    params = single(start_login(user_client))
    verifier = pending(user_client)[params["state"]]["code_verifier"]
    assert re.fullmatch(r"[A-Za-z0-9\-._~]{43,128}", verifier)
    digest = hashlib.sha256(verifier.encode()).digest()
    assert params["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert params["code_challenge_method"] == "S256"


def test_login_without_pkce(
    user_client: Client, pagero_mock: MockPageroServer, settings: Any
) -> None:
    set_pagero(settings, PKCE=False)
    params = single(start_login(user_client))
    assert "code_challenge" not in params and "code_challenge_method" not in params
    assert pending(user_client)[params["state"]]["code_verifier"] is None


def test_login_uses_the_configured_redirect_uri_and_scope(
    user_client: Client, pagero_mock: MockPageroServer, settings: Any
) -> None:
    set_pagero(settings, REDIRECT_URI="https://app.example/cb/", SCOPE=["all", "openid"])
    params = single(start_login(user_client))
    assert params["redirect_uri"] == "https://app.example/cb/"
    assert params["scope"] == "all openid"
    assert pending(user_client)[params["state"]]["redirect_uri"] == "https://app.example/cb/"


def test_every_login_gets_a_fresh_state(user_client: Client, pagero_mock: MockPageroServer) -> None:
    states = [single(start_login(user_client))["state"] for _ in range(3)]
    assert len(set(states)) == 3
    assert set(pending(user_client)) == set(states)


def test_login_accepts_only_get(user_client: Client, pagero_mock: MockPageroServer) -> None:
    assert user_client.post(LOGIN).status_code == 405


# --- callback: success ------------------------------------------------------------------


@pytest.fixture
def obtained() -> Iterator[list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)

    token_obtained.connect(receiver)
    yield calls
    token_obtained.disconnect(receiver)


def test_the_whole_flow(
    user_client: Client,
    user: Any,
    pagero_mock: MockPageroServer,
    recorded: list[Any],
    obtained: list[dict[str, Any]],
) -> None:
    authorize_url = start_login(user_client, next="/plain/?a=1")
    state = single(authorize_url)["state"]
    back = at_pagero(authorize_url, publicid="acme")
    assert single(back)["iss"] == pagero_mock.url
    response = come_back(user_client, back)

    assert response.status_code == 302
    assert response["Location"] == "/plain/?a=1"
    assert response["Referrer-Policy"] == "no-referrer"
    assert state not in pending(user_client)
    token = PageroToken.objects.get(user=user)
    assert pagero_mock.mock.is_access_token_valid(token.access_token)
    assert pagero_mock.mock.is_refresh_token_valid(token.refresh_token)
    assert token.publicid == "acme"
    assert token.status == PageroToken.Status.ACTIVE
    assert [call["token"].pk for call in obtained] == [token.pk]
    assert obtained[0]["user"] == user

    (exchange,) = token_requests(recorded)
    verifier = exchange.form.pop("code_verifier")  # PKCE is on by default
    assert exchange.form == {
        "grant_type": ["authorization_code"],
        "code": [single(back)["code"]],
        "redirect_uri": [REDIRECT_URI],
    }
    digest = hashlib.sha256(verifier[0].encode()).digest()
    assert (
        single(authorize_url)["code_challenge"]
        == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    )
    assert exchange.headers["authorization"].startswith("Basic ")


def test_lands_on_login_redirect_url_without_next(
    user_client: Client, pagero_mock: MockPageroServer, settings: Any
) -> None:
    assert connect(user_client)["Location"] == "/"
    set_pagero(settings, LOGIN_REDIRECT_URL="/pagero-connected/")
    assert connect(user_client)["Location"] == "/pagero-connected/"


def test_a_new_login_replaces_the_token(
    user_client: Client, user: Any, pagero_token_factory: Any
) -> None:
    old = pagero_token_factory(user, publicid="old-company")
    come_back(user_client, at_pagero(start_login(user_client), publicid="new-company"))
    token = PageroToken.objects.get(user=user)
    assert token.pk == old.pk
    assert token.publicid == "new-company"
    assert token.refresh_token != old.refresh_token


def test_two_tabs_both_complete(
    user_client: Client, user: Any, pagero_mock: MockPageroServer
) -> None:
    tab1 = start_login(user_client, next="/one/")
    tab2 = start_login(user_client, next="/two/")
    assert come_back(user_client, at_pagero(tab2))["Location"] == "/two/"
    assert come_back(user_client, at_pagero(tab1))["Location"] == "/one/"
    assert pagero_mock.mock.counts["authorization_code"] == 2
    assert PageroToken.objects.filter(user=user).count() == 1


def test_at_most_max_pending_flows(user_client: Client, pagero_mock: MockPageroServer) -> None:
    urls = [start_login(user_client) for _ in range(6)]
    response = come_back(user_client, at_pagero(urls[0]))  # the oldest was dropped
    assert_error_page(response, 400, "unknown or was already used")
    for url in urls[1:]:
        assert come_back(user_client, at_pagero(url)).status_code == 302


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
@pytest.mark.parametrize("pkce", [False, True], ids=["no-pkce", "pkce"])
def test_awkward_secrets_under_both_client_auth_methods_with_and_without_pkce(
    user_client: Client,
    user: Any,
    pagero_mock: MockPageroServer,
    recorded: list[Any],
    settings: Any,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    pkce: bool,
) -> None:
    monkeypatch.setattr(pagero_mock.mock, "client_secret", AWKWARD_SECRET)
    set_pagero(settings, CLIENT_SECRET=AWKWARD_SECRET, CLIENT_AUTH_METHOD=method, PKCE=pkce)
    authorize_url = start_login(user_client)
    verifier = pending(user_client)[single(authorize_url)["state"]]["code_verifier"]
    response = come_back(user_client, at_pagero(authorize_url))
    assert response.status_code == 302, response.content
    assert PageroToken.objects.filter(user=user).exists()

    (exchange,) = token_requests(recorded)
    if method == "client_secret_basic":
        credentials = exchange.headers["authorization"].removeprefix("Basic ")
        user_part, password = base64.b64decode(credentials).decode().split(":")
        assert user_part == quote_plus(pagero_mock.mock.client_id)
        assert password == quote_plus(AWKWARD_SECRET)  # RFC 6749 2.3.1: urlencoded first
        assert unquote_plus(password) == AWKWARD_SECRET
        assert "client_secret" not in exchange.form
    else:
        assert exchange.form["client_secret"] == [AWKWARD_SECRET]
        assert "authorization" not in exchange.headers
    if pkce:
        assert exchange.form["code_verifier"] == [verifier]
        assert 43 <= len(verifier) <= 128
    else:
        assert verifier is None
        assert "code_verifier" not in exchange.form


def test_pkce_verifier_mismatch_stores_nothing(
    user_client: Client, user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    set_pagero(settings, PKCE=True)
    authorize_url = start_login(user_client)
    session = user_client.session
    entries = session[flows.SESSION_KEY]
    entries[single(authorize_url)["state"]]["code_verifier"] = "x" * 43
    session[flows.SESSION_KEY] = entries
    session.save()
    response = come_back(user_client, at_pagero(authorize_url))
    assert_error_page(response, 400, "did not accept this login")
    assert_nothing_stored(user)


# --- callback: state --------------------------------------------------------------------


def test_a_replayed_callback_fails(
    user_client: Client, user: Any, pagero_mock: MockPageroServer
) -> None:
    back = at_pagero(start_login(user_client))
    assert come_back(user_client, back).status_code == 302
    token = PageroToken.objects.get(user=user)
    response = come_back(user_client, back)
    assert_error_page(response, 400, "unknown or was already used")
    assert pagero_mock.mock.counts["authorization_code"] == 1
    assert PageroToken.objects.get(user=user).refresh_token == token.refresh_token


def test_a_callback_in_another_session_fails(
    user_client: Client, user: Any, pagero_mock: MockPageroServer
) -> None:
    back = at_pagero(start_login(user_client))
    other_browser = Client()
    other_browser.force_login(user)
    assert_error_page(come_back(other_browser, back), 400, "unknown or was already used")
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert_nothing_stored(user)
    # The session that started the flow still completes it.
    assert come_back(user_client, back).status_code == 302


def test_a_callback_for_another_user_fails(
    user_client: Client, user: Any, other_user: Any, pagero_mock: MockPageroServer
) -> None:
    back = at_pagero(start_login(user_client))
    attacker = Client()
    attacker.force_login(other_user)
    session = attacker.session
    session[flows.SESSION_KEY] = pending(user_client)  # the state, but in the wrong user's session
    session.save()
    assert_error_page(come_back(attacker, back), 400, "started by another user")
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert_nothing_stored(user, other_user)


def test_an_anonymous_callback_fails(
    user_client: Client, user: Any, pagero_mock: MockPageroServer
) -> None:
    back = at_pagero(start_login(user_client))
    user_client.logout()
    assert come_back(user_client, back).status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert_nothing_stored(user)


def test_an_expired_state_fails(
    user_client: Client, user: Any, pagero_mock: MockPageroServer
) -> None:
    authorize_url = start_login(user_client)
    state = single(authorize_url)["state"]
    session = user_client.session
    entries = session[flows.SESSION_KEY]
    entries[state]["created"] -= 601  # STATE_MAX_AGE is 600
    session[flows.SESSION_KEY] = entries
    session.save()
    back = at_pagero(authorize_url)
    assert_error_page(come_back(user_client, back), 400, "took too long")
    assert state not in pending(user_client)
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert_nothing_stored(user)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"state": ""},
        {"state": "forged"},
        {"state": "\u00e9t\u00e9"},
        {"code": "c"},
        {"code": "c", "state": "forged"},
    ],
)
def test_a_callback_without_a_known_state_fails(
    user_client: Client, user: Any, pagero_mock: MockPageroServer, params: dict[str, str]
) -> None:
    start_login(user_client)
    response = user_client.get(CALLBACK, params)
    assert response.status_code == 400
    assert response["Referrer-Policy"] == "no-referrer"
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert len(pending(user_client)) == 1


def test_a_callback_without_a_code_fails(
    user_client: Client, user: Any, pagero_mock: MockPageroServer
) -> None:
    state = single(start_login(user_client))["state"]
    response = user_client.get(CALLBACK, {"state": state, "iss": pagero_mock.url})
    assert_error_page(response, 400, "has no authorization code")
    assert state not in pending(user_client)


# --- callback: OAuth error responses ----------------------------------------------------


def test_the_user_denies(user_client: Client, user: Any, pagero_mock: MockPageroServer) -> None:
    back = at_pagero(start_login(user_client), action="deny")
    assert single(back)["error"] == "access_denied"
    response = come_back(user_client, back)
    assert_error_page(response, 400, "cancelled or denied")
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert_nothing_stored(user)
    assert_error_page(come_back(user_client, back), 400, "unknown or was already used")


@pytest.mark.parametrize(
    ("error", "text"),
    [
        ("login_required", "Please log in at Pagero"),
        ("temporarily_unavailable", "temporarily unavailable"),
        ("server_error", "could not complete the login"),
        ("<script>alert(1)</script>", "could not connect your account"),
    ],
)
def test_error_responses_show_a_clear_escaped_page(
    user_client: Client, user: Any, pagero_mock: MockPageroServer, error: str, text: str
) -> None:
    state = single(start_login(user_client))["state"]
    response = user_client.get(
        CALLBACK,
        {
            "error": error,
            "error_description": "<img src=x onerror=alert(1)>",
            "error_uri": "javascript:alert(1)",
            "state": state,
            "iss": pagero_mock.url,
        },
    )
    assert_error_page(response, 400, text)
    content = response.content.decode()
    assert "<script>" not in content
    assert "<img" not in content
    assert "javascript:" not in content
    assert pagero_mock.mock.counts["authorization_code"] == 0


# --- callback: iss (RFC 9207) -----------------------------------------------------------


@pytest.fixture
def https_issuer(
    pagero_mock: MockPageroServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> MockPageroServer:
    monkeypatch.setattr(pagero_mock.mock, "issuer", ISSUER)
    set_pagero(settings, ISSUER=ISSUER)
    return pagero_mock


def test_the_exact_issuer_is_accepted(
    user_client: Client, user: Any, https_issuer: MockPageroServer
) -> None:
    back = at_pagero(start_login(user_client))
    assert single(back)["iss"] == ISSUER
    assert come_back(user_client, back).status_code == 302
    assert PageroToken.objects.filter(user=user).exists()


@pytest.mark.parametrize(
    "iss",
    [
        ISSUER + "/",
        "https://SSO.pagero.example",
        "HTTPS://sso.pagero.example",
        "https://sso.pagero.example:443",
        "https://sso.pagero.example.evil.example",
        "http://sso.pagero.example",
        "",
        OMIT,
    ],
    ids=[
        "trailing-slash",
        "host-case",
        "scheme-case",
        "explicit-443",
        "suffix",
        "http",
        "empty",
        "missing",
    ],
)
def test_an_issuer_mismatch_is_rejected_before_any_token_call(
    user_client: Client, user: Any, https_issuer: MockPageroServer, iss: Any
) -> None:
    https_issuer.mock.add_fault(Fault("authorize", iss=iss))
    back = at_pagero(start_login(user_client))
    assert single(back).get("iss") == (None if iss is OMIT else iss)
    assert_error_page(come_back(user_client, back), 400, "expected Pagero server")
    assert https_issuer.mock.counts["authorization_code"] == 0
    assert_nothing_stored(user)
    assert pending(user_client) == {}


def test_the_issuer_is_checked_on_error_responses_too(
    user_client: Client, user: Any, https_issuer: MockPageroServer
) -> None:
    https_issuer.mock.add_fault(Fault("authorize", iss="https://evil.example"))
    back = at_pagero(start_login(user_client), action="deny")
    assert_error_page(come_back(user_client, back), 400, "expected Pagero server")


def test_without_issuer_setting_iss_is_not_required(
    user_client: Client, user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    set_pagero(settings, ISSUER="")
    pagero_mock.mock.add_fault(Fault("authorize", iss=OMIT))
    assert connect(user_client).status_code == 302
    assert PageroToken.objects.filter(user=user).exists()


# --- callback: bad token responses ------------------------------------------------------


def token_body(**changes: Any) -> str:
    body: dict[str, Any] = {
        "token_type": "bearer",
        "access_token": "eyJhbGciOiJSUzI1NiJ9.e30.c2ln",
        "refresh_token": "_1XBPWQQ_x",
        "expires_in": 600,
    }
    body.update(changes)
    return json.dumps({key: value for key, value in body.items() if value is not None})


TOO_BIG = token_body(access_token="a" * (MAX_RESPONSE_BYTES + 1))

BAD_TOKEN_RESPONSES = {
    "500": (Fault("token", status=500), 503, "not reachable"),
    "503": (Fault("token", status=503, headers=[("Retry-After", "5")]), 503, "not reachable"),
    "invalid_grant": (
        Fault("token", status=400, body='{"error": "invalid_grant"}'),
        400,
        "did not accept this login",
    ),
    "invalid_client": (Fault("token", status=401), 503, "misconfigured"),
    "html": (
        Fault("token", status=200, body="<html>Log in</html>", content_type="text/html"),
        502,
        "cannot be used",
    ),
    "invalid-json": (Fault("token", status=200, body="{'access_token': 1"), 502, "cannot be used"),
    "json-array": (Fault("token", status=200, body="[]"), 502, "cannot be used"),
    "no-access-token": (
        Fault("token", status=200, body=token_body(access_token=None)),
        502,
        "cannot be used",
    ),
    "token-type-mac": (
        Fault("token", status=200, body=token_body(token_type="mac")),
        502,
        "cannot be used",
    ),
    # An off-spec expires_in is repaired, not refused (tests/security/test_token_response.py);
    # what cannot be stored is refused:
    "token-type-dpop": (
        Fault("token", status=200, body=token_body(token_type="DPoP")),
        502,
        "cannot be used",
    ),
    "empty-refresh-token": (
        Fault("token", status=200, body=token_body(refresh_token="")),
        502,
        "cannot be used",
    ),
    "over-1MiB": (Fault("token", status=200, body=TOO_BIG), 502, "cannot be used"),
    "no-refresh-token": (Fault("token", omit_refresh_token=True), 502, "cannot be used"),
    "dropped": (Fault("token", drop=True), 503, "not reachable"),
}


@pytest.mark.parametrize(
    ("fault", "status", "text"), BAD_TOKEN_RESPONSES.values(), ids=BAD_TOKEN_RESPONSES.keys()
)
def test_a_bad_token_response_stores_nothing(
    user_client: Client,
    user: Any,
    pagero_mock: MockPageroServer,
    fault: Fault,
    status: int,
    text: str,
) -> None:
    back = at_pagero(start_login(user_client))
    pagero_mock.mock.add_fault(fault)
    assert_error_page(come_back(user_client, back), status, text)
    assert_nothing_stored(user)
    # The state is spent even though the answer was a 5xx (for which Django skips saving the
    # session): a replay makes no second token request.
    assert_error_page(come_back(user_client, back), 400, "unknown or was already used")
    assert pagero_mock.mock.counts["authorization_code"] == 1


def test_a_bad_token_response_keeps_the_existing_token(
    user_client: Client, user: Any, pagero_mock: MockPageroServer, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)
    back = at_pagero(start_login(user_client))
    pagero_mock.mock.add_fault(Fault("token", omit_refresh_token=True))
    assert come_back(user_client, back).status_code == 502
    stored = PageroToken.objects.get(user=user)
    assert (stored.access_token, stored.refresh_token) == (token.access_token, token.refresh_token)


def test_wrong_client_secret(
    user_client: Client, user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    set_pagero(settings, CLIENT_SECRET="not-the-secret")
    assert_error_page(connect(user_client), 503, "misconfigured")
    assert_nothing_stored(user)


# --- open redirects ---------------------------------------------------------------------

EVIL_NEXT = [
    "//evil.example",
    "//evil.example/path",
    "///evil.example",
    "////evil.example",
    "https://evil.example",
    "http://evil.example",
    "HTTPS://evil.example",
    "https:evil.example",
    "https:/evil.example",
    "http:///evil.example",
    "http:\\\\evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "java\tscript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/%2F%2Fevil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "\t//evil.example",
    " //evil.example",
    "\x01//evil.example",
    "http://testserver@evil.example",
    "http://testserver.evil.example",
    "http://evil.example\\@testserver",
    "//evil.example:80",
    "ftp://evil.example",
    "//\uff45vil.example",  # fullwidth "e": browsers normalise it to an ASCII "e"
    "http://testserver:evil@evil.example",
]


def browser_target(location: str) -> Any:
    """Where a browser goes for ``Location`` (WHATWG URL parsing, the parts that matter)."""
    url = location.strip("".join(chr(c) for c in range(0x21)))
    url = re.sub(r"[\t\n\r]", "", url).replace("\\", "/")
    return urlsplit(urljoin(REDIRECT_URI, url))


@pytest.mark.parametrize("next_url", EVIL_NEXT)
def test_next_never_leaves_the_site(
    user_client: Client, pagero_mock: MockPageroServer, next_url: str
) -> None:
    response = connect(user_client, next=next_url)
    assert response.status_code == 302
    target = browser_target(response["Location"])
    assert target.scheme == "http"
    assert target.netloc == "testserver"


@pytest.mark.parametrize("next_url", EVIL_NEXT)
def test_unsafe_next_falls_back_to_login_redirect_url(
    user_client: Client, pagero_mock: MockPageroServer, next_url: str
) -> None:
    state = single(start_login(user_client, next=next_url))["state"]
    stored = pending(user_client)[state]["next_url"]
    assert stored == "/" or browser_target(stored).netloc == "testserver"
    if next_url != "/%2F%2Fevil.example":  # a path on this site: allowed
        assert stored == "/"


@pytest.mark.parametrize(
    ("next_url", "landing"),
    [
        ("/plain/", "/plain/"),
        ("/plain/?a=1&b=%2F", "/plain/?a=1&b=%2F"),
        ("http://testserver/plain/", "http://testserver/plain/"),
        ("  /plain/  ", "/plain/"),
        ("/caf\u00e9/", "/caf%C3%A9/"),
    ],
)
def test_safe_next_is_honoured(
    user_client: Client, pagero_mock: MockPageroServer, next_url: str, landing: str
) -> None:
    assert connect(user_client, next=next_url)["Location"] == landing


def test_next_may_not_downgrade_to_http_on_a_secure_site(
    user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    client = Client()
    client.force_login(user)
    response = client.get(LOGIN, {"next": "http://testserver/plain/"}, secure=True)
    state = single(response["Location"])["state"]
    assert pending(client)[state]["next_url"] == "/"


def test_a_tampered_session_next_is_checked_again(
    user_client: Client, pagero_mock: MockPageroServer
) -> None:
    authorize_url = start_login(user_client, next="/plain/")
    session = user_client.session
    entries = session[flows.SESSION_KEY]
    entries[single(authorize_url)["state"]]["next_url"] = "//evil.example"
    session[flows.SESSION_KEY] = entries
    session.save()
    assert come_back(user_client, at_pagero(authorize_url))["Location"] == "/"


# --- what the database holds after a login -----------------------------------------------


def test_no_plaintext_token_in_the_database_after_a_login(
    user_client: Client, user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    from django.db import connection

    set_pagero(settings, SCOPE="all openid")
    connect(user_client)
    (issued,) = pagero_mock.mock.issued_refresh_tokens
    token = PageroToken.objects.get(user=user)
    assert token.refresh_token == issued
    assert token.id_token
    table = connection.ops.quote_name(PageroToken._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [token.pk])  # noqa: S608
        row = " ".join(str(value) for value in cursor.fetchone())
    for secret in (token.access_token, token.refresh_token, token.id_token):
        assert secret not in row


# --- disconnect -------------------------------------------------------------------------


@pytest.mark.django_db
def test_disconnect_requires_login(client: Client) -> None:
    response = client.get(DISCONNECT)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert client.post(DISCONNECT).status_code == 302


def test_disconnect_page(user: Any, pagero_token_factory: Any) -> None:
    pagero_token_factory(user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    response = client.get(DISCONNECT, {"next": "//evil.example"})
    content = response.content.decode()
    assert response.status_code == 200
    assert "csrfmiddlewaretoken" in content
    assert 'name="next" value="/"' in content
    assert "Remove from this site only" not in content
    PageroToken.objects.filter(user=user).delete()
    assert "not connected" in client.get(DISCONNECT).content.decode()


def test_disconnect_needs_csrf(user: Any, pagero_token_factory: Any) -> None:
    pagero_token_factory(user)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(DISCONNECT).status_code == 403
    assert PageroToken.objects.filter(user=user).exists()
    client.get(DISCONNECT)  # sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    response = client.post(DISCONNECT, {"csrfmiddlewaretoken": token, "next": "/plain/"})
    assert response.status_code == 302
    assert response["Location"] == "/plain/"
    assert not PageroToken.objects.filter(user=user).exists()


def test_disconnect_revokes_at_pagero(
    user_client: Client,
    user: Any,
    pagero_mock: MockPageroServer,
    pagero_token_factory: Any,
    recorded: list[Any],
) -> None:
    token = pagero_token_factory(user)
    response = user_client.post(DISCONNECT, {"next": "https://evil.example/"})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert not PageroToken.objects.filter(user=user).exists()
    (revocation,) = [r for r in recorded if r.path == "/oauth/v2/oauth-revoke"]
    assert revocation.form == {
        "token": [token.refresh_token],
        "token_type_hint": ["refresh_token"],
    }
    assert revocation.headers["authorization"].startswith("Basic ")
    assert not pagero_mock.mock.is_refresh_token_valid(token.refresh_token)
    assert not pagero_mock.mock.is_access_token_valid(token.access_token)
    assert message_texts(response) == [
        "Disconnected from Pagero: the connection was revoked and removed."
    ]


def test_disconnect_without_revoke_url_deletes_locally_and_says_so(
    user_client: Client,
    user: Any,
    pagero_mock: MockPageroServer,
    pagero_token_factory: Any,
    settings: Any,
) -> None:
    token = pagero_token_factory(user)
    set_pagero(settings, REVOKE_URL="")
    response = user_client.post(DISCONNECT)
    assert response.status_code == 302
    assert not PageroToken.objects.filter(user=user).exists()
    assert pagero_mock.mock.counts["revoke"] == 0
    assert pagero_mock.mock.is_refresh_token_valid(token.refresh_token)
    assert message_texts(response) == [
        "The connection was removed from this site; Pagero was not told."
    ]


@pytest.mark.parametrize(
    "fault",
    [
        Fault("revoke", status=503, headers=[("Retry-After", "10")]),
        Fault("revoke", drop=True),
        Fault("revoke", status=400, body='{"error": "unsupported_token_type"}'),
    ],
    ids=["503", "dropped", "oauth-error"],
)
def test_when_pagero_cannot_confirm_the_token_is_kept(
    user_client: Client,
    user: Any,
    pagero_mock: MockPageroServer,
    pagero_token_factory: Any,
    fault: Fault,
) -> None:
    token = pagero_token_factory(user)
    pagero_mock.mock.add_fault(fault)
    response = user_client.post(DISCONNECT, {"next": "/plain/"})
    assert response.status_code == 503
    content = response.content.decode()
    assert "could not confirm the disconnection" in content
    assert "Remove from this site only" in content
    assert 'name="local_only" value="1"' in content
    assert PageroToken.objects.get(user=user).refresh_token == token.refresh_token
    assert pagero_mock.mock.is_refresh_token_valid(token.refresh_token)

    response = user_client.post(DISCONNECT, {"local_only": "1", "next": "/plain/"})
    assert response.status_code == 302
    assert response["Location"] == "/plain/"
    assert not PageroToken.objects.filter(user=user).exists()
    assert pagero_mock.mock.counts["revoke"] == 1  # only the failed attempt
    assert message_texts(response) == [
        "The connection was removed from this site; Pagero was not told."
    ]


def test_disconnect_without_a_connection(
    user_client: Client, user: Any, pagero_mock: MockPageroServer
) -> None:
    response = user_client.post(DISCONNECT)
    assert response.status_code == 302
    assert pagero_mock.mock.counts["revoke"] == 0
    assert message_texts(response) == ["There was no Pagero connection to remove."]


def test_disconnect_leaves_other_users_alone(
    user_client: Client, user: Any, other_user: Any, pagero_token_factory: Any
) -> None:
    pagero_token_factory(user)
    theirs = pagero_token_factory(other_user)
    user_client.post(DISCONNECT)
    assert PageroToken.objects.get(user=other_user).refresh_token == theirs.refresh_token


# --- malformed answers and leaks --------------------------------------------------------


@pytest.mark.parametrize("name", ["iss", "code", "state", "error"])
@pytest.mark.parametrize("order", ["right first", "wrong first"])
def test_a_repeated_parameter_is_rejected_and_spends_the_state(
    user_client: Client, user: Any, pagero_mock: MockPageroServer, name: str, order: str
) -> None:
    """RFC 6749 3.1: no parameter twice. Which of two ``iss`` would be checked? Neither."""
    back = at_pagero(start_login(user_client))
    params = single(back)
    values = [params.get(name, "access_denied"), "https://evil.example"]
    if order == "wrong first":
        values.reverse()
    query = "&".join(f"{key}={quote_plus(value)}" for key, value in params.items() if key != name)
    query += "".join(f"&{name}={quote_plus(value)}" for value in values)
    response = user_client.get(f"{CALLBACK}?{query}")
    assert_error_page(response, 400, "malformed")
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert_nothing_stored(user)
    assert pending(user_client) == {}


def test_no_code_or_token_in_any_log_record(
    user_client: Client,
    user: Any,
    pagero_mock: MockPageroServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every logger at DEBUG (template variable lookups log the request, with its query)."""
    for name in ("", "django", "django_pagero_oauth", "urllib3"):
        caplog.set_level("DEBUG", logger=name)
    codes = []
    for fault in (None, Fault("token", status=503), Fault("token", status=200, body="[]")):
        back = at_pagero(start_login(user_client))
        codes.append(single(back)["code"])
        if fault is not None:
            pagero_mock.mock.add_fault(fault)
        come_back(user_client, back)
        come_back(user_client, back)  # replayed
    user_client.get(DISCONNECT)
    user_client.post(DISCONNECT)
    loggers = {record.name for record in caplog.records}
    assert {"django.request", "django_pagero_oauth", "urllib3.connectionpool"} <= loggers
    secrets = [*codes, *pagero_mock.mock.issued_refresh_tokens]
    for secret in secrets:
        assert secret not in caplog.text


def test_a_token_that_cannot_be_decrypted_can_be_seen_and_is_kept_on_failure(
    user_client: Client,
    user: Any,
    pagero_mock: MockPageroServer,
    pagero_token_factory: Any,
    settings: Any,
) -> None:
    """The encryption key was lost: the page still works and offers local removal."""
    from cryptography.fernet import Fernet

    pagero_token_factory(user)
    set_pagero(settings, ENCRYPTION_KEYS=[Fernet.generate_key().decode()])
    page = user_client.get(DISCONNECT)
    assert page.status_code == 200
    assert 'name="disconnect"' in page.content.decode()  # the token is shown
    response = user_client.post(DISCONNECT)
    assert response.status_code == 503
    assert "cannot be read" in response.content.decode()
    assert "Remove from this site only" in response.content.decode()
    assert PageroToken.objects.filter(user=user).exists()
    assert pagero_mock.mock.counts["revoke"] == 0


def test_try_again_after_a_denied_login_keeps_the_requested_page(user_client, pagero_mock):
    """The failure page's "Try again" starts a new login that still leads to ``next``."""
    login = user_client.get("/pagero/login/", {"next": "/protected/"})
    state = parse_qs(urlsplit(login["Location"]).query)["state"][0]

    response = user_client.get("/pagero/callback/", {"state": state, "error": "access_denied"})

    assert response.status_code == 400
    assert response.context["retry_url"] == "/pagero/login/?next=%2Fprotected%2F"


def test_try_again_after_an_unknown_state_has_no_next(user_client, pagero_mock):
    response = user_client.get("/pagero/callback/", {"state": "unknown", "code": "x"})
    assert response.status_code == 400
    assert response.context["retry_url"] == "/pagero/login/"


@pytest.mark.django_db(transaction=True)  # real commits: the revocation's own connection sees them
@pytest.mark.parametrize("unlink", [False, True])
def test_disconnect_works_under_atomic_requests(
    user: Any,
    pagero_mock: MockPageroServer,
    pagero_token_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    unlink: bool,
) -> None:
    """ATOMIC_REQUESTS wrapped the page in a transaction whose first read (the token) held
    SQLite's lock, and the revocation, on a connection of its own, timed out on it: a 503."""
    from django.db import connections

    from django_pagero_oauth.models import PageroIdentity

    token = pagero_token_factory(user)
    PageroIdentity.objects.create(user=user, issuer="https://issuer.example", subject="alice")
    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)
    client = Client()
    client.force_login(user)

    response = client.post(DISCONNECT, {"unlink_identity": "1"} if unlink else {})

    assert response.status_code == 302
    assert not PageroToken.objects.filter(user=user).exists()
    assert not pagero_mock.mock.is_refresh_token_valid(token.refresh_token)
    assert PageroIdentity.objects.filter(user=user).exists() is not unlink
