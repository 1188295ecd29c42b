"""What this proves broken: a ``BaseException`` that is not an ``Exception`` arriving while the
refresh answer is being stored (``KeyboardInterrupt`` or a ``SystemExit`` raised by a signal
handler, e.g. a worker's graceful-shutdown or time-limit handler; ``gevent.Timeout``, a
``BaseException``, around a job) rolls the store back: ``_store_refresh_answer`` falls back only
for ``Exception``, ``durably`` retries only database errors and ``store.store_answer`` does not end the
lease. Pagero has spent the old refresh token, the row keeps it: the connection is dead, and the
lease stays behind (every expired-token caller waits for it to run out, then spends the dead
token).

The ``post_save`` receiver raising ``SystemExit`` is the deterministic stand-in for the signal
arriving while the row is saved.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.db.models.signals import post_save

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import get_valid_token

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_interrupt_during_the_store_never_loses_the_rotated_token(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    mock = pagero_mock.mock
    token = pagero_token_factory(user, expired=True)
    fired: list[str] = []

    def shutdown_signal_arrives(sender: Any, instance: Any, **kwargs: Any) -> None:
        if not fired:
            fired.append("SystemExit")
            raise SystemExit(0)  # what a SIGTERM handler raises, here mid-save

    post_save.connect(shutdown_signal_arrives, sender=PageroToken, dispatch_uid="attack-exit")
    try:
        with pytest.raises(SystemExit):
            get_valid_token(user)
    finally:
        post_save.disconnect(sender=PageroToken, dispatch_uid="attack-exit")

    assert fired == ["SystemExit"]
    assert mock.counts["refresh_token"] == 1
    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.refresh_lease_until is None, "the lease was left behind"
    assert stored.refresh_token == mock.issued_refresh_tokens[-1], "the rotated token was lost"
    assert mock.is_refresh_token_valid(stored.refresh_token)
