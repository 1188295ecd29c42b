"""What this proves broken (SQLite in WAL mode, the usual production setting for SQLite): a
refresh needed inside the caller's transaction (``get_valid_token`` in a view body under
``ATOMIC_REQUESTS``, in ``atomic()``) after the transaction has read something. In WAL mode a
reader holds no lock, so the refresh's own connection commits the new tokens; the caller's
transaction, whose read snapshot is now older than the database, can then write nothing:
SQLite answers ``SQLITE_BUSY_SNAPSHOT`` ("database is locked") at once, whatever the timeout.
The docs promise the caller either a refresh or a ``TokenLockTimeout`` before Pagero is called;
here the refresh succeeds and the caller's own transaction fails instead.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from django_pagero_oauth.exceptions import TokenLockTimeout
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import get_valid_token

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's WAL mode"),
]


@pytest.fixture
def wal() -> Any:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=WAL")
        assert cursor.fetchone()[0] == "wal"
    yield
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode=DELETE")


def test_a_refresh_inside_a_transaction_never_breaks_its_writes_on_sqlite_wal(
    wal: Any, user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user, expired=True)
    users = get_user_model().objects
    with transaction.atomic():
        users.get(pk=user.pk)  # the view reads (the session, the user, its data)
        # Refreshing here cannot be both durable and harmless to the transaction: the refresh
        # is refused before Pagero is called, as the docs promise (a refresh, or this).
        with pytest.raises(TokenLockTimeout):
            get_valid_token(user)
        users.filter(pk=user.pk).update(first_name="written by the view")

    assert pagero_mock.mock.counts["refresh_token"] == 0
    assert PageroToken.objects.get(pk=token.pk).refresh_token == token.refresh_token
    assert users.get(pk=user.pk).first_name == "written by the view"
    assert get_valid_token(user).refresh_token == pagero_mock.mock.issued_refresh_tokens[-1]


def test_a_lock_timeout_is_reported_by_token_refresh_failed(
    wal: Any, user: Any, pagero_mock: Any, pagero_token_factory: Any, receive: Any
) -> None:
    """The refusal before Pagero is called is a failed refresh like any other: the signal says
    so (reason ``unavailable``, the ``TokenLockTimeout`` itself), once, for the stored token."""
    from django_pagero_oauth.signals import token_refresh_failed

    token = pagero_token_factory(user, expired=True)
    with transaction.atomic():
        get_user_model().objects.get(pk=user.pk)
        with receive(token_refresh_failed) as failed, pytest.raises(TokenLockTimeout) as caught:
            get_valid_token(user)
    assert len(failed) == 1
    (sent,) = failed
    assert sent["sender"] is PageroToken
    assert (sent["token"].pk, sent["user"].pk) == (token.pk, user.pk)
    assert (sent["reason"], sent["error"]) == ("unavailable", caught.value)
    assert pagero_mock.mock.counts["refresh_token"] == 0
