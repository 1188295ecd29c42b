"""What this proves broken: the callback revokes (``revoke_unstored``) the refresh token of a
code exchange whenever storing it raised, but an error can come AFTER the store committed: the
COMMIT's acknowledgement lost on a broken connection, or a project's ``post_save`` receiver whose
``on_commit`` hook raises (Django runs the hooks as the outermost ``atomic()`` exits, inside
``store_token``). The token is stored, and then revoked at Pagero: the connection just made is
dead (every later refresh gets ``invalid_grant``), and the user saw a server error.

The ``on_commit`` hook is the deterministic stand-in for the lost acknowledgement.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError, transaction
from django.db.models.signals import post_save

from django_pagero_oauth.models import PageroToken

from .conftest import Browser

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_committed_login_token_is_never_revoked_as_unstored(
    browser: Browser, user: Any, pagero_mock: Any
) -> None:
    mock = pagero_mock.mock
    fired: list[str] = []

    def audit(sender: Any, instance: Any, **kwargs: Any) -> None:
        def write_audit_row() -> None:
            if not fired:
                fired.append("audit")
                raise OperationalError("server closed the connection unexpectedly")

        transaction.on_commit(write_audit_row)

    post_save.connect(audit, sender=PageroToken, dispatch_uid="attack-login-audit")
    browser.client.raise_request_exception = False
    try:
        browser.login()
    finally:
        post_save.disconnect(sender=PageroToken, dispatch_uid="attack-login-audit")

    assert fired == ["audit"], "the fault did not fire"
    stored = PageroToken.objects.get(user=user)  # the login's token was committed
    assert mock.counts["revoke"] == 0, "the stored refresh token was revoked as 'not stored'"
    assert mock.is_refresh_token_valid(stored.refresh_token)
