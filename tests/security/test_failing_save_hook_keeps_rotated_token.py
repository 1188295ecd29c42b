"""What this proves: a project's ``post_save`` receiver of ``PageroToken`` that raises during a
refresh (an audit service down, a bug) can never lose the rotated refresh token.

The receiver still runs (``save()`` sends ``post_save`` as always), but when the save fails
``store._store_refresh_answer`` writes the answer again with ``QuerySet.update()``, which sends
no model signals, the values encrypted for the row as ``save()`` would; if even that fails,
only the new refresh token is written. The lock's transaction commits, the connection lives,
and the refreshed access token works. (Found by the second security review, finding 1.)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db.models.signals import post_save, pre_save

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import get_valid_token


class HookDown(Exception):
    pass


@contextmanager
def failing_save_hook() -> Iterator[None]:
    def audit(sender: Any, instance: Any, **kwargs: Any) -> None:
        raise HookDown("the audit service is down")

    post_save.connect(audit, sender=PageroToken, dispatch_uid="attack-audit")
    try:
        yield
    finally:
        post_save.disconnect(sender=PageroToken, dispatch_uid="attack-audit")


def test_a_failing_save_hook_does_not_lose_the_rotated_refresh_token(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user, expired=True)
    old = token.refresh_token

    with failing_save_hook():
        fresh = get_valid_token(user)  # the receiver's failure is logged, not raised

    mock = pagero_mock.mock
    assert mock.counts["refresh_token"] == 1 and not mock.is_refresh_token_valid(old)
    stored = PageroToken.objects.get(pk=token.pk)
    assert mock.is_refresh_token_valid(stored.refresh_token), (
        "Pagero rotated, the new refresh token was not stored and the stored one is spent"
    )
    assert stored.access_token == fresh.access_token
    assert mock.is_access_token_valid(stored.access_token)
    assert not stored.is_access_token_expired()


def test_a_failing_pre_save_hook_does_not_lose_the_rotated_refresh_token(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user, expired=True)

    def audit(sender: Any, instance: Any, **kwargs: Any) -> None:
        raise HookDown("the audit service is down")

    pre_save.connect(audit, sender=PageroToken, dispatch_uid="attack-audit-pre")
    try:
        get_valid_token(user)
    finally:
        pre_save.disconnect(sender=PageroToken, dispatch_uid="attack-audit-pre")

    stored = PageroToken.objects.get(pk=token.pk)
    assert pagero_mock.mock.is_refresh_token_valid(stored.refresh_token)
