"""Where the writes about a token go and how they commit, and the token row's write lock.

Pagero spends the old single-use refresh token the moment it answers, so what a refresh or a
revocation writes is committed whatever the caller's transaction does afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar, cast

from django.db import (
    DatabaseError,
    InterfaceError,
    OperationalError,
    connections,
    router,
    transaction,
)
from django.db.models.functions import Now
from django.db.transaction import TransactionManagementError
from django.db.utils import load_backend

from .conf import app_settings
from .exceptions import TokenLockTimeout
from .locking import write_locked
from .models import PageroToken

if TYPE_CHECKING:
    from django.db.backends.sqlite3.base import DatabaseWrapper as SQLiteDatabaseWrapper

T = TypeVar("T")

#: Seconds the own SQLite connection waits for the database lock (at most).
SQLITE_OWN_CONNECTION_TIMEOUT = 1.0

#: Seconds added to twice ``TIMEOUT`` (connecting, then answering) for how long a caller waits
#: for the row lock, and to a lease's length.
LOCK_WAIT_MARGIN = 10.0

#: Errors after which a short transaction is tried again on a new connection.
RETRIED = (DatabaseError, InterfaceError, TransactionManagementError)

LOCK_TIMEOUT_MESSAGE = (
    "the Pagero token row stayed locked; Pagero was not called and nothing changed. If the "
    "caller's own transaction holds that lock (or, on SQLite, any database lock), get the token "
    "before the transaction starts"
)


def _in_outer_transaction(using: str) -> bool:
    """True inside a transaction of the caller's (not of a test case) on ``using``.

    ``ATOMIC_REQUESTS``, ``transaction.atomic()`` and ``set_autocommit(False)`` all count: a write
    made there is durable only when the caller commits.
    """
    connection = connections[using]
    if not connection.in_atomic_block:
        return not connection.get_autocommit()
    return not all(getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def _own_connection_possible(using: str) -> bool:
    """A second connection sees the same database (not so for SQLite's private ``:memory:``)."""
    connection = connections[using]
    return not (
        connection.vendor == "sqlite"
        and cast("SQLiteDatabaseWrapper", connection).is_in_memory_db()
    )


@contextmanager
def _own_connection(using: str) -> Iterator[None]:
    """Within the block, ``connections[using]`` (in this thread) is a new connection of its own.

    Its transactions commit whatever the caller's transaction does later. It is closed at the
    end; the caller's connection, and its transaction, are untouched throughout. On SQLite its
    transactions begin with ``BEGIN EXCLUSIVE`` and wait at most a second for the lock: if the
    caller's own transaction holds it, :class:`TokenLockTimeout` comes before Pagero is called.
    """
    outer = connections[using]
    settings_dict = dict(outer.settings_dict)
    if outer.vendor == "sqlite":
        options = settings_dict.get("OPTIONS", {})
        settings_dict["OPTIONS"] = {
            **options,
            "transaction_mode": "EXCLUSIVE",
            # Waiting longer does not help when the lock is the caller's own.
            "timeout": min(float(options.get("timeout", 5)), SQLITE_OWN_CONNECTION_TIMEOUT),
        }
    own = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, using)
    connections[using] = own
    try:
        yield
    finally:
        connections[using] = outer
        own.close()


SQLITE_WAL_MESSAGE = (
    "SQLite in WAL mode: a Pagero token is not refreshed inside a transaction (its commit beside "
    "the transaction would make the transaction's writes fail); Pagero was not called and "
    "nothing changed. Get the token before the transaction starts"
)


def _sqlite_wal(using: str) -> bool:
    """SQLite in WAL mode. There a commit on another connection leaves a transaction that has
    read anything unable to write (``SQLITE_BUSY_SNAPSHOT``, at once): a refresh inside the
    caller's transaction is refused before Pagero is called. (In the other journal modes the
    caller's read holds a lock, and the own connection's ``BEGIN EXCLUSIVE`` times out.)"""
    connection = connections[using]
    if connection.vendor != "sqlite":
        return False
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        row = cursor.fetchone()
    return row is not None and str(row[0]).lower() == "wal"


@contextmanager
def durable_place(pk: Any) -> Iterator[bool]:
    """Where the writes about token ``pk`` go; yields ``durable``.

    ``durable`` is True when each short transaction commits at its end, whatever the caller's
    transaction does afterwards: inside a caller's transaction (``ATOMIC_REQUESTS``, ``atomic()``)
    they run on a database connection of their own, because Pagero spends the old single-use
    refresh token the moment it answers. Only a row the caller's transaction created and has not
    committed is invisible there: it is written in the caller's transaction (``durable`` False),
    with which it lives or dies. On SQLite in WAL mode, inside the caller's transaction:
    :class:`TokenLockTimeout` (see :func:`_sqlite_wal`).
    """
    using = router.db_for_write(PageroToken)
    if _in_outer_transaction(using) and _own_connection_possible(using):
        if _sqlite_wal(using):
            raise TokenLockTimeout(SQLITE_WAL_MESSAGE)
        with _own_connection(using):
            try:
                visible = PageroToken.objects.db_manager(using).filter(pk=pk).exists()
            except OperationalError as exc:
                raise TokenLockTimeout(LOCK_TIMEOUT_MESSAGE) from exc
            if visible:
                yield True
                return
    yield False


def durably(work: Callable[[], T], *, budget: float = 0.0) -> T:
    """Run ``work`` in a short transaction on the token table's database; return its result.

    After a database error (a terminated connection, a restarted server, a serialization
    failure, a lock or statement timeout) outside a transaction, the whole of ``work`` runs
    again on a new connection, for ``budget`` seconds at most (at least once more). Inside a
    transaction (a test case's) the error is raised.
    """
    using = router.db_for_write(PageroToken)
    deadline = time.monotonic() + budget
    pause, retried = 0.02, False
    while True:
        connection = connections[using]
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()
        try:
            with transaction.atomic(using=using):
                return work()
        except RETRIED:
            if connection.in_atomic_block or (retried and time.monotonic() + pause > deadline):
                raise
            connection.close()
            time.sleep(pause)
            pause, retried = min(pause * 2, 1.0), True


def locked_row(using: str, pk: Any, *, with_secrets: bool = True) -> PageroToken | None:
    """Token ``pk``, read with the write lock held until the current transaction ends, and the
    database's clock as ``_db_now`` (so every lease is measured on one clock)."""
    lock_timeout(using, app_settings.TIMEOUT * 2 + LOCK_WAIT_MARGIN)
    queryset = write_locked(PageroToken.objects.db_manager(using).filter(pk=pk))
    # The user comes along (is_active is checked, signals carry it); only the token row is locked.
    queryset = queryset.select_related("user").annotate(_db_now=Now())
    if not with_secrets:
        queryset = queryset.without_secrets()
    return queryset.first()


def lock_timeout(using: str, seconds: float) -> None:
    """On PostgreSQL, the current transaction waits at most ``seconds`` for a row lock."""
    connection = connections[using]
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {int(seconds * 1000)}")


@contextmanager
def row_lock(pk: Any, *, with_secrets: bool = True) -> Iterator[tuple[PageroToken | None, bool]]:
    """Yield ``(row, durable)``: token ``pk`` write-locked in a transaction that commits at the
    end of the block (see :func:`durable_place`). :class:`TokenLockTimeout` when the lock cannot
    be had."""
    with durable_place(pk) as durable:
        using = router.db_for_write(PageroToken)
        acquired = False
        try:
            with transaction.atomic(using=using):  # SQLite's BEGIN EXCLUSIVE may fail here
                current = locked_row(using, pk, with_secrets=with_secrets)
                acquired = True
                yield current, durable
        except OperationalError as exc:
            if acquired:
                raise
            raise TokenLockTimeout(LOCK_TIMEOUT_MESSAGE) from exc


@contextmanager
def locked_token(pk: Any, *, with_secrets: bool = True) -> Iterator[PageroToken | None]:
    """A transaction holding the write lock on one token row; yields the row as committed now
    (``with_secrets=False``: its encrypted columns unloaded, enough to delete a token whose key
    was lost).

    What the block writes is committed when it ends, even inside the caller's own transaction
    (see ``durable_place``). A refresh in flight stores its
    answer only while the row still holds the refresh token it spent, so what the block writes
    is never overwritten by a stale one.
    """
    with row_lock(pk, with_secrets=with_secrets) as (current, _durable):
        yield current


def send_when_committed(durable: bool, send: Callable[[], object]) -> None:
    """Send a signal now if the write it reports is committed (``durable``), else when the
    caller commits."""
    if durable:
        send()
    else:
        transaction.on_commit(send, using=router.db_for_write(PageroToken))
