"""What this proves: a token deleted while a keep-alive run (``pagero_refresh_tokens``, the
Celery chunk) or the admin's "Refresh now" is on its way to it is reported as gone, not as a
connection that needs re-authorization.

``tokens.refresh`` finds no row under the lock and raises ``TokenGone`` (a public subclass of
``PageroAuthorizationRequired``); ``refresh_token_by_pk`` (shared by the command and the Celery
task) classifies it as ``"gone"`` (no failure, exit code 0) and the admin says the token
was deleted meanwhile. Nothing is sent to Pagero. A user who disconnects during the nightly
run can therefore no longer make the job page the operator with a false "invalid_grant"
alarm. (Found by the second security review, finding 5.)
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pagero_oauth.exceptions import TokenGone
from django_pagero_oauth.explain import Place, explain
from django_pagero_oauth.management.commands.pagero_refresh_tokens import refresh_token_by_pk
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import refresh_now


def test_a_token_deleted_during_the_run_is_gone_not_a_reauthorization_failure(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)
    loaded = PageroToken.objects.select_related("user").get(pk=token.pk)  # the run's batch
    PageroToken.objects.filter(pk=token.pk).delete()  # the user disconnects meanwhile

    outcome, _token, _exc = refresh_token_by_pk(token.pk, loaded)

    assert pagero_mock.mock.counts["refresh_token"] == 0
    assert outcome == "gone", f"a disconnected user is reported as {outcome}"


def test_refreshing_a_token_deleted_meanwhile_raises_token_gone_with_honest_words(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)
    loaded = PageroToken.objects.select_related("user").get(pk=token.pk)  # the admin's row
    PageroToken.objects.filter(pk=token.pk).delete()

    with pytest.raises(TokenGone) as info:
        refresh_now(loaded)

    assert pagero_mock.mock.counts["refresh_token"] == 0
    assert info.value.reason == "gone"
    words = explain(Place.ADMIN_REFRESH, info.value, user=user, fingerprint="fp")
    assert "deleted meanwhile" in words and "re-authorization" not in words
