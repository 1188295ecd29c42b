"""What this proves broken: a refresh that fails (Pagero answers 503) while Django's default
cache is down leaves its lease behind. ``tokens._refresh_with_lease`` starts the back-off (a
cache ``set``) before ``lease.release``, unguarded: the cache error escapes (a server error, not
``PageroUnavailable``) and the lease stays on the row, no longer kept, until it runs out
(``3 * TIMEOUT + 10`` s): every expired-token caller of the user waits that long and then gets
``TokenLockTimeout``. The back-off is an optimisation; it must never keep the lease.

Real sockets: the default cache is Django's ``RedisCache`` on a redis-server of the test's own,
stopped while the strict mock holds the refresh request (then answers 503).
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault

from .test_a_cache_outage_during_a_refresh_never_loses_the_rotated_token import (
    DEADLINE,
    Caller,
    PrivateRedis,
    redis_cache,
)

pytestmark = pytest.mark.django_db(transaction=True)

__all__ = ["redis_cache"]


def test_a_failed_refresh_ends_its_lease_even_when_the_cache_is_down(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, redis_cache: PrivateRedis
) -> None:
    token = pagero_token_factory(user, expired=True)
    mock = pagero_mock.mock
    mock.add_fault(Fault(endpoint="token", grant_type="refresh_token", status=503, hold=True))

    refresher = Caller(user)
    refresher.start()
    assert mock.wait_held(timeout=DEADLINE), "no refresh reached Pagero"
    redis_cache.stop()  # the cache goes away while Pagero answers
    mock.release_held()
    result = refresher.outcome()

    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.refresh_token == token.refresh_token
    assert stored.refresh_lease_until is None, (
        f"the failed refresh left its lease on the row ({result!r})"
    )
