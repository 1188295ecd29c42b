"""Attack: a pending identity link is still confirmed after ``SIGN_IN_ENABLED`` was switched off.

A logged-in user's sign-in flow that finds a new Pagero identity leaves a pending link in the
session (``signin.remember_pending_link``); ``LinkIdentityView`` links it on a POST. The
callback refuses a sign-in flow started before sign-in was switched off
(``IdentityRefused("sign_in_disabled")``), but ``LinkIdentityView`` never looks at
``SIGN_IN_ENABLED``: a pending link made while sign-in was on is confirmed for up to
``STATE_MAX_AGE`` after the operator turned sign-in off, e.g. as incident response to a
stolen session linking its owner's Pagero account (SECURITY.rst item 37's scenario). The
identity is written and ``identity_linked`` sent while the site says it has no sign-in; the
moment sign-in is switched back on, that identity logs in as the user.

Severity: low (needs a pending link from before the switch, within ``STATE_MAX_AGE``).

Fix: in ``views.LinkIdentityView`` (``get`` and ``post``), drop the pending link and link
nothing (404, or the "nothing to confirm" answer) unless ``app_settings.SIGN_IN_ENABLED``.
"""

from __future__ import annotations

from typing import Any

from django.test import Client

from django_pagero_oauth.models import PageroIdentity
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
