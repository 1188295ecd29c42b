"""Single-flight without a transaction across the call to Pagero: the refresh lease.

A refresh takes a *lease* on the user's token row (``refresh_lease_until`` and a random
``refresh_lease_owner``) in a short, committed transaction that holds the row lock for a few
milliseconds. Then it calls Pagero with no transaction open, and stores the answer in a new short
transaction (``durable``). Nobody else spends the refresh token while the lease runs; a
holder that dies leaves a lease that runs out. After a failed refresh, the back-off (in Django's
default cache) makes the next callers fail at once instead of queueing up to try again one by
one.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.db import connections, router, transaction
from django.db.models import Q
from django.db.models.functions import Now

from .conf import app_settings
from .durable import (
    LOCK_WAIT_MARGIN,
    RETRIED,
    SQLITE_OWN_CONNECTION_TIMEOUT,
    durably,
    lock_timeout,
)
from .exceptions import PageroConfigurationError, PageroUnavailable, TokenLockTimeout
from .models import PageroToken

logger = logging.getLogger("django_pagero_oauth")


def lease_seconds() -> float:
    """How long a lease runs: longer than a token request's connect, its answer and each read
    of its body (each at most ``TIMEOUT``), plus a margin; a slower request keeps it extended
    (:func:`kept`)."""
    return app_settings.TIMEOUT * 3 + LOCK_WAIT_MARGIN


@dataclass(frozen=True)
class Lease:
    """A lease this process holds on one token row."""

    pk: Any
    owner: str
    #: Taken over from a holder whose lease ran out without being ended: that holder may
    #: still be alive (a paused process, a database clock that stepped) and store its answer.
    took_over: bool = False


def held_by_other(row: PageroToken, held: Lease) -> bool:
    """The locked ``row`` (read by ``durable.locked_row``) has a running lease that is not
    ``held``."""
    until = row.refresh_lease_until
    if until is None or until <= cast(datetime, row._db_now):  # type: ignore[attr-defined]
        return False
    return row.refresh_lease_owner != held.owner


#: This process's own knowledge: token pk -> monotonic time until which one of its threads is
#: taking the lease (or has seen another process hold it). Only callers whose access token still
#: works consult it, so that of a burst in one process only one caller asks the database.
_local: dict[Any, float] = {}
_local_lock = threading.Lock()


def first_here(pk: Any) -> bool:
    """True for the first caller of this process to want the lease on token ``pk`` now; it must
    call :func:`done_here` afterwards."""
    now = time.monotonic()
    with _local_lock:
        if _local.get(pk, 0.0) > now:
            return False
        if len(_local) > 1000:  # forget what ran out
            for key in [key for key, until in _local.items() if until <= now]:
                del _local[key]
        _local[pk] = now + lease_seconds()
        return True


def done_here(pk: Any, *, busy_elsewhere: bool = False) -> None:
    """The caller of :func:`first_here` is done; with ``busy_elsewhere`` (another process holds
    the lease) this process's callers leave it alone for a second more."""
    with _local_lock:
        if busy_elsewhere:
            _local[pk] = time.monotonic() + 1.0
        else:
            _local.pop(pk, None)


def try_take(token: PageroToken) -> Lease | None:
    """Take the lease on ``token``'s row in one statement, if it is free and the row still holds
    the access token ``token`` holds; else None at once (another caller refreshes, or did).

    It never waits for a transaction: on PostgreSQL a row another transaction holds (a refresh
    taking its turn or storing its answer) is skipped; elsewhere the wait is one statement's.
    """
    owner = new_owner()
    connection = connections[router.db_for_write(PageroToken)]
    try:
        # A free lease first (ended, or never taken); then one that ran out without being ended.
        for took_over in (False, True):
            if _try_take_once(connection, token, owner, took_over=took_over):
                return Lease(token.pk, owner, took_over=took_over)
    except RETRIED:
        if connection.in_atomic_block:
            return None
        connection.close()
        # The UPDATE may have committed with its acknowledgement lost: end that lease, if so.
        release(Lease(token.pk, owner))
    return None  # the token still works; the next caller tries again


def _try_take_once(connection: Any, token: PageroToken, owner: str, *, took_over: bool) -> int:
    """One ``UPDATE`` of :func:`try_take`, in a transaction of its own: a lease that was ended
    (``refresh_lease_until`` is NULL) or, with ``took_over``, one that ran out. On PostgreSQL a
    row locked by another transaction is skipped (``FOR UPDATE SKIP LOCKED``)."""
    manager = PageroToken.objects.db_manager(connection.alias)
    free = Q(refresh_lease_until__lte=Now()) if took_over else Q(refresh_lease_until__isnull=True)
    rows = manager.filter(free, pk=token.pk, access_token_expires_at=token.access_token_expires_at)
    if connection.vendor == "postgresql":
        rows = manager.filter(pk__in=rows.select_for_update(skip_locked=True).values("pk"))
    with transaction.atomic(using=connection.alias):
        return rows.update(
            refresh_lease_until=Now() + timedelta(seconds=lease_seconds()),
            refresh_lease_owner=owner,
        )


def new_owner() -> str:
    """A lease owner string, unique to one caller's turn."""
    return secrets.token_hex(16)


def take(row: PageroToken, owner: str) -> Lease:
    """Take the lease on the locked ``row`` as ``owner``; it commits with the current
    transaction. ``owner`` is chosen once per turn, before the transaction: when the COMMIT's
    acknowledgement is lost and the transaction runs again, the lease it finds is its own."""
    now = cast(datetime, row._db_now)  # type: ignore[attr-defined]
    took_over = row.refresh_lease_until is not None and row.refresh_lease_owner != owner
    row.refresh_lease_until = now + timedelta(seconds=lease_seconds())
    row.refresh_lease_owner = owner
    PageroToken.objects.db_manager(row._state.db).filter(pk=row.pk).update(
        refresh_lease_until=row.refresh_lease_until, refresh_lease_owner=owner
    )
    return Lease(row.pk, owner, took_over=took_over)


@contextmanager
def kept(held: Lease, seconds: float) -> Iterator[None]:
    """While the block runs (its holder waits for Pagero), a thread of its own extends the lease
    to a whole lease's length every quarter of one: a live holder, however slowly Pagero
    answers, never outlives its lease (a paused process pauses this too; then the lease runs out
    and may be taken over). For ``seconds`` at most (``oauth.request_deadline``): a request the
    cutoff missed never keeps it for good."""
    stop = threading.Event()
    until = time.monotonic() + seconds
    keeper = threading.Thread(target=_keep, args=(held, stop, until), daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join(timeout=SQLITE_OWN_CONNECTION_TIMEOUT)


def _keep(held: Lease, stop: threading.Event, until: float) -> None:
    beats = 0
    try:
        while not stop.wait(lease_seconds() / 4):
            if time.monotonic() >= until:
                return  # past the request's deadline: the lease runs out
            beats += 1
            if not _extend(held):
                return  # ended, taken over, or the row is gone
    finally:
        if beats:  # the connection this thread opened
            connections[router.db_for_write(PageroToken)].close()


def _extend(held: Lease) -> bool:
    """One extension of ``held``; False if it is not this holder's any more. A database error
    is left for the next beat."""
    using = router.db_for_write(PageroToken)

    def extend() -> bool:
        lock_timeout(using, 1.0)
        rows = PageroToken.objects.db_manager(using).filter(
            pk=held.pk, refresh_lease_owner=held.owner
        )
        return bool(rows.update(refresh_lease_until=Now() + timedelta(seconds=lease_seconds())))

    try:
        return durably(extend)
    except RETRIED:
        return True


def clear(row: PageroToken, lease: Lease) -> None:
    """On ``row`` (to be saved by the caller): no lease, if the one it holds is ``lease``."""
    if row.refresh_lease_owner == lease.owner:
        row.refresh_lease_until = None
        row.refresh_lease_owner = ""


def release(lease: Lease) -> None:
    """End ``lease`` (if it is still this one), committed; a failure leaves it to run out."""
    rows = PageroToken.objects.db_manager(router.db_for_write(PageroToken)).filter(
        pk=lease.pk, refresh_lease_owner=lease.owner
    )
    try:
        with suppress(*RETRIED):
            durably(
                lambda: rows.update(refresh_lease_until=None, refresh_lease_owner=""), budget=1.0
            )
    finally:
        released()


#: Wakes this process's waiters when one of its leases ends (others look again every so often).
_ended = threading.Condition()


def released() -> None:
    with _ended:
        _ended.notify_all()


class Waiter:
    """Waits for another holder's lease on token ``pk`` to end (or run out), then lets the
    caller take its turn again. Woken at once when a lease of this process ends; else it looks
    at the row (one short read, no lock, no transaction) after a pause that grows from 10 ms to
    100 ms. Gives up after a lease's length: :class:`TokenLockTimeout`."""

    def __init__(self, pk: Any) -> None:
        self.pk = pk
        self.deadline = time.monotonic() + lease_seconds() + LOCK_WAIT_MARGIN
        self.pause = 0.01

    def wait(self) -> None:
        while not self._lease_ended():
            if time.monotonic() >= self.deadline:
                raise TokenLockTimeout(
                    "another refresh of this Pagero token did not finish in time; nothing changed"
                )
            with _ended:
                _ended.wait(self.pause)
            self.pause = min(self.pause * 1.5, 0.1)

    def _lease_ended(self) -> bool:
        using = router.db_for_write(PageroToken)
        rows = PageroToken.objects.db_manager(using).filter(pk=self.pk)
        try:
            lease = rows.values_list("refresh_lease_owner", "refresh_lease_until", Now()).first()
        except RETRIED:
            if not connections[using].in_atomic_block:
                connections[using].close()  # a new one next time
            return False
        return lease is None or lease[1] is None or lease[1] <= lease[2]


# --- the back-off after a failed refresh -------------------------------------------------------


def _backoff_key(token: PageroToken) -> str:
    # Keyed by the refresh token's fingerprint too: a new login or a rotation starts afresh.
    return f"django_pagero_oauth:refresh-backoff:{token.pk}:{token.fingerprint}"


def backoff_failure(token: PageroToken) -> PageroUnavailable | PageroConfigurationError | None:
    """The failure to raise while a back-off after a recent failure of ``token`` runs, or None.
    A failure of the site's configuration (``invalid_client``) is raised again as such."""
    entry = caches[DEFAULT_CACHE_ALIAS].get(_backoff_key(token))
    if entry is None:
        return None
    until, configuration = entry
    remaining = int(until - time.time()) + 1
    if remaining <= 0:
        return None
    if configuration:
        return PageroConfigurationError(
            "Pagero rejected this site's client credentials moments ago; not trying again yet"
        )
    return PageroUnavailable(
        "a refresh failed moments ago; not trying again yet", retry_after=remaining
    )


def start_backoff(
    token: PageroToken, failure: PageroUnavailable | PageroConfigurationError
) -> None:
    """A refresh of ``token`` failed: the next callers fail at once for a while."""
    seconds = app_settings.REFRESH_FAILURE_BACKOFF
    if failure.retry_after:
        seconds = max(seconds, min(failure.retry_after, 300))
    if seconds > 0:
        entry = [time.time() + seconds, isinstance(failure, PageroConfigurationError)]
        _in_cache(token, "started", lambda cache: cache.set(_backoff_key(token), entry, seconds))


def end_backoff(token: PageroToken) -> None:
    """A refresh of ``token`` succeeded and is stored: no back-off."""
    _in_cache(token, "ended", lambda cache: cache.delete(_backoff_key(token)))


def _in_cache(token: PageroToken, what: str, change: Callable[[Any], object]) -> None:
    """Best effort: a cache that fails (Redis restarting) is logged; then the callers try again
    instead of backing off, or the back-off runs out by itself."""
    try:
        change(caches[DEFAULT_CACHE_ALIAS])
    except Exception as exc:  # the cache backend's own errors: no common base class
        logger.warning(
            "Pagero token %s: the refresh back-off could not be %s (%s)",
            token.fingerprint,
            what,
            type(exc).__name__,
        )
