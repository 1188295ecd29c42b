"""Tests of ``flows.py``: per-flow state in the session, single use, bound to session and user."""

from __future__ import annotations

import base64
import re
import time
from importlib import import_module
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from django_pagero_oauth import flows
from django_pagero_oauth.exceptions import CallbackError

REDIRECT_URI = "http://testserver/pagero/callback/"
UNRESERVED = re.compile(r"[A-Za-z0-9\-._~]+")


def make_request(user: Any, session_key: str | None = None) -> Any:
    """A request with a real (database-backed) session, as SessionMiddleware would give it."""
    request = RequestFactory().get("/")
    request.session = import_module(django_settings.SESSION_ENGINE).SessionStore(session_key)
    request.user = user
    return request


def stored_flows(session_key: str) -> dict[str, Any]:
    """What the session store holds for ``session_key`` now (not the in-memory copy)."""
    store = import_module(django_settings.SESSION_ENGINE).SessionStore(session_key)
    return dict(store.get(flows.SESSION_KEY, {}))


def start(request: Any, next_url: str = "/next/") -> flows.Flow:
    return flows.start_flow(request, redirect_uri=REDIRECT_URI, next_url=next_url)


def test_start_flow_stores_one_entry_per_state(user: Any) -> None:
    request = make_request(user)
    before = time.time()
    flow = start(request)
    entry = request.session[flows.SESSION_KEY][flow.state]
    assert entry == {
        "user_id": str(user.pk),
        "redirect_uri": REDIRECT_URI,
        "next_url": "/next/",
        "created": flow.created,
        "code_verifier": flow.code_verifier,
        "nonce": None,
        "sign_in": False,
    }
    assert flow.code_verifier is not None
    assert before <= flow.created <= time.time()


def test_state_has_at_least_128_random_bits(user: Any) -> None:
    request = make_request(user)
    states = {start(request).state for _ in range(50)}
    assert len(states) == 50
    for state in states:
        assert UNRESERVED.fullmatch(state)
        assert len(base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))) * 8 >= 128


def test_pkce_verifier_by_default_and_none_when_disabled(user: Any, settings: Any) -> None:
    request = make_request(user)
    verifier = start(request).code_verifier  # PKCE is on by default (RFC 9700 2.1.1)
    assert verifier is not None
    assert 43 <= len(verifier) <= 128  # RFC 7636 4.1
    assert UNRESERVED.fullmatch(verifier)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "PKCE": False}
    assert start(request).code_verifier is None


def test_pop_returns_the_flow_and_removes_it(user: Any) -> None:
    request = make_request(user)
    flow = start(request)
    request.session.save()
    assert flows.pop_flow(request, flow.state) == flow
    assert flow.state not in request.session[flows.SESSION_KEY]
    with pytest.raises(CallbackError, match="unknown or was already used"):
        flows.pop_flow(request, flow.state)


def test_pop_persists_the_removal_at_once(user: Any) -> None:
    """The callback may answer 5xx, for which SessionMiddleware does not save the session."""
    request = make_request(user)
    flow = start(request)
    request.session.save()
    assert flow.state in stored_flows(request.session.session_key)
    flows.pop_flow(request, flow.state)
    assert flow.state not in stored_flows(request.session.session_key)


def test_pop_after_the_session_ended_elsewhere(user: Any) -> None:
    """A logout in another tab deleted the session while this callback was on its way."""
    request = make_request(user)
    flow = start(request)
    request.session.save()
    import_module(django_settings.SESSION_ENGINE).SessionStore(request.session.session_key).delete()
    with pytest.raises(CallbackError, match="unknown"):
        flows.pop_flow(request, flow.state)


@pytest.mark.parametrize("state", [None, ""])
def test_pop_without_state(user: Any, state: str | None) -> None:
    request = make_request(user)
    start(request)
    with pytest.raises(CallbackError, match="no state") as info:
        flows.pop_flow(request, state)
    assert info.value.error == "invalid_state"


def test_pop_with_an_unknown_state_keeps_the_others(user: Any) -> None:
    request = make_request(user)
    flow = start(request)
    with pytest.raises(CallbackError, match="unknown"):
        flows.pop_flow(request, flow.state + "x")
    with pytest.raises(CallbackError, match="unknown"):
        flows.pop_flow(request, flow.state[:-1])
    assert flows.pop_flow(request, flow.state) == flow


@pytest.mark.parametrize("junk", ["\u00e9", "\ufffd", "\udcff", "\x00", "a" * 10_000])
def test_pop_with_any_text_fails_cleanly(user: Any, junk: str) -> None:
    request = make_request(user)
    flow = start(request)
    with pytest.raises(CallbackError, match="unknown"):
        flows.pop_flow(request, junk)
    with pytest.raises(CallbackError, match="unknown"):
        flows.pop_flow(request, flow.state + junk)
    assert flows.pop_flow(request, flow.state) == flow


def test_pop_in_another_session_fails(user: Any) -> None:
    first, second = make_request(user), make_request(user)
    flow = start(first)
    with pytest.raises(CallbackError, match="unknown"):
        flows.pop_flow(second, flow.state)
    assert flows.pop_flow(first, flow.state) == flow


def test_pop_by_another_user_fails_and_consumes_the_state(user: Any, other_user: Any) -> None:
    request = make_request(user)
    flow = start(request)
    request.user = other_user
    with pytest.raises(CallbackError, match="another user"):
        flows.pop_flow(request, flow.state)
    request.user = user
    with pytest.raises(CallbackError, match="unknown"):
        flows.pop_flow(request, flow.state)


def test_pop_by_an_anonymous_user_fails(user: Any) -> None:
    request = make_request(user)
    flow = start(request)
    request.user = AnonymousUser()
    with pytest.raises(CallbackError, match="another user"):
        flows.pop_flow(request, flow.state)


def test_an_anonymous_sign_in_flow_completes_only_anonymously(db: None, user: Any) -> None:
    request = make_request(AnonymousUser())
    flow = flows.start_flow(request, redirect_uri=REDIRECT_URI, next_url="/", sign_in=True)
    assert (flow.user_id, flow.sign_in) == ("", True) and flow.nonce
    assert flows.pop_flow(request, flow.state) == flow
    flow = flows.start_flow(request, redirect_uri=REDIRECT_URI, next_url="/", sign_in=True)
    request.user = user  # logged in meanwhile, in another tab
    with pytest.raises(CallbackError, match="another user"):
        flows.pop_flow(request, flow.state)


def test_an_anonymous_flow_that_is_not_a_sign_in_is_refused(db: None) -> None:
    """Only a sign-in may complete without a user: a connect flow never does."""
    request = make_request(AnonymousUser())
    flow = flows.start_flow(request, redirect_uri=REDIRECT_URI, next_url="/", sign_in=False)
    with pytest.raises(CallbackError, match="another user"):
        flows.pop_flow(request, flow.state)


def test_a_nonce_only_when_the_flow_asks_for_an_id_token(user: Any, settings: Any) -> None:
    assert start(make_request(user)).nonce is None
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SCOPE": "all openid"}
    first, second = start(make_request(user)), start(make_request(user))
    assert first.nonce and second.nonce and first.nonce != second.nonce
    assert len(first.nonce) >= 43


def age(request: Any, state: str, seconds: float) -> None:
    """Make a pending flow ``seconds`` old (moves its creation time; no sleeping)."""
    pending = request.session[flows.SESSION_KEY]
    pending[state]["created"] = time.time() - seconds
    request.session[flows.SESSION_KEY] = pending


def test_a_flow_expires_after_state_max_age(user: Any) -> None:
    request = make_request(user)
    fresh, old = start(request), start(request)
    age(request, fresh.state, 590)
    age(request, old.state, 601)
    assert flows.pop_flow(request, fresh.state).state == fresh.state
    with pytest.raises(CallbackError, match="too long"):
        flows.pop_flow(request, old.state)
    with pytest.raises(CallbackError, match="unknown"):
        flows.pop_flow(request, old.state)


def test_state_max_age_is_a_setting(user: Any, settings: Any) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "STATE_MAX_AGE": 30}
    request = make_request(user)
    flow = start(request)
    age(request, flow.state, 31)
    with pytest.raises(CallbackError, match="too long"):
        flows.pop_flow(request, flow.state)


def test_starting_a_flow_drops_expired_ones(user: Any) -> None:
    request = make_request(user)
    old = start(request)
    age(request, old.state, 601)
    new = start(request)
    assert set(request.session[flows.SESSION_KEY]) == {new.state}


def test_at_most_max_pending_flows_oldest_dropped_first(user: Any) -> None:
    request = make_request(user)
    started = [start(request) for _ in range(5)]
    for index, flow in enumerate(started):
        age(request, flow.state, 100 - index)  # started[0] is the oldest
    newest = start(request)
    pending = request.session[flows.SESSION_KEY]
    assert len(pending) == 5
    assert started[0].state not in pending
    assert {flow.state for flow in started[1:]} | {newest.state} == set(pending)


def test_two_tabs_both_complete(user: Any) -> None:
    request = make_request(user)
    tab1, tab2 = start(request, "/one/"), start(request, "/two/")
    assert flows.pop_flow(request, tab2.state).next_url == "/two/"
    assert flows.pop_flow(request, tab1.state).next_url == "/one/"


def test_a_malformed_entry_is_rejected_and_removed(user: Any) -> None:
    request = make_request(user)
    request.session[flows.SESSION_KEY] = {"abc": {"user_id": str(user.pk)}, "def": "junk"}
    with pytest.raises(CallbackError, match="cannot be read"):
        flows.pop_flow(request, "abc")
    with pytest.raises(CallbackError, match="unknown"):
        flows.pop_flow(request, "def")
    assert request.session[flows.SESSION_KEY] == {}


def test_a_malformed_session_value_is_ignored(user: Any) -> None:
    request = make_request(user)
    request.session[flows.SESSION_KEY] = ["not", "a", "dict"]
    flow = start(request)
    assert list(request.session[flows.SESSION_KEY]) == [flow.state]


# --- spending a state is atomic (issue 9) -------------------------------------------------------


def test_two_requests_of_one_session_cannot_both_spend_a_state(user: Any) -> None:
    """A double click on the callback: both requests loaded the session before either saved;
    exactly one gets the flow."""
    request = make_request(user)
    flow = start(request)
    request.session.save()
    first = make_request(user, request.session.session_key)
    second = make_request(user, request.session.session_key)
    assert flow.state in first.session[flows.SESSION_KEY]  # both loaded now
    assert flow.state in second.session[flows.SESSION_KEY]

    assert flows.pop_flow(first, flow.state) == flow
    with pytest.raises(CallbackError, match="unknown or was already used"):
        flows.pop_flow(second, flow.state)


def test_a_stale_session_saved_later_does_not_bring_a_spent_state_back(user: Any) -> None:
    """Tab B loaded the session before the callback in tab A spent the state, and saves it
    after (here: tab B starts another login). The entry is back in the session; the state
    stays spent."""
    request = make_request(user)
    flow = start(request)
    request.session.save()
    session_key = request.session.session_key
    tab_b = make_request(user, session_key)
    assert flow.state in tab_b.session[flows.SESSION_KEY]  # loaded before the callback

    flows.pop_flow(make_request(user, session_key), flow.state)  # tab A's callback
    start(tab_b)
    tab_b.session.save()  # what SessionMiddleware does at the end of tab B's request
    assert flow.state in stored_flows(session_key)  # the race is real: the entry is back

    with pytest.raises(CallbackError, match="unknown or was already used"):
        flows.pop_flow(make_request(user, session_key), flow.state)


def test_a_rolled_back_transaction_does_not_unspend_a_state(user: Any) -> None:
    """With ATOMIC_REQUESTS, a failing callback rolls back the database session's save; the
    state stays spent (the cache is outside any transaction)."""
    from django.db import transaction

    request = make_request(user)
    flow = start(request)
    request.session.save()
    session_key = request.session.session_key

    class Failure(Exception):
        pass

    with pytest.raises(Failure), transaction.atomic():
        flows.pop_flow(make_request(user, session_key), flow.state)
        raise Failure
    assert flow.state in stored_flows(session_key)  # the session's removal was rolled back

    with pytest.raises(CallbackError, match="unknown or was already used"):
        flows.pop_flow(make_request(user, session_key), flow.state)


def test_spend_state_is_atomic_across_threads(user: Any, run_in_threads: Any) -> None:
    state = flows.generate_state()
    results = run_in_threads(lambda index: flows.spend_state(state), 8)
    assert sorted(results) == [False] * 7 + [True]
    assert flows.spend_state(flows.generate_state()) is True  # another state is not spent


def test_the_spent_mark_is_keyed_by_a_hash_of_the_state(user: Any) -> None:
    import hashlib

    from django.core.cache import cache

    request = make_request(user)
    flow = start(request)
    flows.pop_flow(request, flow.state)
    digest = hashlib.sha256(flow.state.encode()).hexdigest()
    assert cache.get(flows.SPENT_STATE_KEY_PREFIX + digest) is not None
    assert cache.get(flows.SPENT_STATE_KEY_PREFIX + flow.state) is None


def test_a_flows_repr_shows_no_secret() -> None:
    from django_pagero_oauth.flows import Flow

    flow = Flow(
        state="the-state-value",
        user_id="7",
        redirect_uri="https://site.example/cb",
        next_url="/x/",
        created=1.0,
        code_verifier="the-pkce-verifier",
        nonce="the-nonce-value",
    )
    text = repr(flow) + str(flow)
    assert "Flow(" in text and "/x/" in text
    for secret in ("the-state-value", "the-pkce-verifier", "the-nonce-value"):
        assert secret not in text


# --- the rules pinned by mutation testing (./scripts/mutation --area flows) ---------------------


@pytest.fixture
def clock(monkeypatch: Any) -> Any:
    """``clock.now``: the time every ``time.time()`` sees (flows and LocMemCache expiry alike)."""

    class Clock:
        now = float(int(time.time()))  # whole seconds: additions below stay exact

    monkeypatch.setattr(time, "time", lambda: Clock.now)
    return Clock


def test_a_flow_exactly_state_max_age_old_is_accepted_a_moment_later_refused(
    user: Any, clock: Any
) -> None:
    """The window is closed on its end: an age of exactly ``STATE_MAX_AGE`` still completes,
    and starting another flow at that moment keeps the pending one."""
    max_age = flows.app_settings.STATE_MAX_AGE
    request = make_request(user)
    on_time, late = start(request), start(request)
    clock.now += max_age
    start(request)  # drops expired entries: neither of the two is expired yet
    assert {on_time.state, late.state} <= set(request.session[flows.SESSION_KEY])
    assert flows.pop_flow(request, on_time.state) == on_time
    clock.now += 0.001
    with pytest.raises(CallbackError, match="too long") as info:
        flows.pop_flow(request, late.state)
    assert info.value.error == "invalid_state"


@pytest.mark.parametrize("max_age", [5, 600])
def test_a_spent_state_stays_spent_as_long_as_its_flow_could_complete(
    user: Any, clock: Any, settings: Any, max_age: int
) -> None:
    """A stale copy of the session brings the entry back at the last moment the flow is still
    young enough: the spent mark must outlive it, whatever ``STATE_MAX_AGE`` is."""
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "STATE_MAX_AGE": max_age}
    request = make_request(user)
    flow = start(request)
    request.session.save()
    session_key = request.session.session_key
    stale_tab = make_request(user, session_key)
    assert flow.state in stale_tab.session[flows.SESSION_KEY]

    assert flows.pop_flow(make_request(user, session_key), flow.state) == flow
    clock.now += max_age
    stale_tab.session.modified = True
    stale_tab.session.save()  # the entry is back in the stored session
    with pytest.raises(CallbackError, match="already used") as info:
        flows.pop_flow(make_request(user, session_key), flow.state)
    assert info.value.error == "invalid_state"


@pytest.mark.parametrize(("max_age", "lasts"), [(600, 600 + 60), (0, 1 + 60), (-5, 1 + 60)])
def test_the_spent_mark_lasts_state_max_age_plus_its_margin(
    db: None, clock: Any, settings: Any, max_age: int, lasts: int
) -> None:
    """``STATE_MAX_AGE`` (read as at least its minimum, 1 s: ``E018`` reports a smaller value)
    plus ``SPENT_STATE_MARGIN``, then forgotten."""
    assert flows.SPENT_STATE_MARGIN == 60
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "STATE_MAX_AGE": max_age}
    state = flows.generate_state()
    assert flows.spend_state(state) is True
    clock.now += lasts - 0.5
    assert flows.spend_state(state) is False
    clock.now += 0.5
    assert flows.spend_state(state) is True  # the cache forgot it: the flow is long expired


def test_any_str_can_be_spent_once(db: None) -> None:
    """Even one that is not UTF-8 encodable (a lone surrogate)."""
    for state in ("\udcff", "\u00e9t\u00e9", "a" * 10_000):
        assert flows.spend_state(state) is True
        assert flows.spend_state(state) is False


def test_every_refusal_carries_the_invalid_state_code(user: Any, other_user: Any) -> None:
    """A site sorts callback failures by ``.error``; each of the five cases says invalid_state."""
    codes = {}
    request = make_request(user)

    with pytest.raises(CallbackError) as info:
        flows.pop_flow(request, "")
    codes["no state"] = info.value.error

    with pytest.raises(CallbackError, match="unknown") as info:
        flows.pop_flow(request, "no-such-state")
    codes["unknown"] = info.value.error

    unreadable = flows.generate_state()
    request.session[flows.SESSION_KEY] = {unreadable: {"user_id": str(user.pk)}}
    with pytest.raises(CallbackError, match="cannot be read") as info:
        flows.pop_flow(request, unreadable)
    codes["unreadable"] = info.value.error

    flow = start(request)
    request.user = other_user
    with pytest.raises(CallbackError, match="another user") as info:
        flows.pop_flow(request, flow.state)
    codes["another user"] = info.value.error

    request.user = user
    flow = start(request)
    age(request, flow.state, flows.app_settings.STATE_MAX_AGE + 1)
    with pytest.raises(CallbackError, match="too long") as info:
        flows.pop_flow(request, flow.state)
    codes["expired"] = info.value.error

    assert codes == dict.fromkeys(codes, "invalid_state")
    assert len(codes) == 5
