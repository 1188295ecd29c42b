"""PKCE (RFC 7636), on by default (RFC 9700 2.1.1; issue 9): S256 only, a fresh strong verifier
per flow, sent with the exchange (item 5). The strict mock checks the verifier against the
challenge, so a flow that completes proves it was sent and matched. ``PKCE: False`` (Pagero's
documented flow without it) stays possible, with system check W004."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import pytest

from django_pagero_oauth.checks import deployment
from django_pagero_oauth.conf import DEFAULTS
from django_pagero_oauth.flows import SESSION_KEY
from django_pagero_oauth.models import PageroToken

from .conftest import Browser, query_of

UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


@pytest.fixture
def pkce(pagero_mock: Any, settings: Any) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "PKCE": True}


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _verifier(browser: Browser, state: str) -> str:
    verifier = browser.pending_flows()[state]["code_verifier"]
    assert isinstance(verifier, str)
    return verifier


@pytest.mark.usefixtures("pkce")
def test_authorization_request_uses_s256_only(browser: Browser) -> None:
    params = query_of(browser.start_login())
    assert params["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", params["code_challenge"])
    assert params["code_challenge"] == _s256(_verifier(browser, params["state"]))
    # The verifier itself never travels in the front channel.
    assert _verifier(browser, params["state"]) not in browser.urls[-1]


@pytest.mark.usefixtures("pkce")
def test_verifier_is_43_to_128_unreserved_chars_from_at_least_32_random_bytes(
    browser: Browser,
) -> None:
    """One verifier per flow; each of the first 256 bits of the decoded verifiers varies
    across 64 flows (a verifier of fewer than 32 random bytes fails)."""
    verifiers = []
    for _ in range(64):
        state = query_of(browser.start_login())["state"]
        verifiers.append(_verifier(browser, state))
    assert len(set(verifiers)) == len(verifiers)
    for verifier in verifiers:
        assert UNRESERVED.fullmatch(verifier), verifier
    decoded = [
        base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)) for v in verifiers
    ]  # token_urlsafe-style verifiers; any alphabet decoding to >= 32 bytes would do
    assert min(len(raw) for raw in decoded) >= 32
    bits = ["".join(f"{byte:08b}" for byte in raw) for raw in decoded]
    assert [i for i in range(256) if len({b[i] for b in bits}) == 1] == []


@pytest.mark.usefixtures("pkce")
def test_each_flow_has_its_own_verifier_and_both_complete(
    browser: Browser, pagero_mock: Any
) -> None:
    tab1, tab2 = browser.start_login(), browser.start_login()
    state1, state2 = query_of(tab1)["state"], query_of(tab2)["state"]
    assert _verifier(browser, state1) != _verifier(browser, state2)
    assert query_of(tab1)["code_challenge"] != query_of(tab2)["code_challenge"]
    callback1, callback2 = browser.pagero_answer(tab1), browser.pagero_answer(tab2)
    assert browser.callback(callback2).status_code == 302
    assert browser.callback(callback1).status_code == 302
    assert pagero_mock.mock.counts["authorization_code"] == 2


@pytest.mark.usefixtures("pkce")
def test_verifier_is_sent_with_the_exchange(
    browser: Browser, pagero_mock: Any, transport: list[Any]
) -> None:
    authorize_url = browser.start_login()
    verifier = _verifier(browser, query_of(authorize_url)["state"])

    assert browser.callback(browser.pagero_answer(authorize_url)).status_code == 302

    (exchange,) = [r for r in transport if b"grant_type=authorization_code" in r.body]
    assert f"code_verifier={verifier}".encode() in exchange.body
    assert verifier not in exchange.url
    assert PageroToken.objects.count() == 1


@pytest.mark.usefixtures("pkce")
@pytest.mark.parametrize("tamper", ["other verifier", "no verifier"])
def test_exchange_with_a_wrong_verifier_fails_closed(
    browser: Browser, pagero_mock: Any, tamper: str
) -> None:
    """Control: the strict mock really checks the verifier, so the test above can fail."""
    authorize_url = browser.start_login()
    state = query_of(authorize_url)["state"]
    callback_url = browser.pagero_answer(authorize_url)
    session = browser.client.session
    flows = session[SESSION_KEY]
    flows[state]["code_verifier"] = "x" * 64 if tamper == "other verifier" else None
    session[SESSION_KEY] = flows
    session.save()

    response = browser.callback(callback_url)

    assert response.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 1
    assert PageroToken.objects.count() == 0


def test_pkce_is_on_by_default_and_a_server_that_requires_it_accepts_the_login(
    browser: Browser, pagero_mock: Any, settings: Any, transport: list[Any]
) -> None:
    """No PKCE setting at all: the challenge goes out and the mock, told to require PKCE as
    RFC 9700 lets a server do, completes the login."""
    settings.PAGERO_OAUTH = {k: v for k, v in settings.PAGERO_OAUTH.items() if k != "PKCE"}
    assert DEFAULTS["PKCE"] is True
    pagero_mock.mock.require_pkce = True

    authorize_url = browser.start_login()
    params = query_of(authorize_url)
    assert params["code_challenge_method"] == "S256"
    assert browser.callback(browser.pagero_answer(authorize_url)).status_code == 302

    (exchange,) = [r for r in transport if b"grant_type=authorization_code" in r.body]
    assert b"code_verifier=" in exchange.body
    assert PageroToken.objects.count() == 1
    assert "django_pagero_oauth.W004" not in [m.id for m in deployment.check_pkce()]


@pytest.fixture
def pkce_off(pagero_mock: Any, settings: Any) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "PKCE": False}


@pytest.mark.usefixtures("pkce_off")
def test_pkce_off_sends_no_challenge_and_no_verifier(
    browser: Browser, transport: list[Any]
) -> None:
    """``PKCE: False``: Pagero's documented flow without PKCE stays exactly that, and the
    system check warns about it (W004)."""
    authorize_url = browser.start_login()
    params = query_of(authorize_url)
    assert "code_challenge" not in params and "code_challenge_method" not in params
    assert browser.callback(browser.pagero_answer(authorize_url)).status_code == 302
    assert all(b"code_verifier" not in r.body for r in transport)
    assert [m.id for m in deployment.check_pkce()] == ["django_pagero_oauth.W004"]


@pytest.mark.usefixtures("pkce_off")
def test_pkce_off_is_refused_by_a_server_that_requires_it(
    browser: Browser, pagero_mock: Any
) -> None:
    """Control for the default test: the mock really refuses a login without a challenge."""
    pagero_mock.mock.require_pkce = True
    response = browser.callback(browser.pagero_answer(browser.start_login()))
    assert response.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert PageroToken.objects.count() == 0
