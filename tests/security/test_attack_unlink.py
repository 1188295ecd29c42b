"""Attack: "unlink my Pagero account" is silently ignored, so a Pagero identity the user wanted
gone keeps logging in as them.

The disconnect view unlinks identities (``DisconnectView.unlink_identities``) only on the path
where a token existed and was revoked (or removed locally) in that very POST:

- a user whose identity is linked but who has no stored token (disconnected earlier without the
  checkbox, token pruned by ``pagero_prune_tokens``, or an identity linked by a sign-in whose
  token was later deleted) gets "There was no Pagero connection to remove" and the identity
  stays; the page does not even offer the checkbox (``{% if token %}``);
- a user who ticks "Also unlink" while Pagero cannot confirm the revocation gets the 503 page,
  whose "Remove from this site only" form does not carry ``unlink_identity``: the token goes,
  the identity silently stays.

Impact: the user believes "Sign in with Pagero" no longer logs in as them (typical reason: the
Pagero account was compromised, shared, or belongs to a colleague who left), but anyone who can
sign in at Pagero with that account still gets a full session as the user. Severity: medium
(persistent account access that the victim explicitly tried to revoke; needs control of the
Pagero account).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client

from django_pagero_oauth.models import PageroIdentity, PageroToken
from django_pagero_oauth.testing.mock import Fault, MockPageroServer
from tests.test_signin import CALLBACK, at_pagero, single, start

from .conftest import DISCONNECT_PATH


@pytest.fixture
def linked(user: Any, pagero_mock: MockPageroServer, db: None) -> PageroIdentity:
    return PageroIdentity.objects.create(user=user, issuer=pagero_mock.url, subject="acme-ab")


def _pagero_account_signs_in() -> Client:
    """Whoever controls the Pagero account "acme-ab" uses "Sign in with Pagero"."""
    intruder = Client()
    intruder.get(CALLBACK, single(at_pagero(start(intruder), "acme-ab")))
    return intruder


def test_unlink_without_a_stored_token_is_ignored(
    user_client: Client, user: Any, linked: PageroIdentity, pagero_mock: MockPageroServer
) -> None:
    """Alice has a linked identity but no token (e.g. she disconnected earlier). She asks to
    unlink it: the request must unlink it, and her Pagero account must not log in as her."""
    assert not PageroToken.objects.filter(user=user).exists()
    user_client.post(DISCONNECT_PATH, {"next": "/", "unlink_identity": "1"})
    assert _pagero_account_signs_in().session.get(SESSION_KEY) != str(user.pk), (
        "after asking to unlink, the Pagero account still signs in as the user"
    )
    assert not PageroIdentity.objects.filter(user=user).exists()
    page = user_client.get(DISCONNECT_PATH)
    assert 'name="unlink_identity"' in page.content.decode(), "no way to unlink is offered"


def test_unlink_is_lost_when_the_revocation_fails_and_the_token_is_removed_locally(
    user_client: Client,
    user: Any,
    linked: PageroIdentity,
    pagero_mock: MockPageroServer,
    pagero_token_factory: Any,
) -> None:
    """Alice ticks "Also unlink", Pagero's revocation endpoint is down, she uses the offered
    "Remove from this site only" button: the identity must be gone afterwards."""
    pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="revoke", status=503))
    failed = user_client.post(DISCONNECT_PATH, {"next": "/", "unlink_identity": "1"})
    assert failed.status_code == 503
    content = failed.content.decode()
    # Submit the page's own "Remove from this site only" form as the browser would.
    form = content[content.index('name="local_only"') :]
    form = form[: form.index("</form>")]
    data = {"next": "/", "local_only": "1"}
    if 'name="unlink_identity"' in form:
        data["unlink_identity"] = "1"
    assert user_client.post(DISCONNECT_PATH, data).status_code == 302
    assert not PageroToken.objects.filter(user=user).exists()
    assert not PageroIdentity.objects.filter(user=user).exists(), (
        "the user asked to unlink, the identity is still linked"
    )
