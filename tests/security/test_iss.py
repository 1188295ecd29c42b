"""``iss`` in the authorization response (RFC 9207) when ``ISSUER`` is set (item 6).

RFC 9207 2.4: the client compares ``iss`` with the expected issuer by simple string
comparison; a missing ``iss`` is rejected; and nothing (no token request) happens after a
mismatch. Over the real mock too: its ``Fault(iss=...)`` changes or drops what it sends.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from django_pagero_oauth.testing.mock import OMIT, Fault

from .conftest import Browser, token_count, with_query

ISSUER = "https://sso.pageroonline.com"

WRONG_ISSUERS = {
    "trailing slash": ISSUER + "/",
    "upper-case scheme": "HTTPS://sso.pageroonline.com",
    "upper-case host": "https://SSO.PageroOnline.com",
    "explicit :443": "https://sso.pageroonline.com:443",
    "http": "http://sso.pageroonline.com",
    "path": ISSUER + "/oauth/v2",
    "suffix host": "https://sso.pageroonline.com.evil.example",
    "userinfo": "https://sso.pageroonline.com@evil.example",
    "leading space": " " + ISSUER,
    "trailing space": ISSUER + " ",
    "trailing dot": "https://sso.pageroonline.com.",
    "percent-encoded": "https%3A%2F%2Fsso.pageroonline.com",
    "legacy issuer": "https://auth.pageroonline.com",
    "empty": "",
    "unicode lookalike": "https://sso.pager\u03bfonline.com",  # Greek omicron
}


@pytest.fixture
def issuer(pagero_mock: Any, settings: Any) -> str:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ISSUER": ISSUER}
    return ISSUER


def test_exact_issuer_is_accepted(browser: Browser, issuer: str, pagero_mock: Any) -> None:
    """Control: the mock does not know ISSUER; the callback carries exactly it."""
    callback_url = browser.pagero_answer(browser.start_login())
    response = browser.callback(with_query(callback_url, iss=issuer))
    assert response.status_code == 302
    assert pagero_mock.mock.counts["authorization_code"] == 1
    assert token_count() == 1


@pytest.mark.parametrize("wrong", list(WRONG_ISSUERS.values()), ids=list(WRONG_ISSUERS))
def test_any_other_issuer_is_rejected_before_the_token_request(
    browser: Browser, issuer: str, pagero_mock: Any, wrong: str
) -> None:
    callback_url = browser.pagero_answer(browser.start_login())

    response = browser.callback(with_query(callback_url, iss=wrong))

    assert response.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert token_count() == 0
    assert browser.pending_states() == []  # consumed: the right iss cannot be tried next


def test_missing_iss_is_rejected(browser: Browser, issuer: str, pagero_mock: Any) -> None:
    callback_url = browser.pagero_answer(browser.start_login())
    assert browser.callback(with_query(callback_url, iss=None)).status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert token_count() == 0


@pytest.mark.parametrize("order", ["right first", "wrong first"])
def test_repeated_iss_with_one_wrong_value_is_rejected(
    browser: Browser, issuer: str, pagero_mock: Any, order: str
) -> None:
    """Accepting one of two different issuers is a mix-up waiting to happen (RFC 9207 2.4)."""
    values = [issuer, "https://evil.example"]
    if order == "wrong first":
        values.reverse()
    callback_url = with_query(browser.pagero_answer(browser.start_login()), iss=None)
    url = callback_url + "".join(f"&iss={quote(value, safe='')}" for value in values)

    assert browser.callback(url).status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert token_count() == 0


def test_error_response_with_wrong_iss_is_rejected_as_a_mix_up(
    browser: Browser, issuer: str
) -> None:
    """RFC 9207 2.4 applies to error responses too: the generic mix-up message, not the
    (attacker-chosen) error's."""
    callback_url = browser.pagero_answer(browser.start_login())
    url = with_query(callback_url, code=None, error="access_denied", iss="https://evil.example")
    response = browser.callback(url)
    assert response.status_code == 400
    assert b"cancelled or denied" not in response.content


# Over the real mock: what it actually redirects with.


@pytest.mark.parametrize(
    "fault_iss",
    [OMIT, "https://evil.example", "PLACEHOLDER/"],
    ids=["omitted", "other server", "trailing slash"],
)
def test_mock_sending_a_wrong_or_no_iss_is_rejected(
    browser: Browser, pagero_mock: Any, fault_iss: Any
) -> None:
    """The fixture's ISSUER is the mock's URL, which the mock sends unless faulted."""
    if fault_iss == "PLACEHOLDER/":
        fault_iss = pagero_mock.url + "/"
    pagero_mock.mock.add_fault(Fault(endpoint="authorize", iss=fault_iss))

    response = browser.callback(browser.pagero_answer(browser.start_login()))

    assert response.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert token_count() == 0


def test_mock_sending_the_right_iss_is_accepted(browser: Browser, pagero_mock: Any) -> None:
    assert browser.callback(browser.pagero_answer(browser.start_login())).status_code == 302
    assert pagero_mock.mock.counts["authorization_code"] == 1
