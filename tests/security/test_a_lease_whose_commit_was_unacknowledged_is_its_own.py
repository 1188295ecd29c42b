"""The transaction that takes the refresh lease commits, and then a database error arrives (the
COMMIT's acknowledgement lost on a broken connection; here, deterministically, an ``on_commit``
hook raising ``OperationalError``): ``durable.durably`` runs it again on a new connection. That run
finds the lease it took itself and must recognise it as its own, not wait for it to run out
(a lease's length in which nobody refreshes) and then fail."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db import OperationalError, connection, transaction

from django_pagero_oauth import lease
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import refresh_now

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def lease_commit_unacknowledged() -> Iterator[list[str]]:
    """After the first transaction that writes a lease commits, a database error."""
    fired: list[str] = []

    def fail() -> None:
        raise OperationalError("server closed the connection unexpectedly")

    def wrapper(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if (
            not fired
            and connection.in_atomic_block
            and sql.startswith("UPDATE")
            and "refresh_lease_owner" in sql
        ):
            fired.append("lease")
            transaction.on_commit(fail)
        return result

    with connection.execute_wrapper(wrapper):
        yield fired


def test_a_lease_whose_commit_was_unacknowledged_is_its_own(
    user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
    settings: Any,
    lease_commit_unacknowledged: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TIMEOUT": 0.5}
    token = pagero_token_factory(user)
    waited: list[Any] = []
    wait = lease.Waiter.wait

    def recorded_wait(self: lease.Waiter) -> None:
        waited.append(self.pk)
        wait(self)

    monkeypatch.setattr(lease.Waiter, "wait", recorded_wait)

    refreshed = refresh_now(token)

    assert lease_commit_unacknowledged == ["lease"], "the fault did not fire"
    assert waited == [], "the refresher waited for its own lease to run out"
    assert pagero_mock.mock.counts["refresh_token"] == 1
    stored = PageroToken.objects.get(pk=token.pk)
    assert (
        refreshed.refresh_token
        == stored.refresh_token
        == pagero_mock.mock.issued_refresh_tokens[-1]
    )
    assert stored.refresh_lease_until is None
