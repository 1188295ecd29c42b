"""Login CSRF / session fixation (item 19, RFC 6749 10.12, RFC 6819 4.4.1.8).

The attack: Mallory starts a flow in her own session, logs in at Pagero with *her* company
account, and stops before her browser follows the redirect back. She sends the callback URL
(her code and state) to Alice. If Alice's site accepted it, Alice's Django account would be
connected to Mallory's Pagero account: Alice's invoices would go to Mallory.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pagero_oauth.flows import SESSION_KEY
from django_pagero_oauth.models import PageroToken

from .conftest import Browser, query_of, with_query


@pytest.fixture
def mallory(make_browser: Any, other_user: Any) -> Browser:
    browser: Browser = make_browser(other_user)
    return browser


@pytest.fixture
def attack_url(mallory: Browser) -> str:
    """Mallory's callback URL: a valid code for Mallory's Pagero account, Mallory's state."""
    return mallory.pagero_answer(mallory.start_login(), publicid="mallory-corp")


def _assert_nothing_for_alice(user: Any, pagero_mock: Any) -> None:
    assert pagero_mock.mock.counts["authorization_code"] == 0
    assert not PageroToken.objects.filter(user=user).exists()
    assert not PageroToken.objects.filter(publicid="mallory-corp").exists()


def test_attackers_callback_url_is_rejected_in_the_victims_session(
    browser: Browser, attack_url: str, user: Any, pagero_mock: Any
) -> None:
    response = browser.callback(attack_url)
    assert response.status_code == 400
    _assert_nothing_for_alice(user, pagero_mock)


def test_attack_does_not_succeed_when_the_victim_has_a_flow_of_her_own(
    browser: Browser, attack_url: str, user: Any, pagero_mock: Any
) -> None:
    """Alice is in the middle of her own login (a pending state). Mallory's URL, with
    Mallory's state or with no state at all, is still refused, and Alice's flow survives."""
    own = browser.pagero_answer(browser.start_login(), publicid="alice-ab")
    for url in (attack_url, with_query(attack_url, state=None), with_query(attack_url, state="")):
        assert browser.callback(url).status_code == 400
    _assert_nothing_for_alice(user, pagero_mock)

    assert browser.callback(own).status_code == 302
    assert PageroToken.objects.get(user=user).publicid == "alice-ab"


def test_with_pkce_even_a_leaked_victim_state_does_not_help(
    browser: Browser, mallory: Browser, user: Any, pagero_mock: Any, settings: Any
) -> None:
    """Defence in depth: should Mallory learn Alice's pending state, her code is still bound
    to her own PKCE verifier, so Pagero refuses it in Alice's exchange; nothing is stored."""
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "PKCE": True}
    attack = mallory.pagero_answer(mallory.start_login(), publicid="mallory-corp")
    alice_state = query_of(browser.start_login())["state"]

    response = browser.callback(with_query(attack, state=alice_state))

    assert response.status_code == 400
    assert pagero_mock.mock.counts["authorization_code"] == 1  # refused at Pagero
    assert not PageroToken.objects.filter(user=user).exists()


def test_attackers_flow_cannot_be_planted_in_the_victims_session(
    browser: Browser, mallory: Browser, attack_url: str, user: Any, pagero_mock: Any
) -> None:
    """Even a flow entry copied into Alice's session (a session-fixation foothold) names
    Mallory as the user who started it."""
    planted = mallory.pending_flows()
    session = browser.client.session
    session[SESSION_KEY] = planted
    session.save()
    assert browser.callback(attack_url).status_code == 400
    _assert_nothing_for_alice(user, pagero_mock)


def test_login_view_needs_a_logged_in_user(client: Any, pagero_mock: Any, db: None) -> None:
    """An anonymous browser cannot start a flow (that later gets attached to whoever logs in)."""
    response = client.get("/pagero/login/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert SESSION_KEY not in client.session


def test_logging_in_to_django_drops_pending_flows(
    client: Any, user: Any, other_user: Any, pagero_mock: Any
) -> None:
    """Mallory starts a flow, then Alice logs in on the same browser (a shared computer):
    Django's login cycles the session, and Mallory's pending flow is gone."""
    client.force_login(other_user)
    mallory = Browser(client, pagero_mock)
    url = mallory.pagero_answer(mallory.start_login(), publicid="mallory-corp")
    client.force_login(user)  # a different user: Django flushes the session
    assert mallory.pending_states() == []
    assert mallory.callback(url).status_code == 400
    _assert_nothing_for_alice(user, pagero_mock)
