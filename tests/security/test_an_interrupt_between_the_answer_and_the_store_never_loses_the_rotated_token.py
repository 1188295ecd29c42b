"""What this proves broken: the interrupt-safe store (an interrupt "during the store" writes the
new refresh token before it goes on) starts too late. Between Pagero's answer and
``store.store_answer`` the refresh joins the lease keeper (``lease.kept``: up to a second while the
keeper waits for a lock) and ends the back-off (``lease.end_backoff``: a round trip to the cache,
Redis or Memcached in production); a ``SystemExit`` from a ``SIGTERM`` handler (a graceful
restart) or a ``KeyboardInterrupt`` arriving there reaches ``_refresh_with_lease``'s
``except BaseException``, which only releases the lease: the answer, the only copy of the
rotated refresh token, is dropped.

The cache's ``delete`` raising ``SystemExit`` is the deterministic stand-in for the signal
arriving while the back-off is ended (a settings-level cache backend; nothing is patched).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.cache.backends.locmem import LocMemCache

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import get_valid_token

pytestmark = pytest.mark.django_db(transaction=True)

FIRED: list[str] = []


class SignalDuringDeleteCache(LocMemCache):
    """A cache during whose first ``delete`` the shutdown signal arrives."""

    def delete(self, key: str, version: int | None = None) -> bool:
        if not FIRED:
            FIRED.append("SystemExit")
            raise SystemExit(0)  # what a SIGTERM handler raises
        return super().delete(key, version)


def test_an_interrupt_between_the_answer_and_the_store_never_loses_the_rotated_token(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, settings: Any
) -> None:
    mock = pagero_mock.mock
    token = pagero_token_factory(user, expired=True)
    FIRED.clear()
    settings.CACHES = {
        "default": {"BACKEND": f"{__name__}.SignalDuringDeleteCache", "LOCATION": "interrupt"}
    }

    with pytest.raises(SystemExit):
        get_valid_token(user)

    assert FIRED == ["SystemExit"]
    assert mock.counts["refresh_token"] == 1
    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.refresh_lease_until is None, "the lease was left behind"
    assert mock.is_refresh_token_valid(stored.refresh_token), "the rotated token was lost"
