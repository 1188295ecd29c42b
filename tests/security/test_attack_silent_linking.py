"""Attack: a stolen session becomes a permanent login, because linking a Pagero identity needs
nothing but a session cookie, and "Sign in with Pagero" is on for every site that sets ISSUER.

1. ``urls.py`` always routes ``pagero_oauth:sign_in``, and ``SignInView`` works as soon as
   ``ISSUER`` is set. The README's production guide tells every site to set ``ISSUER`` (RFC 9207
   mix-up defence for the *connect* flow), so a site that only ever wanted to connect accounts
   to Pagero also gets a passwordless login path that bypasses its own login policy (second
   factor, SSO-only, lockouts), with no setting to turn it off.
2. ``SignInCallbackMixin.get_token_user``: for a flow started by a logged-in user, the identity
   of whatever Pagero account completes the flow is linked to that user. Starting it is a plain
   GET (no CSRF token, no confirmation page, no recent re-authentication).

So whoever holds a victim's session for a moment (shared computer, stolen cookie, a
session-riding XSS on a sibling page) opens ``/pagero/sign-in/``, signs in at Pagero with *their
own* Pagero account, and from then on "Sign in with Pagero" logs them in as the victim, also
after the victim changed the password (which ends every session) -- and the victim's stored
Pagero token is replaced by the attacker's, so the site now acts on the attacker's Pagero
account for the victim.

Severity: medium (needs a transient session compromise; turns it into persistent account
takeover that the usual remedy, changing the password, does not end).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import SESSION_KEY
from django.test import Client

from django_pagero_oauth.models import PageroIdentity, PageroToken
from django_pagero_oauth.testing.mock import MockPageroServer
from tests.test_signin import CALLBACK, at_pagero, single, start

SIGN_IN = "/pagero/sign-in/"


def test_a_connect_only_site_that_sets_issuer_has_no_sign_in(
    client: Client, user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    """The production guide's settings (ISSUER set, SCOPE without openid) for a site that
    never asked for "Sign in with Pagero": its sign-in URL must not start a login."""
    assert settings.PAGERO_OAUTH["ISSUER"]
    assert "openid" not in settings.PAGERO_OAUTH.get("SCOPE", "all").split()
    response = client.get(SIGN_IN)
    assert not (
        response.status_code == 302 and response["Location"].startswith(pagero_mock.url)
    ), "an anonymous visitor was sent to Pagero to sign in, on a site that never enabled it"


def test_a_stolen_session_cannot_become_a_login_that_survives_a_password_change(
    user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_CREATE_USERS": False}
    # Mallory has Alice's session cookie for a moment (no password).
    stolen = Client()
    stolen.force_login(user)
    # One GET and Mallory's own Pagero login: nothing asks for Alice's password.
    stolen.get(CALLBACK, single(at_pagero(start(stolen, SIGN_IN), "mallory-corp")))
    # Alice notices and changes her password: every session of hers ends.
    user.set_password("a-new-password")
    user.save()
    # Mallory, anonymous, uses "Sign in with Pagero" with her own Pagero account.
    mallory = Client()
    mallory.get(CALLBACK, single(at_pagero(start(mallory, SIGN_IN), "mallory-corp")))
    assert mallory.session.get(SESSION_KEY) != str(user.pk), (
        "Mallory's Pagero account signs in as Alice after Alice changed her password"
    )
    assert not PageroIdentity.objects.filter(user=user, subject="mallory-corp").exists()
    token = PageroToken.objects.filter(user=user).first()
    assert token is None or token.publicid != "mallory-corp"
