"""Tests of ``oauth.py``: each protocol message, against the strict mock over a real socket."""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, quote_plus, unquote_plus, urlsplit

import pytest
import requests
import responses
from hypothesis import given
from hypothesis import strategies as st

from django_pagero_oauth import oauth, transport
from django_pagero_oauth.exceptions import (
    InvalidTokenResponse,
    OAuthErrorResponse,
    PageroConfigurationError,
    PageroUnavailable,
)
from django_pagero_oauth.testing.mock import Fault, MockPageroServer

# Every character RFC 6749 2.3.1 makes awkward in HTTP Basic.
AWKWARD_SECRET = "s3:cr%2et+ é/x"
AWKWARD_CLIENT_ID = "client:é +%"
REDIRECT_URI = "http://testserver/pagero/callback/"


def set_pagero(settings: Any, **values: Any) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, **values}


def get_code(server: MockPageroServer, *, code_challenge: str | None = None) -> str:
    """An authorization code, as the user's approval at the mock's login page would give it."""
    form = {
        "response_type": "code",
        "client_id": server.mock.client_id,
        "redirect_uri": REDIRECT_URI,
        "state": "s",
        "action": "approve",
    }
    if code_challenge is not None:
        form.update(code_challenge=code_challenge, code_challenge_method="S256")
    response = requests.post(
        server.url + "/oauth/v2/oauth-authorize", data=form, allow_redirects=False, timeout=5
    )
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]


@pytest.fixture
def recorded(pagero_mock: MockPageroServer, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every request the mock receives (as a ``MockRequest``), in order."""
    seen: list[Any] = []
    handle = pagero_mock.mock.handle

    def recording(request: Any) -> Any:
        seen.append(request)
        return handle(request)

    monkeypatch.setattr(pagero_mock.mock, "handle", recording)
    return seen


@pytest.fixture
def awkward_credentials(
    pagero_mock: MockPageroServer, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pagero_mock.mock, "client_id", AWKWARD_CLIENT_ID)
    monkeypatch.setattr(pagero_mock.mock, "client_secret", AWKWARD_SECRET)
    set_pagero(settings, CLIENT_ID=AWKWARD_CLIENT_ID, CLIENT_SECRET=AWKWARD_SECRET)


# --- step 1 -------------------------------------------------------------------------------


def test_code_challenge_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert oauth.code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_generated_values_are_unique_and_long_enough() -> None:
    states = {oauth.generate_state() for _ in range(100)}
    verifiers = {oauth.generate_code_verifier() for _ in range(100)}
    assert len(states) == len(verifiers) == 100
    assert all(len(state) >= 22 for state in states)  # >= 128 bits in base64url
    assert all(43 <= len(verifier) <= 128 for verifier in verifiers)


def authorize_params(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query, keep_blank_values=True)


def test_authorization_url(settings: Any) -> None:
    set_pagero(settings, AUTHORIZE_URL="https://sso.example/authorize", SCOPE="all openid")
    url = oauth.build_authorization_url(redirect_uri="https://app.example/cb?x=1", state="st")
    assert url.startswith("https://sso.example/authorize?")
    assert authorize_params(url) == {
        "response_type": ["code"],
        "client_id": ["test-client"],
        "redirect_uri": ["https://app.example/cb?x=1"],
        "state": ["st"],
        "scope": ["all openid"],
    }


def test_authorization_url_options(settings: Any) -> None:
    set_pagero(settings, AUTHORIZE_URL="https://sso.example/a?tenant=x#frag", SCOPE="")
    verifier = oauth.generate_code_verifier()
    url = oauth.build_authorization_url(
        redirect_uri=REDIRECT_URI, state="st", code_verifier=verifier, prompt="login"
    )
    params = authorize_params(url)
    assert params["tenant"] == ["x"]  # the configured URL's own query is kept
    assert "scope" not in params
    assert "#" not in url
    assert params["prompt"] == ["login"]
    assert params["code_challenge"] == [oauth.code_challenge(verifier)]
    assert params["code_challenge_method"] == ["S256"]


# --- token responses ----------------------------------------------------------------------

VALID = {"access_token": "at", "token_type": "bearer", "refresh_token": "rt", "expires_in": 600}
#: An answer that kept the old refresh token (RFC 6749 6).
NOT_ROTATED = {key: value for key, value in VALID.items() if key != "refresh_token"}


def _without(data: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key != name}


@pytest.mark.parametrize(
    "data",
    [
        [],
        [VALID],
        "text",
        None,
        {**VALID, "access_token": ""},
        {**VALID, "access_token": 5},
        _without(VALID, "access_token"),
        {**VALID, "token_type": "mac"},
        {**VALID, "token_type": "DPoP"},
        {**NOT_ROTATED, "token_type": " mac "},
        {**VALID, "refresh_token": ""},
        {**VALID, "refresh_token": 7},
        {**VALID, "refresh_token": "r\ud800t"},
        # An access token that cannot be sent, and no new refresh token: nothing usable.
        {**NOT_ROTATED, "access_token": "a t"},
        {**NOT_ROTATED, "access_token": "at\n"},
    ],
)
def test_unusable_token_responses_are_rejected(data: Any) -> None:
    with pytest.raises(InvalidTokenResponse) as info:
        oauth.TokenResponse.from_json(data)
    assert "at" not in info.value.description.split()


#: Off-spec fields: (changes, expected expires_in, warns).
REPAIRS: dict[str, tuple[dict[str, Any], int, bool]] = {
    "expires_in numeric string": ({"expires_in": "600"}, 600, True),
    "expires_in padded string": ({"expires_in": " 300 "}, 300, True),
    "expires_in float": ({"expires_in": 600.5}, 600, True),
    "expires_in float string": ({"expires_in": "599.9"}, 599, True),
    "expires_in missing": ({"expires_in": None}, oauth.DEFAULT_EXPIRES_IN, True),
    "expires_in garbage": ({"expires_in": "soon"}, oauth.DEFAULT_EXPIRES_IN, True),
    "expires_in zero": ({"expires_in": 0}, oauth.DEFAULT_EXPIRES_IN, True),
    "expires_in negative": ({"expires_in": -600}, oauth.DEFAULT_EXPIRES_IN, True),
    "expires_in boolean": ({"expires_in": True}, oauth.DEFAULT_EXPIRES_IN, True),
    "expires_in infinite": ({"expires_in": "inf"}, oauth.DEFAULT_EXPIRES_IN, True),
    "expires_in a list": ({"expires_in": [600]}, oauth.DEFAULT_EXPIRES_IN, True),
    "expires_in huge": ({"expires_in": 10**12}, oauth.MAX_EXPIRES_IN, True),
    "token_type capitalised": ({"token_type": "Bearer"}, 600, False),
    "token_type upper case": ({"token_type": "BEARER"}, 600, False),
    "token_type padded": ({"token_type": " bearer "}, 600, False),
    "token_type missing": ({"token_type": None}, 600, True),
    "token_type empty": ({"token_type": ""}, 600, True),
    "token_type a number": ({"token_type": 1}, 600, True),
    "token_type a list": ({"token_type": ["Bearer"]}, 600, True),
    "scope missing": ({"scope": None}, 600, False),
}


@pytest.mark.parametrize("rotated", [True, False], ids=["rotated", "not-rotated"])
@pytest.mark.parametrize(("changes", "expires_in", "warns"), REPAIRS.values(), ids=REPAIRS.keys())
def test_an_off_spec_answer_is_repaired_not_refused(
    changes: dict[str, Any], expires_in: int, warns: bool, rotated: bool, caplog: Any
) -> None:
    """One rule, whether or not the answer carries a new refresh token: only an answer that
    holds no usable token or names another token type is refused (item 5 of issue 9: with a
    new refresh token in it, the old one is dead already)."""
    data = {**(VALID if rotated else NOT_ROTATED), "scope": "all"}
    for name, value in changes.items():
        if value is None:
            data.pop(name)
        else:
            data[name] = value

    with caplog.at_level("WARNING", logger="django_pagero_oauth"):
        response = oauth.TokenResponse.from_json(data, what="refresh")

    assert (response.access_token, response.refresh_token) == ("at", "rt" if rotated else None)
    assert (response.token_type, response.expires_in) == ("bearer", expires_in)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert bool(warnings) is warns, warnings
    for message in warnings:
        assert message.startswith("Pagero refresh: ")
        assert "'at'" not in message and "'rt'" not in message


def test_a_rotated_answer_drops_an_access_token_that_cannot_be_sent(caplog: Any) -> None:
    with caplog.at_level("WARNING", logger="django_pagero_oauth"):
        response = oauth.TokenResponse.from_json({**VALID, "access_token": "a t"}, what="refresh")
    assert (response.access_token, response.refresh_token) == ("", "rt")
    assert not response.has_access_token
    assert "'a t'" not in caplog.text and "the access_token is not a bearer token" in caplog.text


@pytest.mark.parametrize("token_type", ["bearer", "Bearer", "BEARER"])
def test_token_type_is_case_insensitive(token_type: str) -> None:
    assert oauth.TokenResponse.from_json({**VALID, "token_type": token_type}).token_type == "bearer"


def test_token_response_fields_and_defaults() -> None:
    full = oauth.TokenResponse.from_json(
        {**VALID, "scope": ["all", "openid"], "claims": "publicid", "id_token": "idt"}
    )
    assert (full.access_token, full.refresh_token, full.expires_in) == ("at", "rt", 600)
    assert (full.scope, full.claims, full.id_token) == ("all openid", "publicid", "idt")
    minimal = oauth.TokenResponse.from_json({"access_token": "at", "token_type": "bearer"})
    assert minimal.expires_in == oauth.DEFAULT_EXPIRES_IN
    assert minimal.refresh_token is None
    assert (minimal.scope, minimal.claims, minimal.id_token) == ("", "", "")


def test_token_response_repr_shows_no_token() -> None:
    response = oauth.TokenResponse.from_json({**VALID, "access_token": "AT-123", "id_token": "ID"})
    text = repr(response) + str(response)
    assert "AT-123" not in text
    assert "'rt'" not in text
    assert "has_refresh_token=True" in text


# --- client authentication ----------------------------------------------------------------


def test_basic_credentials_are_form_urlencoded_first(settings: Any) -> None:
    set_pagero(settings, CLIENT_ID=AWKWARD_CLIENT_ID, CLIENT_SECRET=AWKWARD_SECRET)
    form, headers = oauth.client_auth({"grant_type": "x"})
    assert form == {"grant_type": "x"}
    userpass = f"{quote_plus(AWKWARD_CLIENT_ID)}:{quote_plus(AWKWARD_SECRET)}"
    assert headers == {"Authorization": "Basic " + base64.b64encode(userpass.encode()).decode()}
    assert userpass == "client%3A%C3%A9+%2B%25:s3%3Acr%252et%2B+%C3%A9%2Fx"


@given(client_id=st.text(), secret=st.text())
def test_basic_credentials_round_trip(client_id: str, secret: str) -> None:
    """What a server decodes (RFC 6749 2.3.1) is exactly what was configured."""
    from django.test import override_settings

    with override_settings(PAGERO_OAUTH={"CLIENT_ID": client_id, "CLIENT_SECRET": secret}):
        _, headers = oauth.client_auth({})
    scheme, _, credentials = headers["Authorization"].partition(" ")
    user, colon, password = base64.b64decode(credentials).decode().partition(":")
    assert (scheme, colon) == ("Basic", ":")
    assert (unquote_plus(user), unquote_plus(password)) == (client_id, secret)


def test_post_credentials_go_in_the_form(settings: Any) -> None:
    set_pagero(settings, CLIENT_AUTH_METHOD="client_secret_post", CLIENT_SECRET=AWKWARD_SECRET)
    form, headers = oauth.client_auth({"grant_type": "x"})
    assert form == {"grant_type": "x", "client_id": "test-client", "client_secret": AWKWARD_SECRET}
    assert headers == {}


def test_unknown_auth_method_is_a_configuration_error(settings: Any) -> None:
    set_pagero(settings, CLIENT_AUTH_METHOD="private_key_jwt")
    with pytest.raises(PageroConfigurationError, match="CLIENT_AUTH_METHOD"):
        oauth.client_auth({})


# --- code exchange against the mock -------------------------------------------------------


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_exchange_code_with_awkward_secret(
    pagero_mock: MockPageroServer,
    awkward_credentials: None,
    recorded: list[Any],
    settings: Any,
    method: str,
) -> None:
    set_pagero(settings, CLIENT_AUTH_METHOD=method)
    code = get_code(pagero_mock)
    response = oauth.exchange_code(code, redirect_uri=REDIRECT_URI)
    assert response.token_type == "bearer"
    assert response.expires_in == 600
    assert pagero_mock.mock.is_access_token_valid(response.access_token)
    assert response.refresh_token is not None
    assert pagero_mock.mock.is_refresh_token_valid(response.refresh_token)
    token_request = recorded[-1]
    assert token_request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert token_request.headers["accept"] == "application/json"
    expected = {
        "grant_type": ["authorization_code"],
        "code": [code],
        "redirect_uri": [REDIRECT_URI],
    }
    if method == "client_secret_post":
        expected.update(client_id=[AWKWARD_CLIENT_ID], client_secret=[AWKWARD_SECRET])
        assert "authorization" not in token_request.headers
    else:
        assert token_request.headers["authorization"].startswith("Basic ")
    assert token_request.form == expected
    assert token_request.query == {}


def test_exchange_code_with_pkce(pagero_mock: MockPageroServer, recorded: list[Any]) -> None:
    verifier = oauth.generate_code_verifier()
    code = get_code(pagero_mock, code_challenge=oauth.code_challenge(verifier))
    response = oauth.exchange_code(code, redirect_uri=REDIRECT_URI, code_verifier=verifier)
    assert pagero_mock.mock.is_access_token_valid(response.access_token)
    assert recorded[-1].form["code_verifier"] == [verifier]


def test_exchange_code_with_the_wrong_verifier(pagero_mock: MockPageroServer) -> None:
    code = get_code(pagero_mock, code_challenge=oauth.code_challenge("a" * 43))
    with pytest.raises(OAuthErrorResponse) as info:
        oauth.exchange_code(code, redirect_uri=REDIRECT_URI, code_verifier="b" * 43)
    assert info.value.error == "invalid_grant"


def test_a_code_works_once(pagero_mock: MockPageroServer) -> None:
    code = get_code(pagero_mock)
    first = oauth.exchange_code(code, redirect_uri=REDIRECT_URI)
    with pytest.raises(OAuthErrorResponse) as info:
        oauth.exchange_code(code, redirect_uri=REDIRECT_URI)
    assert info.value.error == "invalid_grant"
    assert info.value.status_code == 400
    assert code not in str(info.value)
    # RFC 6749 4.1.2: the strict server revoked what the code had given.
    assert not pagero_mock.mock.is_access_token_valid(first.access_token)


def test_wrong_client_secret_is_a_configuration_error(
    pagero_mock: MockPageroServer, settings: Any
) -> None:
    set_pagero(settings, CLIENT_SECRET="not-the-secret-4711")
    with pytest.raises(PageroConfigurationError) as info:
        oauth.exchange_code(get_code(pagero_mock), redirect_uri=REDIRECT_URI)
    assert info.value.status_code == 401
    assert "4711" not in str(info.value)


BIG = json.dumps({**VALID, "access_token": "a" * (transport.MAX_RESPONSE_BYTES + 1)})


@pytest.mark.parametrize(
    ("fault", "exception", "status_code"),
    [
        (Fault("token", status=503, headers=[("Retry-After", "30")]), PageroUnavailable, 503),
        (Fault("token", status=429), PageroUnavailable, 429),
        (
            Fault("token", status=500, body="<html>oops</html>", content_type="text/html"),
            PageroUnavailable,
            500,
        ),
        (Fault("token", status=401, body=""), PageroConfigurationError, 401),
        (
            Fault("token", status=404, body="nope", content_type="text/plain"),
            PageroUnavailable,
            404,
        ),
        (
            Fault("token", status=302, headers=[("Location", "/oauth/v2/oauth-token")]),
            PageroUnavailable,
            302,
        ),
        (
            Fault("token", status=200, body="<html>login</html>", content_type="text/html"),
            InvalidTokenResponse,
            200,
        ),
        (Fault("token", status=200, body="{not json"), InvalidTokenResponse, 200),
        (Fault("token", status=200, body="[]"), InvalidTokenResponse, None),
        (Fault("token", status=200, body=""), InvalidTokenResponse, 200),
        (Fault("token", status=200, body=BIG), InvalidTokenResponse, 200),
        (Fault("token", status=200, body="[" * 100_000), InvalidTokenResponse, 200),
        (Fault("token", drop=True), PageroUnavailable, None),
    ],
    ids=[
        "503",
        "429",
        "500-html",
        "401-empty",
        "404",
        "302-not-followed",
        "200-html",
        "200-invalid-json",
        "200-json-array",
        "200-empty",
        "200-over-1MiB",
        "200-deeply-nested-json",
        "dropped",
    ],
)
def test_bad_answers_from_the_token_endpoint(
    pagero_mock: MockPageroServer,
    fault: Fault,
    exception: type[Exception],
    status_code: int | None,
) -> None:
    code = get_code(pagero_mock)
    pagero_mock.mock.add_fault(fault)
    with pytest.raises(exception) as info:
        oauth.exchange_code(code, redirect_uri=REDIRECT_URI)
    assert getattr(info.value, "status_code", None) == status_code
    assert pagero_mock.mock.counts["authorization_code"] == 1  # a redirect was not followed


def test_retry_after_is_reported(pagero_mock: MockPageroServer) -> None:
    pagero_mock.mock.add_fault(Fault("token", status=503, headers=[("Retry-After", "30")]))
    with pytest.raises(PageroUnavailable) as info:
        oauth.exchange_code("code", redirect_uri=REDIRECT_URI)
    assert info.value.retry_after == 30
    assert info.value.error == "temporarily_unavailable"


def test_a_slow_server_times_out(pagero_mock: MockPageroServer, settings: Any) -> None:
    set_pagero(settings, TIMEOUT=0.2)
    pagero_mock.mock.add_fault(Fault("token", delay=5))
    with pytest.raises(PageroUnavailable, match="did not answer in time"):
        oauth.exchange_code("code", redirect_uri=REDIRECT_URI)


def test_an_unreachable_server(settings: Any) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    set_pagero(settings, TOKEN_URL=f"http://127.0.0.1:{port}/token")
    with pytest.raises(PageroUnavailable, match="could not be reached"):
        oauth.exchange_code("code", redirect_uri=REDIRECT_URI)


def test_netrc_credentials_are_never_added(
    pagero_mock: MockPageroServer,
    settings: Any,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    recorded: list[Any],
) -> None:
    """A ``~/.netrc`` entry for Pagero's host must not add a second client authentication."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password something\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    set_pagero(settings, CLIENT_AUTH_METHOD="client_secret_post")
    oauth.exchange_code(get_code(pagero_mock), redirect_uri=REDIRECT_URI)
    assert "authorization" not in recorded[-1].headers


# --- refresh and revocation ---------------------------------------------------------------


def test_refresh_uses_the_refresh_token_once(
    pagero_mock: MockPageroServer, recorded: list[Any]
) -> None:
    issued = pagero_mock.mock.issue_tokens()
    fresh = oauth.refresh_access_token(issued["refresh_token"])
    assert recorded[-1].form == {
        "grant_type": ["refresh_token"],
        "refresh_token": [issued["refresh_token"]],
    }
    assert fresh.refresh_token not in (None, issued["refresh_token"])
    assert pagero_mock.mock.is_access_token_valid(fresh.access_token)
    with pytest.raises(OAuthErrorResponse) as info:
        oauth.refresh_access_token(issued["refresh_token"])
    assert info.value.error == "invalid_grant"


def test_refresh_without_a_new_refresh_token(pagero_mock: MockPageroServer) -> None:
    issued = pagero_mock.mock.issue_tokens()
    pagero_mock.mock.add_fault(Fault("token", omit_refresh_token=True))
    fresh = oauth.refresh_access_token(issued["refresh_token"])
    assert fresh.refresh_token is None


def test_revoke(pagero_mock: MockPageroServer, recorded: list[Any]) -> None:
    issued = pagero_mock.mock.issue_tokens()
    oauth.revoke_token(issued["refresh_token"])
    assert recorded[-1].form == {
        "token": [issued["refresh_token"]],
        "token_type_hint": ["refresh_token"],
    }
    assert recorded[-1].headers["authorization"].startswith("Basic ")
    assert not pagero_mock.mock.is_refresh_token_valid(issued["refresh_token"])
    assert not pagero_mock.mock.is_access_token_valid(issued["access_token"])


def test_revoke_unavailable(pagero_mock: MockPageroServer) -> None:
    issued = pagero_mock.mock.issue_tokens()
    pagero_mock.mock.add_fault(Fault("revoke", status=503))
    with pytest.raises(PageroUnavailable) as info:
        oauth.revoke_token(issued["refresh_token"])
    assert info.value.status_code == 503
    assert pagero_mock.mock.is_refresh_token_valid(issued["refresh_token"])


def test_revoke_with_an_oauth_error(pagero_mock: MockPageroServer) -> None:
    with pytest.raises(OAuthErrorResponse) as info:
        oauth.revoke_token("x", token_type_hint="id_token")
    assert info.value.error == "unsupported_token_type"


# --- hygiene ------------------------------------------------------------------------------


def test_nothing_secret_is_logged(
    pagero_mock: MockPageroServer,
    awkward_credentials: None,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    code = get_code(pagero_mock)
    response = oauth.exchange_code(code, redirect_uri=REDIRECT_URI)
    fresh = oauth.refresh_access_token(response.refresh_token or "")
    oauth.revoke_token(fresh.refresh_token or "")
    for fault in (Fault("token", status=503), Fault("token", status=200, body="[]")):
        pagero_mock.mock.add_fault(fault)
        with pytest.raises(PageroUnavailable):
            oauth.refresh_access_token(fresh.refresh_token or "")
    with pytest.raises(OAuthErrorResponse):
        oauth.exchange_code(code, redirect_uri=REDIRECT_URI)
    set_pagero(settings, CLIENT_SECRET=AWKWARD_SECRET + "-wrong")
    with pytest.raises(PageroConfigurationError):
        oauth.exchange_code(code, redirect_uri=REDIRECT_URI)
    assert caplog.records
    secrets_ = [code, AWKWARD_SECRET, quote_plus(AWKWARD_SECRET), response.access_token]
    secrets_ += [response.refresh_token or "", fresh.access_token, fresh.refresh_token or ""]
    for value in secrets_:
        assert value not in caplog.text


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
@pytest.mark.parametrize("status", [400, 401, 503])
@pytest.mark.parametrize("call", ["refresh", "exchange", "revoke"])
def test_secrets_echoed_by_the_server_are_not_repeated(
    pagero_mock: MockPageroServer,
    awkward_credentials: None,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    method: str,
    status: int,
    call: str,
) -> None:
    """Servers echo what they reject ("unknown code abc"); nothing of it reaches an exception
    or a log record."""
    caplog.set_level(logging.DEBUG)
    set_pagero(settings, CLIENT_AUTH_METHOD=method)
    token = "_1XBPWQQ_0f3b6e1c-echoed-4711"
    verifier = oauth.generate_code_verifier()
    sent = [token, verifier, AWKWARD_SECRET] if call == "exchange" else [token, AWKWARD_SECRET]
    echo = {
        "error": "invalid_client" if status == 401 else "invalid_grant",
        "error_description": " / ".join([*sent, quote_plus(AWKWARD_SECRET), "\x00\u202e<x>"]),
    }
    pagero_mock.mock.add_fault(
        Fault("token" if call != "revoke" else "revoke", status=status, body=json.dumps(echo))
    )
    expected = {400: OAuthErrorResponse, 401: PageroConfigurationError, 503: PageroUnavailable}
    with pytest.raises(expected[status]) as info:
        if call == "refresh":
            oauth.refresh_access_token(token)
        elif call == "exchange":
            oauth.exchange_code(token, redirect_uri=REDIRECT_URI, code_verifier=verifier)
        else:
            oauth.revoke_token(token)
    exc = info.value
    text = f"{exc} {exc!r} {exc.description} {exc.error} {exc.args} {caplog.text}"
    for secret in [*sent, token[9:]]:
        assert secret not in text
    assert "\x00" not in text
    assert "\u202e" not in text
    if status == 400:
        assert exc.error == "invalid_grant"
        assert exc.description.startswith(" / ".join(["[redacted]"] * (len(sent) + 1)))


@pytest.mark.parametrize(
    "error", ["invalid grant", "_1XBPWQQ_x y", "x" * 65, "invalid_grant\n", 7, ["invalid_grant"]]
)
def test_an_error_that_is_not_an_rfc6749_code_is_an_unexpected_answer(
    pagero_mock: MockPageroServer, error: Any
) -> None:
    pagero_mock.mock.add_fault(Fault("token", status=400, body=json.dumps({"error": error})))
    with pytest.raises(PageroUnavailable, match="unexpected answer") as info:
        oauth.refresh_access_token("rt")
    assert info.value.status_code == 400


def test_local_variables_are_hidden_from_error_reports(
    pagero_mock: MockPageroServer, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """An unexpected error inside a call to Pagero: Django's error report (ADMINS e-mail) shows
    each frame's local variables unless ``sensitive_variables`` hides them."""
    from pathlib import Path

    from django.views.debug import ExceptionReporter

    set_pagero(settings, CLIENT_SECRET="the-client-secret-4711")
    monkeypatch.setattr(pagero_mock.mock, "client_secret", "the-client-secret-4711")
    verifier = oauth.generate_code_verifier()

    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("unexpected")

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", explode)
    calls = {
        "exchange": lambda: oauth.exchange_code(
            "the-code-4711", redirect_uri=REDIRECT_URI, code_verifier=verifier
        ),
        "refresh": lambda: oauth.refresh_access_token("_1XBPWQQ_refresh-4711"),
        "revoke": lambda: oauth.revoke_token("_1XBPWQQ_revoke-4711"),
    }
    package = str(Path(oauth.__file__).parent)
    for call in calls.values():
        with pytest.raises(RuntimeError) as info:
            call()
        report = ExceptionReporter(None, info.type, info.value, info.tb)
        frames = [f for f in report.get_traceback_frames() if f["filename"].startswith(package)]
        assert "_post" in {frame["function"] for frame in frames}
        texts = " ".join(f"{name}={value}" for frame in frames for name, value in frame["vars"])
        assert "4711" not in texts
        assert verifier not in texts


@responses.activate
def test_every_call_has_a_timeout_and_verifies_tls(settings: Any) -> None:
    set_pagero(settings, TOKEN_URL="https://sso.example/token", TIMEOUT=4)
    responses.post("https://sso.example/token", json=VALID)
    oauth.exchange_code("c", redirect_uri=REDIRECT_URI)
    kwargs = responses.calls[0].request.req_kwargs
    assert kwargs["timeout"] == 4.0
    assert kwargs["verify"] not in (False, None)  # True, or the CA bundle from the environment
    assert responses.calls[0].request.headers["User-Agent"] == "django-pagero-oauth"


def test_one_http_session_per_thread() -> None:
    seen: list[requests.Session] = []
    thread = threading.Thread(target=lambda: seen.append(transport.session()))
    thread.start()
    thread.join()
    assert transport.session() is transport.session()
    assert seen[0] is not transport.session()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("30", 30), (" 7 ", 7), ("", None), ("soon", None), ("-5", None), ("\u00b2", None)],
)
def test_retry_after_seconds(value: str, expected: int | None) -> None:
    assert transport.Reply(503, None, {"Retry-After": value}).retry_after == expected


def test_retry_after_http_date() -> None:
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(hours=1), usegmt=True)
    assert 3000 < (transport.Reply(503, None, {"Retry-After": soon}).retry_after or 0) <= 3600
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert transport.Reply(503, None, {"Retry-After": past}).retry_after == 0


# --- JWT display --------------------------------------------------------------------------


def test_decode_jwt_unverified(pagero_mock: MockPageroServer) -> None:
    issued = pagero_mock.mock.issue_tokens(publicid="acme")
    decoded = oauth.decode_jwt_unverified(issued["access_token"])
    assert decoded is not None
    header, payload = decoded
    assert {"kid", "x5t"} <= set(header)
    assert payload["publicid"] == "acme"


@pytest.mark.parametrize(
    "token",
    [
        "opaque-token",
        "a.b",
        "a.b.c.d",
        "!!!.???.sig",
        base64.urlsafe_b64encode(b"[1]").decode()
        + "."
        + base64.urlsafe_b64encode(b"{}").decode()
        + ".sig",
        base64.urlsafe_b64encode(b"\xff\xfe").decode() + ".e30.sig",
    ],
)
def test_decode_jwt_unverified_on_non_jwts(token: str) -> None:
    assert oauth.decode_jwt_unverified(token) is None
