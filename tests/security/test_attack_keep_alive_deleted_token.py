"""Attack: a user who disconnects while ``pagero_refresh_tokens`` (or the Celery keep-alive
chunk) runs is reported as "needs re-authorization (invalid_grant)".

The command loads a batch of tokens, then refreshes them one by one. If a token's row is
deleted in between (the user pressed "Disconnect", an admin revoked it, the user was deleted),
``tokens.refresh`` finds no row under the lock and ``_refreshable`` raises
``PageroAuthorizationRequired("The user has no Pagero connection any more.")``.
``refresh_token_by_pk`` maps every ``PageroAuthorizationRequired`` to
``Outcome.REAUTHORIZATION`` unless the user is inactive, so the run prints
"the connection needs re-authorization (invalid_grant)" (Pagero never said invalid_grant;
nothing was even sent), counts a failure and exits 1, while the command has an outcome made
for exactly this case (``GONE``: "deleted ... during the run"). Any user can trigger it at will
(disconnect during the nightly run) and make the keep-alive job page the operator with a false
"tokens are dying" alarm; the Celery chunk counts it the same way.

Severity: low (wrong words and a false failure exit code; no token is lost).

Fix: in ``management/commands/pagero_refresh_tokens.refresh_token_by_pk``, return
``Outcome.GONE`` when the row no longer exists (e.g. raise a distinct exception from
``tokens._refreshable`` for ``current is None``, or re-check ``PageroToken.objects.filter(pk=pk)
.exists()`` before classifying a ``PageroAuthorizationRequired``).
"""

from __future__ import annotations

from typing import Any

from django_pagero_oauth.management.commands.pagero_refresh_tokens import (
    Outcome,
    refresh_token_by_pk,
)
from django_pagero_oauth.models import PageroToken


def test_a_token_deleted_during_the_run_is_gone_not_a_reauthorization_failure(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)
    loaded = PageroToken.objects.select_related("user").get(pk=token.pk)  # the run's batch
    PageroToken.objects.filter(pk=token.pk).delete()  # the user disconnects meanwhile

    outcome, _token, _exc = refresh_token_by_pk(token.pk, loaded)

    assert pagero_mock.mock.counts["refresh_token"] == 0
    assert outcome is Outcome.GONE, f"a disconnected user is reported as {outcome}"
