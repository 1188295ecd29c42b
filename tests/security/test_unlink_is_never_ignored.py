"""What this proves: asking to unlink a Pagero identity always unlinks it, whatever becomes of
the token, so "Sign in with Pagero" with that Pagero account no longer logs in as the user.

- without a stored token (disconnected earlier, pruned, deleted) the disconnect page offers
  "Unlink my Pagero account", and the POST unlinks (it used to answer "no connection to
  remove" and keep the identity);
- when Pagero cannot confirm the revocation, the identity is unlinked all the same, and the
  page's "Remove from this site only" form carries the request on.

Found by a security review (medium): the user believed the Pagero account (compromised, shared,
a colleague's who left) could no longer log in as them, and it still could.
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


@pytest.fixture(autouse=True)
def _sign_in_on(sign_in_enabled: None) -> None:
    pass


@pytest.fixture
def linked(user: Any, pagero_mock: MockPageroServer, db: None) -> PageroIdentity:
    return PageroIdentity.objects.create(user=user, issuer=pagero_mock.url, subject="acme-ab")


def _pagero_account_signs_in() -> Client:
    """Whoever controls the Pagero account "acme-ab" uses "Sign in with Pagero"."""
    intruder = Client()
    intruder.get(CALLBACK, single(at_pagero(start(intruder), "acme-ab")))
    assert intruder.session.get("_pagero_oauth_flows") == {}, "the sign-in did not complete"
    return intruder


def test_unlink_without_a_stored_token_unlinks(
    user_client: Client, user: Any, linked: PageroIdentity, pagero_mock: MockPageroServer
) -> None:
    """Alice has a linked identity but no token (e.g. she disconnected earlier). She asks to
    unlink it: the request must unlink it, and her Pagero account must not log in as her."""
    assert not PageroToken.objects.filter(user=user).exists()
    page = user_client.get(DISCONNECT_PATH)
    assert 'name="unlink_identity"' in page.content.decode(), "no way to unlink is offered"
    user_client.post(DISCONNECT_PATH, {"next": "/", "unlink_identity": "1"})
    assert _pagero_account_signs_in().session.get(SESSION_KEY) != str(user.pk), (
        "after asking to unlink, the Pagero account still signs in as the user"
    )
    assert not PageroIdentity.objects.filter(user=user).exists()


def test_unlink_survives_a_failed_revocation_and_the_local_removal(
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
