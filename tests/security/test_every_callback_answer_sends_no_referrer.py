"""Every answer at the callback's URL (which holds the code and the state) sends
``Referrer-Policy: no-referrer`` (views.SECRET_URL_REFERRER_POLICY: "every answer of the
callback"), also the error pages Django renders there when something in the callback raises.

Since base.html lost its ``<meta name="referrer">``, the policy exists only as a header that
``CallbackView`` sets on the answers it builds itself. When the callback raises (a project's
``token_obtained`` or ``user_logged_in`` receiver, a ``PermissionDenied`` from an access-control
add-on, ``SIGN_IN``'s configuration error, a database error: the ``except Exception: raise``
branch), Django's handler403/handler500 page is served AT THE CALLBACK URL with the site's
policy (``same-origin`` by default, nothing with ``SECURE_REFERRER_POLICY = None``). That page
is the site's own template: its stylesheets, scripts, analytics beacon and links then receive
``Referer: https://site/pagero/callback/?code=...&state=...`` (same-origin: the site's own
access logs, proxies and analytics; with no policy at all, the browser default still sends the
full URL to same-origin subresources).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import PermissionDenied

from django_pagero_oauth.signals import token_obtained

from .conftest import Browser, query_of


class ProjectReceiverFailed(Exception):
    pass


RAISED = {"403 page": (PermissionDenied, 403), "500 page": (ProjectReceiverFailed, 500)}


@pytest.mark.parametrize("site_policy", ["same-origin", None], ids=["default policy", "none"])
@pytest.mark.parametrize("page", list(RAISED))
def test_an_error_page_at_the_callback_url_sends_no_referrer(
    browser: Browser, pagero_mock: Any, settings: Any, page: str, site_policy: str | None
) -> None:
    settings.SECURE_REFERRER_POLICY = site_policy
    exc_type, status = RAISED[page]

    def receiver(**kwargs: Any) -> None:  # a project's receiver that fails
        raise exc_type("project code failed")

    token_obtained.connect(receiver, dispatch_uid="test-referrer-receiver")
    try:
        browser.client.raise_request_exception = False
        callback_url = browser.pagero_answer(browser.start_login("/plain/"))
        response = browser.callback(callback_url)
    finally:
        token_obtained.disconnect(dispatch_uid="test-referrer-receiver")

    assert response.status_code == status
    assert query_of(callback_url)["code"]  # the URL of this page holds the code
    assert response.get("Referrer-Policy") == "no-referrer", (
        f"the {status} page at the callback URL (code and state in it) is served with "
        f"Referrer-Policy {response.get('Referrer-Policy')!r}"
    )


def test_the_error_page_rolls_back_the_requests_transaction(
    browser: Browser, pagero_mock: Any, monkeypatch: Any
) -> None:
    """The callback makes the error page itself: under ``ATOMIC_REQUESTS`` the request's
    writes (the token stored before the receiver failed) still roll back, as for the raise."""
    from django.db import connections

    from django_pagero_oauth.models import PageroToken

    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)

    def receiver(**kwargs: Any) -> None:
        assert PageroToken.objects.exists()  # stored, inside the request's transaction
        raise ProjectReceiverFailed("project code failed")

    token_obtained.connect(receiver, dispatch_uid="test-referrer-receiver")
    try:
        browser.client.raise_request_exception = False
        response = browser.callback(browser.pagero_answer(browser.start_login("/plain/")))
    finally:
        token_obtained.disconnect(dispatch_uid="test-referrer-receiver")
    assert response.status_code == 500
    assert response["Referrer-Policy"] == "no-referrer"
    assert not PageroToken.objects.exists()
