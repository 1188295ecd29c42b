"""What this proves: "Sign in with Pagero" is a second way to log in only on a site that asks
for it, and a session alone cannot link a Pagero identity for good.

- Off by default (``SIGN_IN_ENABLED``): ``pagero_oauth:sign_in`` is a 404, a sign-in flow
  started before it was switched off logs nobody in, and a connect with ``openid`` links
  nothing. A site that sets ``ISSUER`` only for RFC 9207 gets no passwordless login path that
  skips its own login rules (second factor, SSO, lockouts).
- On: a logged-in user's flow that finds a NEW identity links it only after a POST (with a CSRF
  token) on a page that names both accounts; until then nothing is linked and, for a sign-in
  flow, nothing stored (the user's token is not replaced by the other account's).
- A password change unlinks the user's identities, as it ends their sessions: even a link
  someone confirmed with a stolen session does not outlive the usual remedy. A first password
  of a user who had none (created by sign-in) keeps the identity.

Found by a security review (medium): linking needed a GET and a session cookie, and sign-in was
on for every site that set ``ISSUER``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client

from django_pagero_oauth.models import PageroIdentity, PageroToken
from django_pagero_oauth.signals import identity_linked
from django_pagero_oauth.testing.mock import MockPageroServer
from tests.test_signin import CALLBACK, LINK, LOGIN, at_pagero, single, start

SIGN_IN = "/pagero/sign-in/"


def _enable(settings: Any, **more: Any) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_ENABLED": True, **more}


def _signs_in_as(publicid: str) -> str | None:
    """Whoever controls Pagero account ``publicid`` uses "Sign in with Pagero", anonymously."""
    visitor = Client()
    visitor.get(CALLBACK, single(at_pagero(start(visitor, SIGN_IN), publicid)))
    return visitor.session.get(SESSION_KEY)


# --- off by default -------------------------------------------------------------------------


def test_a_connect_only_site_that_sets_issuer_has_no_sign_in(
    client: Client, user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    """The production guide's settings (ISSUER set, SCOPE without openid) for a site that
    never asked for "Sign in with Pagero": its sign-in URL does not start a login."""
    assert settings.PAGERO_OAUTH["ISSUER"]
    assert "openid" not in settings.PAGERO_OAUTH.get("SCOPE", "all").split()
    response = client.get(SIGN_IN)
    assert response.status_code == 404
    client.force_login(user)
    assert client.get(SIGN_IN).status_code == 404
    assert pagero_mock.mock.counts["authorize"] == 0


def test_a_sign_in_flow_started_before_sign_in_was_switched_off_logs_nobody_in(
    client: Client, user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    PageroIdentity.objects.create(user=user, issuer=pagero_mock.url, subject="acme-ab")
    _enable(settings)
    back = at_pagero(start(client, SIGN_IN))
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_ENABLED": False}
    response = client.get(CALLBACK, single(back))
    assert response.status_code == 403
    assert client.session.get(SESSION_KEY) is None
    assert not PageroToken.objects.exists()


def test_a_connect_with_openid_links_nothing_while_sign_in_is_off(
    user_client: Client, user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SCOPE": "all openid"}
    response = user_client.get(CALLBACK, single(at_pagero(start(user_client, LOGIN))))
    assert response.status_code == 302 and response["Location"] != LINK
    assert PageroToken.objects.get().user == user  # connected, id_token verified
    assert not PageroIdentity.objects.exists()


# --- linking needs the user's confirmation ----------------------------------------------------


def test_a_stolen_session_cannot_become_a_login_that_survives_a_password_change(
    user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    _enable(settings, SIGN_IN_CREATE_USERS=False)
    alices_token = Client()
    alices_token.force_login(user)
    alices_token.get(CALLBACK, single(at_pagero(start(alices_token, LOGIN), "acme-ab")))
    # Mallory has Alice's session cookie for a moment (no password).
    stolen = Client()
    stolen.force_login(user)
    # One GET and Mallory's own Pagero login: she is asked to confirm, nothing more happens.
    response = stolen.get(CALLBACK, single(at_pagero(start(stolen, SIGN_IN), "mallory-corp")))
    assert response.status_code == 302 and response["Location"] == LINK
    # Alice notices and changes her password: every session of hers ends.
    user.set_password("a-new-password")
    user.save()
    # Mallory, anonymous, uses "Sign in with Pagero" with her own Pagero account.
    assert _signs_in_as("mallory-corp") != str(user.pk), (
        "Mallory's Pagero account signs in as Alice after Alice changed her password"
    )
    assert not PageroIdentity.objects.filter(user=user, subject="mallory-corp").exists()
    token = PageroToken.objects.filter(user=user).first()
    assert token is not None and token.publicid == "acme-ab", "Alice's connection was replaced"


def test_even_a_confirmed_link_ends_with_a_password_change(
    user: Any, pagero_mock: MockPageroServer, settings: Any, receive: Any
) -> None:
    """Mallory, with Alice's session, also clicks "Link": the link works until Alice changes
    her password (Django ends her sessions then; the link goes with them)."""
    _enable(settings)
    stolen = Client()
    stolen.force_login(user)
    stolen.get(CALLBACK, single(at_pagero(start(stolen, SIGN_IN), "mallory-corp")))
    with receive(identity_linked) as linked:
        assert stolen.post(LINK, {"confirm": "1"}).status_code == 302
    assert [call["user"] for call in linked] == [user]
    assert _signs_in_as("mallory-corp") == str(user.pk)
    user.set_password("a-new-password")
    user.save()
    assert not PageroIdentity.objects.filter(user=user).exists()
    assert _signs_in_as("mallory-corp") != str(user.pk)


def test_a_first_password_keeps_the_identity_of_a_user_created_by_sign_in(
    pagero_mock: MockPageroServer, settings: Any, db: None
) -> None:
    _enable(settings, SIGN_IN_CREATE_USERS=True)
    created = _signs_in_as("newco")
    user = get_user_model().objects.get(pk=created)
    assert not user.has_usable_password()
    user.set_password("now-with-a-password")
    user.save()
    assert PageroIdentity.objects.filter(user=user).exists()
    assert _signs_in_as("newco") == created


def test_an_ordinary_save_keeps_the_identity(
    user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    _enable(settings)
    PageroIdentity.objects.create(user=user, issuer=pagero_mock.url, subject="acme-ab")
    user.first_name = "Alice"
    user.save()
    Client().login(username="alice", password="pw")  # last_login is written
    assert PageroIdentity.objects.filter(user=user).exists()


def test_linking_needs_a_post_with_a_csrf_token(
    user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    _enable(settings)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(user)
    browser.get(CALLBACK, single(at_pagero(start(browser, SIGN_IN), "acme-ab")))
    page = browser.get(LINK)
    assert page.status_code == 200 and 'name="csrfmiddlewaretoken"' in page.content.decode()
    assert browser.post(LINK, {"confirm": "1"}).status_code == 403  # no CSRF token
    assert not PageroIdentity.objects.exists()
    token = page.context["csrf_token"]
    assert (
        browser.post(LINK, {"confirm": "1", "csrfmiddlewaretoken": str(token)}).status_code == 302
    )
    assert PageroIdentity.objects.get().user == user


def test_declining_links_nothing_and_the_pending_link_is_gone(
    user_client: Client, user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    _enable(settings)
    user_client.get(CALLBACK, single(at_pagero(start(user_client, SIGN_IN), "acme-ab")))
    assert user_client.post(LINK, {"cancel": "1"}).status_code == 302
    assert user_client.post(LINK, {"confirm": "1"}).status_code == 302  # nothing left to confirm
    assert not PageroIdentity.objects.exists() and not PageroToken.objects.exists()


def test_a_pending_link_belongs_to_the_user_who_started_it(
    user: Any, other_user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    """A pending link carried into another user's session (a planted or copied session
    entry) is not theirs to confirm."""
    _enable(settings)
    alice = Client()
    alice.force_login(user)
    alice.get(CALLBACK, single(at_pagero(start(alice, SIGN_IN), "acme-ab")))
    entry = alice.session["_pagero_oauth_pending_link"]
    mallory = Client()
    mallory.force_login(other_user)
    session = mallory.session
    session["_pagero_oauth_pending_link"] = entry
    session.save()
    mallory.post(LINK, {"confirm": "1"})
    assert not PageroIdentity.objects.exists()


@pytest.mark.parametrize("path", [SIGN_IN, LOGIN])
def test_an_identity_already_linked_to_the_user_needs_no_confirmation(
    user_client: Client, user: Any, pagero_mock: MockPageroServer, settings: Any, path: str
) -> None:
    _enable(settings, SCOPE="all openid")
    PageroIdentity.objects.create(user=user, issuer=pagero_mock.url, subject="acme-ab")
    response = user_client.get(CALLBACK, single(at_pagero(start(user_client, path), "acme-ab")))
    assert response.status_code == 302 and response["Location"] == "/"
    assert PageroToken.objects.get().user == user


def test_an_identity_taken_while_the_link_waited_is_refused_on_confirmation(
    user_client: Client, user: Any, other_user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    _enable(settings)
    user_client.get(CALLBACK, single(at_pagero(start(user_client, SIGN_IN), "acme-ab")))
    PageroIdentity.objects.create(user=other_user, issuer=pagero_mock.url, subject="acme-ab")
    response = user_client.post(LINK, {"confirm": "1"})
    assert response.status_code == 403
    assert "already linked to another user" in response.content.decode()
    assert list(PageroIdentity.objects.values_list("user", flat=True)) == [other_user.pk]
