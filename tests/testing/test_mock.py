"""Tests of the strict mock Pagero server, over a real socket (no Django needed)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from django_pagero_oauth.testing.mock import (
    OMIT,
    Fault,
    MockPagero,
    MockPageroServer,
    MockRequest,
)

# Every character RFC 6749 2.3.1 makes awkward in HTTP Basic: ":", "%", "+", " ", non-ASCII.
SECRET = "s3:cr%2et+ é/x"
CLIENT_ID = "mock client:é"
REDIRECT_URI = "https://client.example:4443/oauth/callback"
REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1_750_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def mock(clock: FakeClock) -> MockPagero:
    return MockPagero(client_id=CLIENT_ID, client_secret=SECRET, clock=clock)


@pytest.fixture
def server(mock: MockPagero) -> Iterator[MockPageroServer]:
    with MockPageroServer(mock) as running:
        yield running


# --- helpers ------------------------------------------------------------------------------


def basic_auth(client_id: str = CLIENT_ID, secret: str = SECRET) -> dict[str, str]:
    """RFC 6749 2.3.1: form-urlencode id and secret, then base64."""
    userpass = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(userpass).decode()}


def token_post(
    server: MockPageroServer,
    data: dict[str, str],
    *,
    auth: str = "basic",
    **kwargs: Any,
) -> requests.Response:
    headers = kwargs.pop("headers", {})
    if auth == "basic":
        headers.update(basic_auth())
    elif auth == "post":
        data = {**data, "client_id": CLIENT_ID, "client_secret": SECRET}
    timeout = kwargs.pop("timeout", 5)
    url = server.url + "/oauth/v2/oauth-token"
    return requests.post(url, data=data, headers=headers, timeout=timeout, **kwargs)


def refresh(server: MockPageroServer, refresh_token: str, **kwargs: Any) -> requests.Response:
    return token_post(
        server, {"grant_type": "refresh_token", "refresh_token": refresh_token}, **kwargs
    )


def revoke(server: MockPageroServer, token: str, **extra: str) -> requests.Response:
    return requests.post(
        server.url + "/oauth/v2/oauth-revoke",
        data={"token": token, **extra},
        headers=basic_auth(),
        timeout=5,
    )


def api(server: MockPageroServer, path: str, access_token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    return requests.get(server.url + "/api" + path, headers=headers, timeout=5)


@dataclass
class LoginForm:
    """What the browser sees on the mock's login page."""

    action: str = ""
    method: str = ""
    fields: list[tuple[str, str]] = field(default_factory=list)
    buttons: list[tuple[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.form = LoginForm()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.form.action, self.form.method = a["action"], a["method"]
        elif tag == "input":
            self.form.fields.append((a["name"], a.get("value", "")))
        elif tag == "button":
            self.form.buttons.append((a["name"], a["value"]))


def authorize_params(**overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "state": "st<at>e&1",
        "scope": "all",
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def login_page(server: MockPageroServer, params: dict[str, str]) -> LoginForm:
    response = requests.get(
        server.url + "/oauth/v2/oauth-authorize",
        params=params,
        allow_redirects=False,
        timeout=5,
    )
    assert response.status_code == 200, response.text
    assert "Mock Pagero login" in response.text
    parser = _FormParser()
    parser.feed(response.text)
    return parser.form


def submit(
    server: MockPageroServer, form: LoginForm, action: str, publicid: str = "acme-ab"
) -> requests.Response:
    data = [(k, v) for k, v in form.fields if k != "publicid"]
    data += [("publicid", publicid), ("action", action)]
    return requests.post(
        server.url + urlsplit(form.action).path, data=data, allow_redirects=False, timeout=5
    )


def redirect_query(response: requests.Response) -> dict[str, list[str]]:
    assert response.status_code == 302, response.text
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI)
    return parse_qs(urlsplit(location).query, keep_blank_values=True)


def get_code(server: MockPageroServer, **overrides: str | None) -> str:
    form = login_page(server, authorize_params(**overrides))
    return redirect_query(submit(server, form, "approve"))["code"][0]


def exchange(
    server: MockPageroServer, code: str, redirect_uri: str | None = REDIRECT_URI, **extra: str
) -> requests.Response:
    data = {"grant_type": "authorization_code", "code": code, **extra}
    if redirect_uri is not None:
        data["redirect_uri"] = redirect_uri
    return token_post(server, data)


def login(server: MockPageroServer, **overrides: str | None) -> dict[str, Any]:
    response = exchange(server, get_code(server, **overrides))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def jwt_parts(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    header, payload, signature = token.split(".")
    for part in (header, payload, signature):
        assert "=" not in part
    decode = lambda part: base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))  # noqa: E731
    return json.loads(decode(header)), json.loads(decode(payload)), decode(signature)


def assert_oauth_error(response: requests.Response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["Cache-Control"] == "no-store"


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


# --- authorization endpoint ---------------------------------------------------------------


def test_full_approve_flow(server: MockPageroServer, mock: MockPagero) -> None:
    form = login_page(server, authorize_params(prompt="login"))
    assert form.method == "post"
    assert urlsplit(form.action).path == "/oauth/v2/oauth-authorize"
    assert ("action", "approve") in form.buttons and ("action", "deny") in form.buttons
    assert ("publicid", "demo-company") in form.fields
    assert ("state", "st<at>e&1") in form.fields  # html-escaped and read back unchanged
    assert ("prompt", "login") in form.fields

    query = redirect_query(submit(server, form, "approve"))
    assert query["state"] == ["st<at>e&1"]
    assert query["iss"] == [server.url]  # RFC 9207
    assert mock.counts["authorize"] == 1

    response = exchange(server, query["code"][0])
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {
        "token_type",
        "access_token",
        "refresh_token",
        "scope",
        "claims",
        "expires_in",
    }
    assert body["token_type"] == "bearer"
    assert body["scope"] == "" and body["claims"] == "publicid" and body["expires_in"] == 600
    assert body["refresh_token"].startswith("_1XBPWQQ_")
    assert mock.issued_refresh_tokens == [body["refresh_token"]]

    header, payload, signature = jwt_parts(body["access_token"])
    assert header["alg"] == "RS256" and header["kid"] == "mock-key-1"
    assert len(base64.urlsafe_b64decode(header["x5t"] + "=")) == 20
    assert len(signature) == 32
    assert payload["publicid"] == payload["sub"] == "acme-ab"
    assert payload["aud"] == CLIENT_ID and payload["iss"] == server.url
    assert payload["exp"] - payload["iat"] == 600

    me = api(server, "/v1/me", body["access_token"])
    assert me.status_code == 200
    assert me.json() == {"publicid": "acme-ab", "name": "Demo Company AB", "client_id": CLIENT_ID}
    assert mock.counts["authorization_code"] == 1 and mock.counts["api"] == 1


def test_x5t_is_fixed(server: MockPageroServer) -> None:
    first, second = login(server), login(server)
    assert jwt_parts(first["access_token"])[0] == jwt_parts(second["access_token"])[0]
    assert first["access_token"] != second["access_token"]


def test_openid_scope_adds_id_token(server: MockPageroServer) -> None:
    body = login(server, scope="all openid", nonce="n-0S6")
    _, payload, _ = jwt_parts(body["id_token"])
    assert payload["aud"] == CLIENT_ID and payload["nonce"] == "n-0S6"
    assert "id_token" not in login(server)


def test_redirect_uri_with_query_is_appended_to(server: MockPageroServer) -> None:
    uri = REDIRECT_URI + "?tenant=a%26b"
    form = login_page(server, authorize_params(redirect_uri=uri))
    query = redirect_query(submit(server, form, "approve"))
    assert query["tenant"] == ["a&b"] and "code" in query
    assert exchange(server, query["code"][0], redirect_uri=uri).status_code == 200


def test_deny(server: MockPageroServer, mock: MockPagero) -> None:
    form = login_page(server, authorize_params())
    query = redirect_query(submit(server, form, "deny"))
    assert query["error"] == ["access_denied"]
    assert query["error_description"][0]
    assert query["state"] == ["st<at>e&1"] and query["iss"] == [server.url]
    assert "code" not in query
    assert mock.counts["authorize"] == 1


def test_missing_state_is_not_invented(server: MockPageroServer) -> None:
    form = login_page(server, authorize_params(state=None))
    assert "state" not in redirect_query(submit(server, form, "approve"))


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"client_id": "someone-else"}, "Unknown client_id"),
        ({"client_id": None}, "client_id parameter is missing"),
        ({"redirect_uri": None}, "redirect_uri parameter is missing"),
        ({"redirect_uri": "/relative/callback"}, "absolute"),
        ({"redirect_uri": "javascript:alert(1)"}, "absolute"),
        ({"redirect_uri": REDIRECT_URI + "#frag"}, "fragment"),
    ],
)
def test_bad_client_or_redirect_uri_is_never_redirected(
    server: MockPageroServer, overrides: dict[str, str | None], needle: str
) -> None:
    response = requests.get(
        server.url + "/oauth/v2/oauth-authorize",
        params=authorize_params(**overrides),
        allow_redirects=False,
        timeout=5,
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert needle in response.text


def test_unregistered_redirect_uri(clock: FakeClock) -> None:
    mock = MockPagero(client_id=CLIENT_ID, redirect_uris=["https://other.example/cb"], clock=clock)
    with MockPageroServer(mock) as server:
        response = requests.get(
            server.url + "/oauth/v2/oauth-authorize",
            params=authorize_params(),
            allow_redirects=False,
            timeout=5,
        )
    assert response.status_code == 400 and "not registered" in response.text


def test_repeated_client_id_is_an_html_error(server: MockPageroServer) -> None:
    url = server.url + "/oauth/v2/oauth-authorize?" + urlencode(authorize_params())
    response = requests.get(url + "&client_id=x", allow_redirects=False, timeout=5)
    assert response.status_code == 400 and "repeated" in response.text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": None}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": ""}, "invalid_scope"),
        ({"prompt": "banana"}, "invalid_request"),
        ({"code_challenge": s256("v" * 43), "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": s256("v" * 43)}, "invalid_request"),
        ({"code_challenge_method": "S256"}, "invalid_request"),
        ({"code_challenge": "too-short", "code_challenge_method": "S256"}, "invalid_request"),
    ],
)
def test_other_authorization_errors_redirect_back(
    server: MockPageroServer, overrides: dict[str, str | None], error: str
) -> None:
    response = requests.get(
        server.url + "/oauth/v2/oauth-authorize",
        params=authorize_params(**overrides),
        allow_redirects=False,
        timeout=5,
    )
    query = redirect_query(response)
    assert query["error"] == [error]
    assert query["state"] == ["st<at>e&1"] and query["iss"] == [server.url]


def test_form_post_is_revalidated(server: MockPageroServer) -> None:
    form = login_page(server, authorize_params())
    form.fields = [(k, "token" if k == "response_type" else v) for k, v in form.fields]
    assert redirect_query(submit(server, form, "approve"))["error"] == ["unsupported_response_type"]
    form.fields = [
        (k, "https://evil.example/" if k == "redirect_uri" else v) for k, v in form.fields
    ]
    assert submit(server, form, "approve").status_code == 302  # any URI, when none registered
    form.fields = [(k, "intruder" if k == "client_id" else v) for k, v in form.fields]
    bad = submit(server, form, "approve")
    assert bad.status_code == 400 and "Location" not in bad.headers
    good = login_page(server, authorize_params())
    assert submit(server, good, "maybe").status_code == 400


def test_login_page_escapes_everything(server: MockPageroServer) -> None:
    evil = '"><script>alert(1)</script>'
    response = requests.get(
        server.url + "/oauth/v2/oauth-authorize",
        params=authorize_params(state=evil, extra=evil),
        timeout=5,
    )
    assert response.status_code == 200
    assert "<script>" not in response.text
    assert "&lt;script&gt;" in response.text


def test_pages_carry_their_own_style(server: MockPageroServer) -> None:
    """Styled like the example project, with nothing to fetch: the mock serves no static files
    (screenshot: ``tests/browser/test_package_pages.py``, ``...-mock-login.png``)."""
    page = requests.get(
        server.url + "/oauth/v2/oauth-authorize", params=authorize_params(), timeout=5
    )
    error = requests.get(server.url + "/oauth/v2/oauth-authorize", timeout=5)
    assert (page.status_code, error.status_code) == (200, 400)
    for response in (page, error):
        assert "<style>" in response.text and 'class="card"' in response.text
        assert 'rel="stylesheet"' not in response.text and "<script" not in response.text


# --- client authentication ----------------------------------------------------------------


def test_basic_auth_is_form_urlencoded_first(server: MockPageroServer) -> None:
    assert exchange(server, get_code(server)).status_code == 200


def test_client_secret_post(server: MockPageroServer) -> None:
    data = {"grant_type": "authorization_code", "code": get_code(server)}
    response = token_post(server, {**data, "redirect_uri": REDIRECT_URI}, auth="post")
    assert response.status_code == 200, response.text


def test_raw_basic_without_urlencoding_is_rejected(server: MockPageroServer) -> None:
    """``requests``' own Basic auth skips the RFC 6749 2.3.1 encoding: a strict server refuses."""
    data = {"grant_type": "authorization_code", "code": get_code(server)}
    response = requests.post(
        server.url + "/oauth/v2/oauth-token",
        data={**data, "redirect_uri": REDIRECT_URI},
        auth=(CLIENT_ID, SECRET),
        timeout=5,
    )
    assert_oauth_error(response, "invalid_client", 401)
    assert response.headers["WWW-Authenticate"] == 'Basic realm="mock-pagero"'


@pytest.mark.parametrize(
    ("headers", "form", "error", "status"),
    [
        ({}, {}, "invalid_client", 401),
        (basic_auth(secret="wrong"), {}, "invalid_client", 401),
        (basic_auth(client_id="other"), {}, "invalid_client", 401),
        ({}, {"client_id": CLIENT_ID, "client_secret": "wrong"}, "invalid_client", 401),
        ({}, {"client_id": CLIENT_ID}, "invalid_client", 401),
        ({"Authorization": "Basic !!!"}, {}, "invalid_client", 401),
        ({"Authorization": "Bearer abc"}, {}, "invalid_client", 401),
        (basic_auth(), {"client_id": CLIENT_ID, "client_secret": SECRET}, "invalid_request", 400),
        (basic_auth(), {"client_id": "other"}, "invalid_request", 400),
    ],
)
def test_client_authentication_failures(
    server: MockPageroServer,
    mock: MockPagero,
    headers: dict[str, str],
    form: dict[str, str],
    error: str,
    status: int,
) -> None:
    issued = mock.issue_tokens()
    response = requests.post(
        server.url + "/oauth/v2/oauth-token",
        data={"grant_type": "refresh_token", "refresh_token": issued["refresh_token"], **form},
        headers=headers,
        timeout=5,
    )
    assert_oauth_error(response, error, status)
    assert mock.is_refresh_token_valid(issued["refresh_token"])  # nothing consumed
    assert mock.counts["refresh_token"] == 1 and mock.counts["refresh_token_failed"] == 1


def test_basic_with_matching_form_client_id_is_accepted(
    server: MockPageroServer, mock: MockPagero
) -> None:
    issued = mock.issue_tokens()
    data = {"refresh_token": issued["refresh_token"], "grant_type": "refresh_token"}
    response = token_post(server, {**data, "client_id": CLIENT_ID})
    assert response.status_code == 200


@settings(max_examples=60, deadline=None)
@given(secret=st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40))
def test_any_secret_survives_basic_auth(secret: str) -> None:
    """Property: RFC 6749 2.3.1 encoding round-trips every secret (checked via handle())."""
    mock = MockPagero(client_secret=secret)
    refresh_token = mock.issue_tokens()["refresh_token"]
    userpass = f"{quote_plus(mock.client_id)}:{quote_plus(secret)}".encode()
    body = urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token}).encode()
    request = MockRequest.build(
        method="POST",
        target="/oauth/v2/oauth-token",
        headers={
            "AUTHORIZATION": "Basic " + base64.b64encode(userpass).decode(),
            "content-type": "application/x-www-form-urlencoded; charset=UTF-8",
        },
        body=body,
        base_url="http://mock.test/",
    )
    response = mock.handle(request)
    assert response.status == 200, response.body


# --- token endpoint -----------------------------------------------------------------------


def test_token_endpoint_requires_a_form(server: MockPageroServer) -> None:
    response = requests.post(
        server.url + "/oauth/v2/oauth-token",
        json={"grant_type": "refresh_token", "refresh_token": "x"},
        headers=basic_auth(),
        timeout=5,
    )
    assert_oauth_error(response, "invalid_request")
    assert requests.get(server.url + "/oauth/v2/oauth-token", timeout=5).status_code == 405


def test_token_parameters_in_the_url_are_refused(server: MockPageroServer) -> None:
    response = requests.post(
        server.url + "/oauth/v2/oauth-token?client_secret=leak",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        headers=basic_auth(),
        timeout=5,
    )
    assert_oauth_error(response, "invalid_request")


def test_repeated_token_parameter(server: MockPageroServer, mock: MockPagero) -> None:
    issued = mock.issue_tokens()
    body = f"grant_type=refresh_token&refresh_token={issued['refresh_token']}&grant_type=x"
    response = requests.post(
        server.url + "/oauth/v2/oauth-token",
        data=body,
        headers={**basic_auth(), "Content-Type": "application/x-www-form-urlencoded"},
        timeout=5,
    )
    assert_oauth_error(response, "invalid_request")
    assert "grant_type" in response.json()["error_description"]


def test_unsupported_and_missing_grant_type(server: MockPageroServer) -> None:
    assert_oauth_error(token_post(server, {"grant_type": "password"}), "unsupported_grant_type")
    assert_oauth_error(token_post(server, {"code": "x"}), "invalid_request")


def test_code_is_single_use_and_reuse_revokes_the_family(
    server: MockPageroServer, mock: MockPagero
) -> None:
    code = get_code(server)
    first = exchange(server, code).json()
    second_generation = refresh(server, first["refresh_token"]).json()
    unrelated = login(server)

    assert_oauth_error(exchange(server, code), "invalid_grant")  # RFC 6749 4.1.2

    for body in (first, second_generation):
        assert not mock.is_access_token_valid(body["access_token"])
        assert api(server, "/v1/me", body["access_token"]).status_code == 401
    assert not mock.is_refresh_token_valid(second_generation["refresh_token"])
    assert_oauth_error(refresh(server, second_generation["refresh_token"]), "invalid_grant")
    assert mock.is_access_token_valid(unrelated["access_token"])
    assert mock.is_refresh_token_valid(unrelated["refresh_token"])


def test_code_expires(server: MockPageroServer, clock: FakeClock) -> None:
    code = get_code(server)
    clock.advance(60)
    assert_oauth_error(exchange(server, code), "invalid_grant")
    code = get_code(server)
    clock.advance(59)
    assert exchange(server, code).status_code == 200


def test_unknown_code(server: MockPageroServer) -> None:
    assert_oauth_error(exchange(server, "made-up"), "invalid_grant")


@pytest.mark.parametrize("redirect_uri", [None, REDIRECT_URI + "/", "https://evil.example/cb"])
def test_code_is_bound_to_the_redirect_uri(
    server: MockPageroServer, redirect_uri: str | None
) -> None:
    code = get_code(server)
    assert_oauth_error(exchange(server, code, redirect_uri=redirect_uri), "invalid_grant")
    # the failed attempt spent the code
    assert_oauth_error(exchange(server, code), "invalid_grant")


def test_pkce_success(server: MockPageroServer) -> None:
    verifier = secrets.token_urlsafe(48)
    code = get_code(server, code_challenge=s256(verifier), code_challenge_method="S256")
    response = exchange(server, code, code_verifier=verifier)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "verifier",
    [None, "A" * 43, "short", "é" * 50, "A" * 129],
    ids=["missing", "wrong", "too-short", "bad-chars", "too-long"],
)
def test_pkce_failures(server: MockPageroServer, verifier: str | None) -> None:
    real = secrets.token_urlsafe(48)
    code = get_code(server, code_challenge=s256(real), code_challenge_method="S256")
    extra = {"code_verifier": verifier} if verifier is not None else {}
    assert_oauth_error(exchange(server, code, **extra), "invalid_grant")


def test_require_pkce_refuses_a_login_without_a_challenge(
    server: MockPageroServer, mock: MockPagero
) -> None:
    mock.require_pkce = True
    response = requests.get(
        server.url + "/oauth/v2/oauth-authorize",
        params=authorize_params(),
        allow_redirects=False,
        timeout=5,
    )
    query = redirect_query(response)
    assert query["error"] == ["invalid_request"]
    assert "PKCE" in query["error_description"][0]
    verifier = secrets.token_urlsafe(48)
    code = get_code(server, code_challenge=s256(verifier), code_challenge_method="S256")
    assert exchange(server, code, code_verifier=verifier).status_code == 200


def test_pkce_verifier_without_challenge(server: MockPageroServer) -> None:
    code = get_code(server)
    assert_oauth_error(exchange(server, code, code_verifier="A" * 43), "invalid_grant")


# --- refresh ------------------------------------------------------------------------------


def test_refresh_rotates_and_is_single_use(server: MockPageroServer, mock: MockPagero) -> None:
    first = login(server)
    response = refresh(server, first["refresh_token"], auth="post")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert not mock.is_refresh_token_valid(first["refresh_token"])
    assert mock.is_refresh_token_valid(second["refresh_token"])
    assert mock.is_access_token_valid(first["access_token"])  # still valid until it expires
    assert jwt_parts(second["access_token"])[1]["publicid"] == "acme-ab"

    assert_oauth_error(refresh(server, first["refresh_token"]), "invalid_grant")
    assert mock.issued_refresh_tokens == [first["refresh_token"], second["refresh_token"]]
    assert mock.counts["refresh_token"] == 2 and mock.counts["refresh_token_failed"] == 1


def test_concurrent_refresh_exactly_one_wins(server: MockPageroServer, mock: MockPagero) -> None:
    refresh_token = mock.issue_tokens()["refresh_token"]
    threads = 16
    barrier = threading.Barrier(threads)
    results: list[requests.Response] = []
    lock = threading.Lock()

    def worker() -> None:
        barrier.wait()
        response = refresh(server, refresh_token, timeout=30)
        with lock:
            results.append(response)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()

    statuses = sorted(response.status_code for response in results)
    assert statuses == [200] + [400] * (threads - 1)
    assert all(r.json()["error"] == "invalid_grant" for r in results if r.status_code == 400)
    assert mock.counts["refresh_token"] == threads
    assert mock.counts["refresh_token_failed"] == threads - 1
    assert len(mock.issued_refresh_tokens) == 2


def test_rolling_refresh_token_lifetime(server: MockPageroServer, clock: FakeClock) -> None:
    lifetime = 3 * 365 * 24 * 3600
    token = login(server)["refresh_token"]
    for _ in range(3):  # each refresh starts a new lifetime
        clock.advance(lifetime - 1)
        response = refresh(server, token)
        assert response.status_code == 200, response.text
        token = response.json()["refresh_token"]
    clock.advance(lifetime)
    assert_oauth_error(refresh(server, token), "invalid_grant")


def test_access_token_expiry_follows_runtime_expires_in(
    server: MockPageroServer, mock: MockPagero, clock: FakeClock
) -> None:
    mock.expires_in = 30
    body = login(server)
    assert body["expires_in"] == 30
    clock.advance(29)
    assert api(server, "/v1/me", body["access_token"]).status_code == 200
    clock.advance(1)
    assert api(server, "/v1/me", body["access_token"]).status_code == 401


def test_refresh_scope_cannot_grow(server: MockPageroServer, mock: MockPagero) -> None:
    token = mock.issue_tokens(scope="all")["refresh_token"]
    response = token_post(
        server, {"grant_type": "refresh_token", "refresh_token": token, "scope": "all admin"}
    )
    assert_oauth_error(response, "invalid_scope")


def test_issue_tokens_factory(mock: MockPagero, clock: FakeClock) -> None:
    body = mock.issue_tokens(publicid="factory-co", scope="all openid", expires_in=5)
    assert body["expires_in"] == 5 and "id_token" in body
    assert mock.is_access_token_valid(body["access_token"])
    assert mock.is_refresh_token_valid(body["refresh_token"])
    clock.advance(5)
    assert not mock.is_access_token_valid(body["access_token"])
    assert not mock.is_access_token_valid(body["refresh_token"])  # kinds are not mixed
    assert not mock.is_refresh_token_valid(body["access_token"])


# --- revocation (RFC 7009) ----------------------------------------------------------------


def test_revoke_refresh_token_revokes_its_access_tokens(
    server: MockPageroServer, mock: MockPagero
) -> None:
    body = login(server)
    other = login(server)
    response = revoke(server, body["refresh_token"], token_type_hint="refresh_token")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert not mock.is_refresh_token_valid(body["refresh_token"])
    assert api(server, "/v1/me", body["access_token"]).status_code == 401
    assert_oauth_error(refresh(server, body["refresh_token"]), "invalid_grant")
    assert api(server, "/v1/me", other["access_token"]).status_code == 200
    assert mock.counts["revoke"] == 1


def test_revoke_access_token_only(server: MockPageroServer, mock: MockPagero) -> None:
    body = login(server)
    assert revoke(server, body["access_token"], token_type_hint="access_token").status_code == 200
    assert not mock.is_access_token_valid(body["access_token"])
    assert mock.is_refresh_token_valid(body["refresh_token"])


def test_revoke_unknown_token_is_200_and_errors(server: MockPageroServer) -> None:
    assert revoke(server, "nobody-knows-me").status_code == 200
    assert_oauth_error(revoke(server, "x", token_type_hint="cookie"), "unsupported_token_type")
    missing = requests.post(
        server.url + "/oauth/v2/oauth-revoke", data={}, headers=basic_auth(), timeout=5
    )
    assert_oauth_error(missing, "invalid_request")
    unauthenticated = requests.post(
        server.url + "/oauth/v2/oauth-revoke", data={"token": "x"}, timeout=5
    )
    assert_oauth_error(unauthenticated, "invalid_client", 401)


def test_revoke_grant_revokes_every_login_of_the_user(
    server: MockPageroServer, mock: MockPagero
) -> None:
    first, second = login(server), login(server)  # two authorizations of "acme-ab"
    other = mock.issue_tokens(publicid="other-co")
    rotated = refresh(server, first["refresh_token"]).json()  # the used one is dead already

    assert mock.revoke_grant("acme-ab") == 5  # the live tokens: 3 access, 2 refresh
    assert api(server, "/v1/me", first["access_token"]).status_code == 401
    for body in (second, rotated):
        assert api(server, "/v1/me", body["access_token"]).status_code == 401
        assert_oauth_error(refresh(server, body["refresh_token"]), "invalid_grant")
    assert api(server, "/v1/me", other["access_token"]).status_code == 200
    assert mock.is_refresh_token_valid(other["refresh_token"])
    assert mock.revoke_grant("acme-ab") == 0

    answer = requests.post(
        server.url + "/_mock/revoke_grant", data={"publicid": "other-co"}, timeout=5
    )
    assert answer.status_code == 200 and answer.json() == {"ok": True, "revoked": 2}
    assert not mock.is_refresh_token_valid(other["refresh_token"])
    assert requests.post(server.url + "/_mock/revoke_grant", timeout=5).status_code == 400


@pytest.mark.parametrize("revoked", ["refresh_token", "access_token"])
def test_fault_revoke_grant_revokes_the_whole_grant_with_a_refresh_token(
    server: MockPageroServer, mock: MockPagero, revoked: str
) -> None:
    old, new = login(server), login(server)  # a reconnect: a later login of the same user
    other = mock.issue_tokens(publicid="other-co")
    mock.add_fault(Fault(endpoint="revoke", revoke_grant=True))

    assert revoke(server, old[revoked]).status_code == 200
    assert not mock.faults  # taken by that request
    assert not mock.is_access_token_valid(old["access_token"])
    # Only a refresh token's revocation ends the grant; an access token is revoked alone.
    assert mock.is_refresh_token_valid(new["refresh_token"]) is (revoked == "access_token")
    assert mock.is_access_token_valid(new["access_token"]) is (revoked == "access_token")
    assert mock.is_refresh_token_valid(other["refresh_token"])


def test_without_the_fault_a_revocation_ends_only_its_own_login(
    server: MockPageroServer, mock: MockPagero
) -> None:
    old, new = login(server), login(server)
    assert revoke(server, old["refresh_token"]).status_code == 200
    assert not mock.is_refresh_token_valid(old["refresh_token"])
    assert mock.is_refresh_token_valid(new["refresh_token"])
    assert api(server, "/v1/me", new["access_token"]).status_code == 200


# --- API (RFC 6750) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer not-a-token", "Basic Zm9vOmJhcg=="]
)
def test_api_requires_a_valid_bearer_token(
    server: MockPageroServer, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(server.url + "/api/v1/me", headers=headers, timeout=5)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_api_refresh_token_is_not_an_access_token(
    server: MockPageroServer, mock: MockPagero
) -> None:
    body = mock.issue_tokens()
    assert api(server, "/v1/me", body["refresh_token"]).status_code == 401


def test_api_documents_and_404(server: MockPageroServer, mock: MockPagero) -> None:
    token = mock.issue_tokens(publicid="acme")["access_token"]
    response = api(server, "/v1/documents", token)
    assert response.status_code == 200
    documents = response.json()["documents"]
    assert documents and {"id", "number", "amount", "currency", "status"} <= set(documents[0])
    missing = api(server, "/v1/nothing", token)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    assert mock.counts["api"] == 2


# --- faults -------------------------------------------------------------------------------


def test_fault_status_with_headers_does_not_consume(
    server: MockPageroServer, mock: MockPagero
) -> None:
    token = mock.issue_tokens()["refresh_token"]
    mock.add_fault(
        Fault(
            endpoint="token",
            grant_type="refresh_token",
            status=503,
            headers=[("Retry-After", "30")],
        )
    )
    response = refresh(server, token)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert response.json()["error"] == "temporarily_unavailable"
    assert mock.is_refresh_token_valid(token)
    assert mock.counts["refresh_token"] == 1 and mock.counts["refresh_token_failed"] == 1
    assert refresh(server, token).status_code == 200  # the fault applied once
    assert mock.faults == []


def test_fault_grant_type_filter_and_times(server: MockPageroServer, mock: MockPagero) -> None:
    mock.add_fault(
        Fault(
            endpoint="token",
            grant_type="refresh_token",
            status=500,
            body="<html>oops</html>",
            content_type="text/html",
            times=2,
        )
    )
    assert exchange(server, get_code(server)).status_code == 200  # not a refresh: untouched
    token = mock.issue_tokens()["refresh_token"]
    for _ in range(2):
        response = refresh(server, token)
        assert response.status_code == 500 and response.text == "<html>oops</html>"
        assert response.headers["Content-Type"] == "text/html"
    assert refresh(server, token).status_code == 200


def test_fault_delay_times_the_client_out(server: MockPageroServer, mock: MockPagero) -> None:
    token = mock.issue_tokens()["refresh_token"]
    mock.add_fault(Fault(endpoint="token", delay=5.0))
    with pytest.raises(requests.exceptions.ReadTimeout):
        refresh(server, token, timeout=0.2)
    assert mock.is_refresh_token_valid(token)


def test_fault_drop_closes_the_connection(server: MockPageroServer, mock: MockPagero) -> None:
    token = mock.issue_tokens()["refresh_token"]
    mock.add_fault(Fault(endpoint="token", drop=True))
    with pytest.raises(requests.exceptions.ConnectionError):
        refresh(server, token)
    assert mock.is_refresh_token_valid(token)
    assert mock.counts["refresh_token_failed"] == 1


def test_fault_process_then_drop_loses_the_new_token(
    server: MockPageroServer, mock: MockPagero
) -> None:
    """The worst case a client must survive: Pagero rotated, the answer never arrived."""
    token = mock.issue_tokens()["refresh_token"]
    mock.add_fault(Fault(endpoint="token", drop=True, process=True))
    with pytest.raises(requests.exceptions.ConnectionError):
        refresh(server, token)
    assert not mock.is_refresh_token_valid(token)
    assert len(mock.issued_refresh_tokens) == 2
    assert_oauth_error(refresh(server, token), "invalid_grant")


def _refresh_in_thread(server: MockPageroServer, token: str) -> tuple[threading.Thread, list[Any]]:
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(refresh(server, token, timeout=30)))
    thread.start()
    return thread, answers


def test_fault_hold_after_processing_spends_the_token_then_waits(
    server: MockPageroServer, mock: MockPagero
) -> None:
    """``hold`` with ``process``: Pagero has rotated, its answer waits for the release."""
    token = mock.issue_tokens()["refresh_token"]
    mock.add_fault(Fault(endpoint="token", grant_type="refresh_token", hold=True, process=True))
    thread, answers = _refresh_in_thread(server, token)
    assert mock.wait_held(timeout=10)
    assert not mock.is_refresh_token_valid(token) and len(mock.issued_refresh_tokens) == 2
    assert answers == [] and thread.is_alive()
    mock.release_held()
    thread.join(timeout=10)
    (answer,) = answers
    assert answer.status_code == 200
    assert answer.json()["refresh_token"] == mock.issued_refresh_tokens[-1]
    assert mock.counts["held"] == 1 and mock.faults == []


def test_fault_hold_before_processing_spends_nothing_until_released(
    server: MockPageroServer, mock: MockPagero
) -> None:
    token = mock.issue_tokens()["refresh_token"]
    response = requests.post(
        server.url + "/_mock/fault", data={"endpoint": "token", "hold": "1"}, timeout=5
    )
    assert response.status_code == 200 and mock.faults[0].hold
    thread, answers = _refresh_in_thread(server, token)
    assert mock.wait_held(timeout=10)
    assert mock.is_refresh_token_valid(token) and len(mock.issued_refresh_tokens) == 1
    assert requests.post(server.url + "/_mock/release", timeout=5).status_code == 200
    thread.join(timeout=10)
    assert answers[0].status_code == 200 and not mock.is_refresh_token_valid(token)
    assert not mock.wait_held(count=2, timeout=0.01)  # one hold, one request held


def test_fault_hold_released_by_reset_and_stop(mock: MockPagero) -> None:
    server = MockPageroServer(mock).start()
    try:
        mock.add_fault(Fault(endpoint="token", hold=True))
        thread, answers = _refresh_in_thread(server, mock.issue_tokens()["refresh_token"])
        assert mock.wait_held(timeout=10)
        mock.reset()  # releases: the token is unknown by then
        thread.join(timeout=10)
        assert answers[0].json()["error"] == "invalid_grant"
        mock.add_fault(Fault(endpoint="token", hold=True))
        thread, answers = _refresh_in_thread(server, mock.issue_tokens()["refresh_token"])
        assert mock.wait_held(timeout=10)
    finally:
        server.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_fault_omit_refresh_token_keeps_the_old_one(
    server: MockPageroServer, mock: MockPagero
) -> None:
    token = mock.issue_tokens()["refresh_token"]
    mock.add_fault(Fault(endpoint="token", omit_refresh_token=True))
    response = refresh(server, token)
    assert response.status_code == 200
    body = response.json()
    assert "refresh_token" not in body and mock.is_access_token_valid(body["access_token"])
    assert mock.is_refresh_token_valid(token)
    rotated = refresh(server, token).json()
    assert rotated["refresh_token"] != token and not mock.is_refresh_token_valid(token)


def test_fault_fields_alter_a_processed_answer(server: MockPageroServer, mock: MockPagero) -> None:
    """The refresh really happens (the old token is used up, the new one valid); only the
    answer's fields change."""
    token = mock.issue_tokens()["refresh_token"]
    mock.add_fault(Fault(endpoint="token", fields={"expires_in": "600", "scope": OMIT}))
    response = refresh(server, token)
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == "600" and "scope" not in body
    assert body["refresh_token"] == mock.issued_refresh_tokens[-1]
    assert mock.is_refresh_token_valid(body["refresh_token"])
    assert not mock.is_refresh_token_valid(token)
    assert mock.counts["refresh_token_failed"] == 0


def test_fault_iss_omit_and_replace(server: MockPageroServer, mock: MockPagero) -> None:
    mock.add_fault(Fault(endpoint="authorize", iss=OMIT))
    form = login_page(server, authorize_params())
    query = redirect_query(submit(server, form, "approve"))
    assert "iss" not in query and "code" in query

    mock.add_fault(Fault(endpoint="authorize", iss="https://evil.example"))
    query = redirect_query(submit(server, login_page(server, authorize_params()), "approve"))
    assert query["iss"] == ["https://evil.example"]

    mock.add_fault(Fault(endpoint="authorize", iss=None))
    query = redirect_query(submit(server, login_page(server, authorize_params()), "deny"))
    assert "iss" not in query and query["error"] == ["access_denied"]

    query = redirect_query(submit(server, login_page(server, authorize_params()), "approve"))
    assert query["iss"] == [server.url]
    assert mock.counts["authorize"] == 4


@pytest.mark.parametrize("endpoint", ["revoke", "api", "authorize"])
def test_fault_on_other_endpoints(
    server: MockPageroServer, mock: MockPagero, endpoint: str
) -> None:
    body = mock.issue_tokens()
    mock.add_fault(Fault(endpoint=endpoint, status=502))
    if endpoint == "revoke":
        response = revoke(server, body["refresh_token"])
        assert mock.is_refresh_token_valid(body["refresh_token"])  # not processed
    elif endpoint == "api":
        response = api(server, "/v1/me", body["access_token"])
    else:
        response = submit(server, login_page(server, authorize_params()), "approve")
    assert response.status_code == 502 and response.json()["error"] == "server_error"
    assert mock.counts[endpoint] == 1


def test_fault_default_401_body(server: MockPageroServer, mock: MockPagero) -> None:
    mock.add_fault(Fault(endpoint="api", status=401))
    response = api(server, "/v1/me", mock.issue_tokens()["access_token"])
    assert response.status_code == 401 and response.json()["error"] == "invalid_token"


def test_fault_validation() -> None:
    with pytest.raises(ValueError, match="endpoint"):
        Fault(endpoint="tokens")
    with pytest.raises(ValueError, match="grant_type"):
        Fault(endpoint="api", grant_type="refresh_token")
    with pytest.raises(ValueError, match="times"):
        Fault(endpoint="api", times=0)
    with pytest.raises(ValueError, match="revoke_grant"):
        Fault(endpoint="token", revoke_grant=True)


def test_fault_over_http(server: MockPageroServer, mock: MockPagero) -> None:
    response = requests.post(
        server.url + "/_mock/fault",
        data={"endpoint": "token", "status": "429", "header": "Retry-After: 7", "times": "1"},
        timeout=5,
    )
    assert response.status_code == 200
    assert mock.faults[0].iss is ...  # no change to iss unless asked
    refreshed = refresh(server, mock.issue_tokens()["refresh_token"])
    assert refreshed.status_code == 429 and refreshed.headers["Retry-After"] == "7"
    bad = requests.post(server.url + "/_mock/fault", data={"endpoint": "nope"}, timeout=5)
    assert bad.status_code == 400
    fields = {"endpoint": "token", "field": ['expires_in="600"', "scope=OMIT"]}
    assert requests.post(server.url + "/_mock/fault", data=fields, timeout=5).status_code == 200
    altered = refresh(server, mock.issue_tokens()["refresh_token"]).json()
    assert altered["expires_in"] == "600" and "scope" not in altered
    bad_json = {"endpoint": "token", "field": "expires_in=six hundred"}
    assert requests.post(server.url + "/_mock/fault", data=bad_json, timeout=5).status_code == 400
    grant = {"endpoint": "revoke", "revoke_grant": "1"}
    assert requests.post(server.url + "/_mock/fault", data=grant, timeout=5).status_code == 200
    assert mock.faults[-1].revoke_grant is True


# --- control endpoints, adapters, CLI -----------------------------------------------------


def test_stats_config_and_reset(server: MockPageroServer, mock: MockPagero) -> None:
    body = login(server)
    refresh(server, body["refresh_token"])
    stats = requests.get(server.url + "/_mock/stats", timeout=5).json()
    assert stats["counts"]["authorization_code"] == 1
    assert stats["counts"]["refresh_token"] == 1 and stats["counts"]["refresh_token_failed"] == 0
    assert stats["issued_refresh_tokens"] == 2
    assert stats["last_refresh_token"] == mock.issued_refresh_tokens[-1]

    config = requests.post(server.url + "/_mock/config", data={"expires_in": "42"}, timeout=5)
    assert config.status_code == 200 and mock.expires_in == 42
    assert mock.issue_tokens()["expires_in"] == 42
    for data in ({"expires_in": "-1"}, {"expires_in": "0"}, {}, {"code_lifetime": "x"}):
        bad = requests.post(server.url + "/_mock/config", data=data, timeout=5)
        assert bad.status_code == 400 and mock.expires_in == 42
    config = requests.post(
        server.url + "/_mock/config",
        data={"code_lifetime": "5", "refresh_token_lifetime": "100"},
        timeout=5,
    )
    assert config.json()["code_lifetime"] == 5 and mock.refresh_token_lifetime == 100

    assert requests.post(server.url + "/_mock/reset", timeout=5).status_code == 200
    stats = requests.get(server.url + "/_mock/stats", timeout=5).json()
    assert stats["issued_refresh_tokens"] == 0 and set(stats["counts"].values()) == {0}
    assert not mock.is_access_token_valid(body["access_token"])


def test_unknown_paths_are_404(server: MockPageroServer) -> None:
    for path in ("/", "/oauth/v2/oauth-token/", "/oauth2/token", "/_mock/stats/x"):
        assert requests.get(server.url + path, timeout=5).status_code == 404


def test_settings_fragment(server: MockPageroServer, mock: MockPagero) -> None:
    # tokens minted before any request carry the server's URL as issuer
    assert jwt_parts(mock.issue_tokens()["access_token"])[1]["iss"] == server.url
    fragment = server.settings()
    assert fragment == {
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": SECRET,
        "AUTHORIZE_URL": server.url + "/oauth/v2/oauth-authorize",
        "TOKEN_URL": server.url + "/oauth/v2/oauth-token",
        "REVOKE_URL": server.url + "/oauth/v2/oauth-revoke",
        "API_BASE_URL": server.url + "/api",
        "ISSUER": server.url,
    }
    assert MockPagero(issuer="https://sso.example").settings_for("http://x/")["ISSUER"] == (
        "https://sso.example"
    )


def test_keep_alive_session(server: MockPageroServer, mock: MockPagero) -> None:
    token = mock.issue_tokens()["access_token"]
    with requests.Session() as session:
        for _ in range(5):
            response = session.get(
                server.url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=5
            )
            assert response.status_code == 200
    assert mock.counts["api"] == 5


def test_handle_directly_with_a_mount_point(mock: MockPagero) -> None:
    """The Django adapter's view of the mock: a sub-path mount, mixed-case headers."""
    request = MockRequest(
        method="get",
        path="/oauth/v2/oauth-authorize",
        query={k: [v] for k, v in authorize_params().items()},
        form={},
        headers={"Host": "localhost:8000"},
        base_url="http://localhost:8000/mock-pagero/",
    )
    response = mock.handle(request)
    assert response.status == 200
    assert b'action="/mock-pagero/oauth/v2/oauth-authorize"' in response.body
    tokens = mock.issue_tokens()
    api_request = MockRequest(
        method="GET",
        path="/api/v1/me",
        query={},
        form={},
        headers={"AUTHORIZATION": f"Bearer {tokens['access_token']}"},
        base_url="http://localhost:8000/mock-pagero",
    )
    assert mock.handle(api_request).json()["publicid"] == "demo-company"
    assert jwt_parts(mock.issue_tokens()["access_token"])[1]["iss"] == (
        "http://localhost:8000/mock-pagero"
    )


def test_wsgi_app(mock: MockPagero) -> None:
    from wsgiref.util import setup_testing_defaults

    body = urlencode({"grant_type": "refresh_token", "refresh_token": "nope"}).encode()
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "/mock",
        "PATH_INFO": "/oauth/v2/oauth-token",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "HTTP_AUTHORIZATION": basic_auth()["Authorization"],
    }
    setup_testing_defaults(environ)
    started: list[str] = []
    result = mock.wsgi_app(environ, lambda status, headers: started.append(status))
    assert started == ["400 Bad Request"]
    assert json.loads(b"".join(result))["error"] == "invalid_grant"
    assert mock.counts["refresh_token"] == 1


def test_server_restart_and_stop_are_safe(mock: MockPagero) -> None:
    server = MockPageroServer(mock).start()
    with pytest.raises(RuntimeError):
        server.start()
    url = server.url
    server.stop()
    server.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url + "/_mock/stats", timeout=2)


#: Every name ``from django_pagero_oauth.testing.mock import ...`` offered while it was one module.
NAMES_OF_THE_OLD_MODULE = (
    "API_PREFIX",
    "AUTHORIZE_PATH",
    "COUNT_KEYS",
    "DISCOVERY_PATH",
    "FAULT_ENDPOINTS",
    "FORM_CONTENT_TYPE",
    "ID_TOKEN_FAULTS",
    "JWKS_PATH",
    "JWT_KID",
    "JWT_X5T",
    "OMIT",
    "REFRESH_TOKEN_PREFIX",
    "REVOKE_PATH",
    "TOKEN_PATH",
    "Fault",
    "KeySet",
    "MockPagero",
    "MockPageroServer",
    "MockRequest",
    "MockResponse",
    "discovery_document",
    "main",
    "make_id_token",
)


def test_the_package_keeps_every_public_name_and_each_module_says_what_it_owns() -> None:
    import importlib
    import pkgutil

    import django_pagero_oauth.testing.mock as package

    assert set(NAMES_OF_THE_OLD_MODULE) <= set(package.__all__)
    for name in package.__all__:
        assert getattr(package, name) is not None, name
    modules = [info.name for info in pkgutil.iter_modules(package.__path__)]
    assert {"app", "state", "faults", "http", "oidc", "server", "cli", "__main__"} <= set(modules)
    for name in modules:
        if name == "__main__":  # importing it would run the server
            continue
        module = importlib.import_module(f"{package.__name__}.{name}")
        assert module.__doc__ and module.__doc__.strip(), f"{name} has no module docstring"


def test_cli_main_serves() -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django_pagero_oauth.testing.mock",
            "--port",
            "0",
            "--expires-in",
            "77",
            "--client-id",
            "cli-client",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        first_line = process.stdout.readline()  # blocks until the server is listening
        failure = process.stderr.read() if process.poll() is not None else ""
        assert first_line.startswith("Mock Pagero listening on http://127.0.0.1:"), failure
        url = first_line.rsplit(" ", 1)[1].strip()
        stats = requests.get(url + "/_mock/stats", timeout=5).json()
        assert stats["expires_in"] == 77
        form = requests.get(
            url + "/oauth/v2/oauth-authorize",
            params=authorize_params(client_id="cli-client"),
            timeout=5,
        )
        assert form.status_code == 200
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


def test_mock_settings_points_a_site_at_a_running_mock() -> None:
    from django_pagero_oauth.testing import mock_settings

    with MockPageroServer(MockPagero()) as server:
        assert mock_settings(server.url + "/") == server.settings()
        assert mock_settings(server.url)["ISSUER"] == server.url
    assert mock_settings("http://127.0.0.1:9/", client_id="c", issuer="https://iss") == {
        "CLIENT_ID": "c",
        "CLIENT_SECRET": "mock-client-secret",
        "AUTHORIZE_URL": "http://127.0.0.1:9/oauth/v2/oauth-authorize",
        "TOKEN_URL": "http://127.0.0.1:9/oauth/v2/oauth-token",
        "REVOKE_URL": "http://127.0.0.1:9/oauth/v2/oauth-revoke",
        "API_BASE_URL": "http://127.0.0.1:9/api",
        "ISSUER": "https://iss",
    }


@pytest.mark.parametrize("options", [[], ["--client-id", "cli-client", "--issuer", "https://i"]])
def test_cli_prints_the_settings_lines_to_paste(options: list[str]) -> None:
    """The lines after "At the end of your settings.py", run after a site's own PAGERO_OAUTH,
    point it at this server: a login there with those settings gets a code back."""
    process = subprocess.Popen(  # noqa: S603 (this interpreter, fixed arguments)
        [sys.executable, "-m", "django_pagero_oauth.testing.mock", "--port", "0", *options],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().rsplit(" ", 1)[1].strip()
        assert process.stdout.readline() == "\n"
        assert process.stdout.readline().startswith("At the end of your settings.py")
        block = []
        for line in process.stdout:
            if line.startswith("These PAGERO_OAUTH values"):
                break
            block.append(line.removeprefix("    "))
        namespace: dict[str, Any] = {"PAGERO_OAUTH": {"CLIENT_ID": "real", "PKCE": True}}
        exec("".join(block), namespace)  # noqa: S102 (the mock's own output)
        settings_ = namespace["PAGERO_OAUTH"]
        assert settings_["PKCE"] is True  # the site's other keys are kept
        assert settings_["REDIRECT_URI"] == "http://127.0.0.1:8000/pagero/callback/"
        assert settings_["AUTHORIZE_URL"] == url + "/oauth/v2/oauth-authorize"
        assert settings_["API_BASE_URL"] == url + "/api"
        assert settings_["ISSUER"] == ("https://i" if options else url)
        form = requests.get(
            settings_["AUTHORIZE_URL"],
            params=authorize_params(client_id=settings_["CLIENT_ID"]),
            timeout=5,
        )
        assert form.status_code == 200, form.text
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
