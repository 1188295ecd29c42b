"""What this proves: a pending identity link is never confirmed once ``SIGN_IN_ENABLED`` is
switched off, and is dropped.

``signin.pending_link`` (used by ``LinkIdentityView``'s GET and POST) answers "nothing to
confirm" and removes the pending link from the session while sign-in is off, so an operator
who switches sign-in off (e.g. after a stolen session started linking its owner's account,
SECURITY.rst item 37) stops every pending link at once, and switching sign-in back on later
does not revive it. (Found by the second security review, finding 6.)
"""

from __future__ import annotations

from typing import Any

from django.test import Client

from django_pagero_oauth.models import PageroIdentity
from django_pagero_oauth.signin import PENDING_LINK_SESSION_KEY
from django_pagero_oauth.testing.mock import MockPageroServer
from tests.test_signin import CALLBACK, LINK, at_pagero, single, start

SIGN_IN = "/pagero/sign-in/"


def test_a_link_pending_when_sign_in_is_switched_off_links_nothing(
    user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_ENABLED": True}
    browser = Client()
    browser.force_login(user)
    response = browser.get(CALLBACK, single(at_pagero(start(browser, SIGN_IN), "mallory-corp")))
    assert response.status_code == 302 and response["Location"] == LINK  # a link is pending

    # The operator switches "Sign in with Pagero" off.
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_ENABLED": False}
    browser.post(LINK, {"confirm": "1"})

    assert not PageroIdentity.objects.exists(), "linked while sign-in is switched off"


def test_a_pending_link_is_dropped_by_a_get_while_sign_in_is_off(
    user: Any, pagero_mock: MockPageroServer, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_ENABLED": True}
    browser = Client()
    browser.force_login(user)
    browser.get(CALLBACK, single(at_pagero(start(browser, SIGN_IN), "mallory-corp")))
    assert PENDING_LINK_SESSION_KEY in browser.session

    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_ENABLED": False}
    response = browser.get(LINK)
    assert response.status_code == 302  # "nothing to confirm", no confirmation page
    assert PENDING_LINK_SESSION_KEY not in browser.session

    # Switched back on: the dropped link stays dropped.
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_ENABLED": True}
    browser.post(LINK, {"confirm": "1"})
    assert not PageroIdentity.objects.exists()
