"""Attack: a failing ``post_save`` receiver of ``PageroToken`` makes a refresh lose the
rotated refresh token, and with it the user's connection.

``tokens._store_refresh_answer`` promises that once Pagero rotated, "whatever else fails,
the new one must be stored": when the full save fails it writes only the refresh token, its
fingerprint and lifetime. But both the full save and the fallback go through
``Model.save()``, which runs the project's ``pre_save``/``post_save`` receivers (audit logs,
cache invalidation, search indexing, webhooks). If such a receiver raises (a bug, or the
service it calls is down), the fallback raises too, the exception leaves
``_refresh_locked``, the lock's transaction rolls back, and the new refresh token (the old
one already spent at Pagero) is gone: the next refresh gets ``invalid_grant`` and the user
must log in again. An outage of an unrelated service thus ends every connection that
refreshes during it (the keep-alive job refreshes them all).

Severity: medium (permanent loss of connections; needs a failing save hook, which the
package's own guarantee says it tolerates).

Fix: in ``tokens._store_refresh_answer``, write the fallback without model signals
(``PageroToken.objects.filter(pk=...).update(...)`` with the refresh token encrypted for the
row, e.g. ``Ciphertext(encrypt(value, bound_context(...)))``), and/or run the full save's
signal-sending part only after the rotated token is durably stored.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db.models.signals import post_save

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

    with failing_save_hook(), pytest.raises(Exception):  # noqa: B017,PT011 - judged below
        get_valid_token(user)

    mock = pagero_mock.mock
    assert mock.counts["refresh_token"] == 1 and not mock.is_refresh_token_valid(old)
    stored = PageroToken.objects.get(pk=token.pk)
    assert mock.is_refresh_token_valid(stored.refresh_token), (
        "Pagero rotated, the new refresh token was not stored and the stored one is spent"
    )
