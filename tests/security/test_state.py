"""``state`` (RFC 6749 10.12): unguessable, single-use, bound to the session and the user.

Items 1-4 of the security issue. Every rejection is checked at the mock too: a rejected
callback must not reach Pagero's token endpoint at all.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

from django_pagero_oauth.flows import SESSION_KEY
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault

from .conftest import CALLBACK_PATH, Browser, query_of, token_count, with_query


def _state_bits(state: str) -> str:
    raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
    return "".join(f"{byte:08b}" for byte in raw)


# --- 1. random, single-use, bound to session and user ----------------------------------------


def test_state_has_at_least_128_random_bits(browser: Browser) -> None:
    """Every one of the first 128 bits varies across 64 logins (a counter, a timestamp or a
    short value fails: for a truly random bit, being constant 64 times has odds 2**-63)."""
    states = [query_of(browser.start_login())["state"] for _ in range(64)]
    assert len(set(states)) == len(states)
    for state in states:
        assert len(state) >= 22  # 128 bits in base64url
        assert set(state) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    bits = [_state_bits(state) for state in states]
    assert min(len(b) for b in bits) >= 128
    constant = [i for i in range(128) if len({b[i] for b in bits}) == 1]
    assert constant == []


def test_state_is_stored_only_in_the_session_that_started_the_flow(
    browser: Browser, make_browser: Any, user: Any
) -> None:
    state = query_of(browser.start_login())["state"]
    assert state in browser.pending_states()
    other = make_browser(user)
    assert state not in other.pending_states()


def test_valid_state_from_another_session_is_rejected_without_a_token_request(
    browser: Browser, make_browser: Any, user: Any, pagero_mock: Any
) -> None:
    """Same user, second browser: the callback URL of the first browser's flow is refused."""
    callback_url = browser.pagero_answer(browser.start_login())
    second = make_browser(user)

    response = second.callback(callback_url)

    assert response.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert token_count() == 0
    # The attempt did not burn the first browser's flow: it still completes.
    assert browser.callback(callback_url).status_code == 302
    assert pagero_mock.mock.counts["authorization_code"] == 1
    assert token_count() == 1


def test_state_is_bound_to_the_user_who_started_the_flow(
    browser: Browser, make_browser: Any, other_user: Any, pagero_mock: Any
) -> None:
    """The flow entry itself, carried into another user's session, is refused (the user check
    in the flow, not only the session, binds it)."""
    callback_url = browser.pagero_answer(browser.start_login())
    flows = browser.pending_flows()
    intruder = make_browser(other_user)
    session = intruder.client.session
    session[SESSION_KEY] = flows
    session.save()

    response = intruder.callback(callback_url)

    assert response.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert not PageroToken.objects.filter(user=other_user).exists()
    assert intruder.pending_states() == []  # consumed all the same


def test_state_is_bound_to_the_user_across_logout_and_login(
    browser: Browser, other_user: Any, pagero_mock: Any
) -> None:
    """Alice starts a flow and logs out; Mallory logs in on the same browser and opens the
    callback: refused."""
    callback_url = browser.pagero_answer(browser.start_login())
    browser.client.logout()
    browser.client.force_login(other_user)

    assert browser.callback(callback_url).status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert token_count() == 0


def test_anonymous_callback_is_rejected(browser: Browser, pagero_mock: Any) -> None:
    callback_url = browser.pagero_answer(browser.start_login())
    browser.client.logout()
    assert browser.callback(callback_url).status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0


def test_expired_state_is_rejected(browser: Browser, pagero_mock: Any, settings: Any) -> None:
    callback_url = browser.pagero_answer(browser.start_login())
    session = browser.client.session
    flows = session[SESSION_KEY]
    for entry in flows.values():
        entry["created"] -= 3600
    session[SESSION_KEY] = flows
    session.save()

    assert browser.callback(callback_url).status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert browser.pending_states() == []


# --- 2. missing equals missing must not pass --------------------------------------------------


def _session_flows(kind: str, browser: Browser) -> None:
    """Put the session into one of the shapes a callback may meet."""
    session = browser.client.session
    if kind == "no flows key":
        session.pop(SESSION_KEY, None)
    elif kind == "empty flows":
        session[SESSION_KEY] = {}
    elif kind == "flow keyed by empty state":
        # A corrupted or hostile entry: must not match a missing or empty state.
        flows = dict(session.get(SESSION_KEY, {}))
        entry = next(iter(flows.values()))
        session[SESSION_KEY] = {"": entry}
    elif kind == "flows not a dict":
        session[SESSION_KEY] = [None, ""]
    elif kind == "pending flow":
        pass
    session.save()


@pytest.mark.parametrize(
    "session_kind",
    [
        "no flows key",
        "empty flows",
        "flow keyed by empty state",
        "flows not a dict",
        "pending flow",
    ],
)
@pytest.mark.parametrize(
    "state", [None, "", " ", "None", "null"], ids=["absent", "empty", "space", "None", "null"]
)
def test_missing_or_empty_state_is_rejected(
    browser: Browser, pagero_mock: Any, session_kind: str, state: str | None
) -> None:
    callback_url = browser.pagero_answer(browser.start_login())
    _session_flows(session_kind, browser)

    response = browser.callback(with_query(callback_url, state=state))

    assert response.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert token_count() == 0


@pytest.mark.parametrize(
    "state",
    ["é", "\x80", "🔑", "a" * 10_000, "%FF", "\x00"],
    ids=["e-acute", "C1", "emoji", "long", "percent-FF", "NUL"],
)
def test_odd_states_are_rejected_not_crashed_on(
    browser: Browser, pagero_mock: Any, state: str
) -> None:
    """Found by the fuzzer: a non-ASCII state must be a 400 like any other unknown state."""
    callback_url = browser.pagero_answer(browser.start_login())
    response = browser.client.get(CALLBACK_PATH, {**query_of(callback_url), "state": state})
    assert response.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert len(browser.pending_states()) == 1  # a stranger's answer consumes nothing


def test_callback_without_any_parameter_is_rejected(browser: Browser, pagero_mock: Any) -> None:
    browser.start_login()
    assert browser.callback(CALLBACK_PATH).status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0


@pytest.mark.parametrize("name", ["state", "code"])
@pytest.mark.parametrize("order", ["valid last", "valid first"])
def test_repeated_state_or_code_is_rejected(
    browser: Browser, pagero_mock: Any, name: str, order: str
) -> None:
    """RFC 6749 3.1: a parameter MUST NOT appear twice; which copy would count is ambiguous
    (Django reads the last, other layers the first), so the answer is refused."""
    callback_url = browser.pagero_answer(browser.start_login())
    valid = query_of(callback_url)[name]
    values = ["forged-" + name, valid] if order == "valid last" else [valid, "forged-" + name]
    url = with_query(callback_url, **{name: None}) + "".join(f"&{name}={v}" for v in values)

    assert browser.callback(url).status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert token_count() == 0


# --- 3. replay (reload, back button); consumed on error paths too ----------------------------


def test_replayed_successful_callback_is_rejected(browser: Browser, pagero_mock: Any) -> None:
    callback_url = browser.pagero_answer(browser.start_login())
    assert browser.callback(callback_url).status_code == 302
    stored = PageroToken.objects.get()
    first_refresh_token = stored.refresh_token

    for _ in range(2):  # reload, then back-and-forward
        assert browser.callback(callback_url).status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 1
    assert PageroToken.objects.get().refresh_token == first_refresh_token
    # The mock revokes everything issued from a code used twice: it must not have been.
    assert pagero_mock.mock.is_refresh_token_valid(first_refresh_token)


def _error_path(kind: str, browser: Browser, pagero_mock: Any, callback_url: str) -> str:
    """Make the first callback of a flow fail in one way; return the URL to open."""
    issuer = pagero_mock.url
    if kind == "access_denied":
        return with_query(callback_url, code=None, error="access_denied")
    if kind == "iss mismatch":
        return with_query(callback_url, iss=issuer + "/")
    if kind == "iss missing":
        return with_query(callback_url, iss=None)
    if kind == "no code":
        return with_query(callback_url, code=None)
    if kind == "token endpoint 503":
        pagero_mock.mock.add_fault(Fault(endpoint="token", status=503))
        return callback_url
    if kind == "token endpoint invalid_grant":
        pagero_mock.mock.add_fault(
            Fault(endpoint="token", status=400, body='{"error": "invalid_grant"}')
        )
        return callback_url
    if kind == "token endpoint invalid_client":
        pagero_mock.mock.add_fault(
            Fault(endpoint="token", status=401, body='{"error": "invalid_client"}')
        )
        return callback_url
    if kind == "token endpoint garbage":
        pagero_mock.mock.add_fault(Fault(endpoint="token", status=200, body="<html>"))
        return callback_url
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "access_denied",
        "iss mismatch",
        "iss missing",
        "no code",
        "token endpoint 503",
        "token endpoint invalid_grant",
        "token endpoint invalid_client",
        "token endpoint garbage",
    ],
)
def test_state_is_consumed_on_error_paths(browser: Browser, pagero_mock: Any, kind: str) -> None:
    """After a failed callback, a second, perfectly valid code for the same state is refused."""
    authorize_url = browser.start_login()
    first = browser.pagero_answer(authorize_url)
    second = browser.pagero_answer(authorize_url)  # another valid code, same state
    assert query_of(first)["state"] == query_of(second)["state"]

    failed = browser.callback(_error_path(kind, browser, pagero_mock, first))
    assert failed.status_code >= 400
    exchanges = pagero_mock.mock.counts["authorization_code"]

    replay = browser.callback(second)

    assert replay.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == exchanges
    assert token_count() == 0
    assert browser.pending_states() == []


# --- 4. two tabs -------------------------------------------------------------------------------


def test_two_logins_in_two_tabs_of_one_session_both_complete(
    browser: Browser, pagero_mock: Any
) -> None:
    tab1 = browser.start_login("/plain/?tab=1")
    tab2 = browser.start_login("/plain/?tab=2")
    assert query_of(tab1)["state"] != query_of(tab2)["state"]
    callback1 = browser.pagero_answer(tab1, publicid="first")
    callback2 = browser.pagero_answer(tab2, publicid="second")

    second = browser.callback(callback2)  # the later tab finishes first
    first = browser.callback(callback1)

    assert (second.status_code, second["Location"]) == (302, "/plain/?tab=2")
    assert (first.status_code, first["Location"]) == (302, "/plain/?tab=1")
    assert pagero_mock.mock.counts["authorization_code"] == 2
    token = PageroToken.objects.get()
    assert token.publicid == "first"  # the last login to finish wins
    assert pagero_mock.mock.is_refresh_token_valid(token.refresh_token)
    assert browser.pending_states() == []


# --- 3b. spending is atomic: no session save and no rollback brings a state back (issue 9) ----


def _stale_tab(browser: Browser, user: Any) -> Any:
    """A request of a second tab of ``browser``: it loads the session now, as SessionMiddleware
    does, and will save it whole when it ends."""
    from importlib import import_module

    from django.conf import settings as django_settings
    from django.test import RequestFactory

    request = RequestFactory().get("/pagero/login/")
    store = import_module(django_settings.SESSION_ENGINE).SessionStore
    request.session = store(browser.client.session.session_key)
    assert SESSION_KEY in request.session  # loaded now
    request.user = user
    return request


def test_two_tabs_saving_the_session_cannot_bring_a_spent_state_back(
    browser: Browser, pagero_mock: Any, user: Any
) -> None:
    """Tab B's request loaded the session before tab A's callback spent the state and saves it
    (with tab B's own new login) after: the spent entry is back in the session, yet a second,
    perfectly valid code for that state is refused without a token request."""
    from django_pagero_oauth import flows

    authorize_url = browser.start_login()
    first = browser.pagero_answer(authorize_url)
    second = browser.pagero_answer(authorize_url)  # another valid code, same state
    state = query_of(first)["state"]
    tab_b = _stale_tab(browser, user)

    assert browser.callback(first).status_code == 302  # tab A
    flows.start_flow(tab_b, redirect_uri="http://testserver/pagero/callback/", next_url="/")
    tab_b.session.save()  # the end of tab B's request
    assert state in browser.pending_states()  # the race is real

    replay = browser.callback(second)

    assert replay.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 1
    token = PageroToken.objects.get()
    assert pagero_mock.mock.is_refresh_token_valid(token.refresh_token)


def test_a_callback_that_fails_under_atomic_requests_still_spends_the_state(
    browser: Browser, pagero_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ATOMIC_REQUESTS and a callback that fails after the exchange (here a receiver of
    ``token_obtained``): the transaction, and with it the database session's removal of the
    entry, is rolled back; the state stays spent."""
    from django.db import connection

    from django_pagero_oauth.signals import token_obtained

    def broken_receiver(**kwargs: Any) -> None:
        raise RuntimeError("a project's receiver fails")

    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    token_obtained.connect(broken_receiver)
    browser.client.raise_request_exception = False
    authorize_url = browser.start_login()
    first = browser.pagero_answer(authorize_url)
    second = browser.pagero_answer(authorize_url)
    state = query_of(first)["state"]
    try:
        assert browser.callback(first).status_code == 500
    finally:
        token_obtained.disconnect(broken_receiver)
    assert token_count() == 0  # rolled back
    assert state in browser.pending_states()  # and the session's removal with it

    replay = browser.callback(second)

    assert replay.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 1
    assert token_count() == 0
