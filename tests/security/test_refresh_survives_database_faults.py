"""Once Pagero has answered a refresh, the answer is stored, whatever the database did meanwhile.

Pagero spends the old single-use refresh token when it answers. The refresh therefore holds no
database transaction while it waits for Pagero (it holds a committed lease on the row), and
stores the answer in a new short transaction, on a new connection if its connection broke. Here
the mock Pagero *holds its answer* (after rotating the token) while the test makes the database
misbehave: the refresher's connection closed under it, its backend terminated, an
``idle_in_transaction_session_timeout`` shorter than the answer, ``SERIALIZABLE`` isolation with
a conflicting writer, a ``statement_timeout`` shorter than the refresh. Each time the new refresh
token must end up stored and alive at Pagero, after exactly one refresh.

And nobody whose access token still works waits for somebody else's refresh (issue 16, item 4).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import MockRequest
from django_pagero_oauth.tokens import get_valid_token

from .refresh_helpers import DEADLINE, Caller, on_refresh_grant

pytestmark = pytest.mark.django_db(transaction=True)

ON_POSTGRESQL = connection.vendor == "postgresql"
postgresql_only = pytest.mark.skipif(not ON_POSTGRESQL, reason="a PostgreSQL server's fault")


@dataclass
class HeldAnswer:
    """The mock answers refresh grants (the token is rotated), then holds the answer until
    ``release`` is set, and for ``hold`` more seconds (the mock's own delay)."""

    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    hold: float = 0.0


@pytest.fixture
def held(pagero_mock: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldAnswer]:
    state = HeldAnswer()

    def hold(request: MockRequest) -> None:
        state.arrived.set()
        state.release.wait(timeout=DEADLINE)
        time.sleep(state.hold)  # the mock answering slowly, as a server may

    on_refresh_grant(pagero_mock, monkeypatch, hold)
    try:
        yield state
    finally:
        state.release.set()


def _refresh_with(held: HeldAnswer, user: Any, fault: Callable[[Caller], None]) -> Any:
    caller = Caller(user)
    caller.start()
    assert held.arrived.wait(timeout=DEADLINE), "no refresh reached Pagero"
    try:
        fault(caller)
    finally:
        held.release.set()
    return caller.outcome()


def assert_answer_stored(pagero_mock: Any, token: PageroToken, result: Any) -> None:
    mock = pagero_mock.mock
    assert mock.counts["refresh_token"] == 1
    assert not isinstance(result, BaseException), repr(result)
    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.refresh_token == mock.issued_refresh_tokens[-1] == result.refresh_token
    assert mock.is_refresh_token_valid(stored.refresh_token)
    assert not stored.needs_reauthorization and not stored.access_token_needs_refresh()
    assert stored.refresh_lease_until is None  # the lease ended with the store
    assert get_valid_token(stored.user).refresh_token == stored.refresh_token
    assert mock.counts["refresh_token"] == 1


def _other_backends(where: str) -> list[Any]:
    with connection.cursor() as cursor:
        # The conditions are this module's own.
        query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
        cursor.execute(query + f"AND pid <> pg_backend_pid() AND {where}")
        return [pid for (pid,) in cursor.fetchall()]


def _database_is_free_to_write() -> bool:
    """SQLite: another connection can take the database's write lock right now."""
    other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


# --- no transaction while Pagero answers ----------------------------------------------------


def test_no_transaction_is_open_while_pagero_answers(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, held: HeldAnswer
) -> None:
    """Why ``idle_in_transaction_session_timeout`` (and a pooler in transaction mode) cannot
    hurt a refresh: while Pagero answers, no transaction, and no lock, is held."""
    token = pagero_token_factory(user, expired=True)
    observed: list[Any] = []

    def look(caller: Caller) -> None:
        if ON_POSTGRESQL:
            observed.extend(_other_backends("state LIKE 'idle in transaction%'"))
            observed.extend(_other_backends("backend_xid IS NOT NULL"))
        elif not _database_is_free_to_write():
            observed.append("the SQLite write lock")

    result = _refresh_with(held, user, look)

    assert observed == []
    assert_answer_stored(pagero_mock, token, result)


def test_the_answer_is_stored_after_the_refreshers_connection_broke(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, held: HeldAnswer
) -> None:
    """The connection that took the lease is closed under the refresher while Pagero answers
    (a pooler's restart, a network cut): the answer is stored on a new one."""
    token = pagero_token_factory(user, expired=True)

    def break_connection(caller: Caller) -> None:
        assert caller.connection.connection is not None
        caller.connection.connection.close()

    result = _refresh_with(held, user, break_connection)

    assert_answer_stored(pagero_mock, token, result)


@postgresql_only
def test_the_answer_is_stored_after_the_refreshers_backend_was_terminated(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, held: HeldAnswer
) -> None:
    """``pg_terminate_backend`` (what a failover or an operator does) of the session that took
    the lease, while Pagero holds its answer."""
    token = pagero_token_factory(user, expired=True)
    terminated: list[Any] = []

    def terminate(caller: Caller) -> None:
        pid = caller.connection.connection.info.backend_pid
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            terminated.append(cursor.fetchone()[0])

    result = _refresh_with(held, user, terminate)

    assert terminated == [True], "the refresher's backend was not terminated"
    assert_answer_stored(pagero_mock, token, result)


# --- server settings that end sessions, transactions or statements --------------------------


@pytest.fixture
def database_options(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Connections opened from now on get these ``OPTIONS`` (this test's own one too)."""

    def set_options(**options: Any) -> None:
        settings = connections.settings["default"]
        monkeypatch.setitem(settings, "OPTIONS", {**settings.get("OPTIONS", {}), **options})
        connection.close()

    yield set_options  # type: ignore[misc]
    connection.close()


@postgresql_only
def test_an_idle_in_transaction_timeout_shorter_than_the_answer_loses_nothing(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, held: HeldAnswer, database_options: Any
) -> None:
    token = pagero_token_factory(user, expired=True)
    database_options(options="-c idle_in_transaction_session_timeout=300")
    held.hold = 1.0  # Pagero answers after 1 s: a transaction held meanwhile would be ended

    result = _refresh_with(held, user, lambda caller: None)

    assert_answer_stored(pagero_mock, token, result)


@postgresql_only
def test_serializable_isolation_with_a_conflicting_writer_loses_nothing(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, held: HeldAnswer, database_options: Any
) -> None:
    """An ordinary request reads the token and writes the user while Pagero answers."""
    from psycopg import IsolationLevel

    token = pagero_token_factory(user, expired=True)
    database_options(isolation_level=IsolationLevel.SERIALIZABLE)

    def conflicting_request(caller: Caller) -> None:
        with transaction.atomic():
            PageroToken.objects.select_related("user").get(pk=token.pk)
            type(user).objects.filter(pk=user.pk).update(first_name="written meanwhile")

    result = _refresh_with(held, user, conflicting_request)

    assert_answer_stored(pagero_mock, token, result)
    user.refresh_from_db()
    assert user.first_name == "written meanwhile"


@postgresql_only
def test_a_statement_timeout_shorter_than_the_refresh_fails_no_waiter(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, held: HeldAnswer, database_options: Any
) -> None:
    """A second caller whose token has expired waits for the refresh without a statement
    that could time out (it does not wait on a row lock)."""
    token = pagero_token_factory(user, expired=True)
    database_options(options="-c statement_timeout=200")
    held.hold = 0.6
    waiter = Caller(user)

    def second_caller(caller: Caller) -> None:
        waiter.start()
        query = (
            f'starts_with(query, \'SELECT "{PageroToken._meta.db_table}"."refresh_lease_owner"\')'
        )
        deadline = time.monotonic() + DEADLINE
        while not _other_backends(query) and waiter.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)  # until the waiter is seen waiting for the lease

    result = _refresh_with(held, user, second_caller)

    assert_answer_stored(pagero_mock, token, result)
    assert waiter.outcome().access_token == result.access_token


# --- item 4: nobody whose token works waits -------------------------------------------------


def test_a_caller_inside_the_leeway_takes_the_valid_token_while_another_refreshes(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, held: HeldAnswer
) -> None:
    token = pagero_token_factory(user)
    now = timezone.now()
    PageroToken.objects.filter(pk=token.pk).update(  # valid for 5 more seconds: inside the leeway
        access_token_issued_at=now - timedelta(seconds=595),
        access_token_expires_at=now + timedelta(seconds=5),
    )
    current = PageroToken.objects.get(pk=token.pk)
    assert current.access_token_needs_refresh() and not current.is_access_token_expired()
    seen: list[Any] = []

    def meanwhile(refresher: Caller) -> None:
        other = Caller(user)
        other.start()
        seen.append(other.outcome())
        seen.append(refresher.is_alive() and not held.release.is_set())

    result = _refresh_with(held, user, meanwhile)

    other_result, refresher_still_held = seen
    assert refresher_still_held, "the caller inside the leeway waited for the refresh"
    assert other_result.access_token == token.access_token  # the current, still valid one
    assert_answer_stored(pagero_mock, token, result)
