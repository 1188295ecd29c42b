"""What this proves broken: once the refresh answer is committed, a database error that comes
*after* the commit (the commit's acknowledgement lost on a broken connection, or a project's
``on_commit`` hook of its ``post_save`` receiver raising a ``DatabaseError``) makes
``durable.durably`` run the store again on a new connection. That second run finds the row no
longer holding the spent refresh token (it holds the NEW one, committed by the first run), takes
it for "replaced meanwhile" and revokes the new refresh token at Pagero: the one now stored.
The user's connection is dead although nothing was lost.

The ``on_commit`` hook here is the deterministic stand-in for the lost COMMIT acknowledgement
(``psycopg.OperationalError`` raised by ``COMMIT`` after the server committed): in both cases
``durably`` sees a ``DatabaseError`` from a transaction whose writes are committed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.db import OperationalError, transaction
from django.db.models.signals import post_save

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import get_valid_token

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def audit_after_commit_fails_once() -> Iterator[list[str]]:
    """A project's receiver: after each committed save, write an audit row (here: fails once
    with the database error a dropped connection gives)."""
    failures: list[str] = []

    def audit(sender: Any, instance: Any, **kwargs: Any) -> None:
        def write_audit_row() -> None:
            if not failures:
                failures.append("audit")
                raise OperationalError("server closed the connection unexpectedly")

        transaction.on_commit(write_audit_row)

    post_save.connect(audit, sender=PageroToken, dispatch_uid="attack-store-audit")
    try:
        yield failures
    finally:
        post_save.disconnect(sender=PageroToken, dispatch_uid="attack-store-audit")


def test_a_stored_refresh_answer_is_never_revoked_by_its_own_retry(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    mock = pagero_mock.mock
    token = pagero_token_factory(user, expired=True)

    with audit_after_commit_fails_once() as failures:
        try:
            result = get_valid_token(user)
        except Exception as exc:  # asserted below
            result = exc

    assert failures == ["audit"], "the fault did not fire"
    assert mock.counts["refresh_token"] == 1
    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.refresh_token == mock.issued_refresh_tokens[-1]
    # The refresh token the row holds must still be alive at Pagero: the site revoked nothing
    # it keeps.
    assert mock.counts["revoke"] == 0, "the stored refresh token was revoked by the retry"
    assert mock.is_refresh_token_valid(stored.refresh_token)
    assert not isinstance(result, BaseException), repr(result)
