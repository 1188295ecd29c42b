"""The token lifecycle: the ONE way to get a user a valid access token.

Pagero's refresh tokens are single-use, so refreshing is *single-flight* across threads,
processes and hosts: one caller takes the row's refresh lease (:mod:`.lease`), calls Pagero with
no transaction open and stores the answer only on the row that still holds the refresh token it
spent (``store``); callers whose access token still works go on with it, the others wait
for the lease. Middleware, decorator, mixin, API client, admin action and management commands
all call :func:`get_valid_token` (or :func:`refresh` for a forced refresh).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from asgiref.sync import sync_to_async
from django.db import connections, router
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import lease, oauth, store
from .durable import (
    LOCK_TIMEOUT_MESSAGE,
    RETRIED,
    durable_place,
    durably,
    locked_row,
    locked_token,
    send_when_committed,
)
from .exceptions import (
    SERVICE_ERRORS,
    OAuthErrorResponse,
    PageroAuthorizationRequired,
    PageroOAuthError,
    PageroUnavailable,
    TokenGone,
    TokenLockTimeout,
    nearest_reason,
)
from .models import PageroToken, PageroTokenQuerySet
from .revocation import Revocation, revoke
from .signals import token_refresh_failed, token_refreshed
from .store import RefreshFailed

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

logger = logging.getLogger("django_pagero_oauth")


def get_valid_token(
    user: AbstractBaseUser | AnonymousUser | None, *, force_refresh: bool = False
) -> PageroToken:
    """Return ``user``'s token, its access token valid for at least ``REFRESH_LEEWAY`` seconds.

    Refreshes single-flight when needed (or always, with ``force_refresh``, e.g. after the API
    answered 401). Raises :class:`PageroAuthorizationRequired` when the user must log in at
    Pagero (again), :class:`PageroUnavailable` when Pagero cannot be used right now and
    :class:`PageroConfigurationError` when Pagero rejected this site's client credentials; in
    each case the stored token is exactly as it was, unless Pagero definitely rejected the refresh
    token (``invalid_grant``), which marks it as needing re-authorization.
    """
    with about_user(getattr(user, "pk", None)):
        token = _stored_token(user)
        if _must_refresh(token, force_refresh):
            token = refresh(token, force=force_refresh)
            _remember(user, token)
    return token


@contextmanager
def about_user(user_pk: Any) -> Iterator[None]:
    """A :class:`PageroAuthorizationRequired` raised inside is about ``user_pk``'s connection
    (its ``user_pk``, unless it names one already): the guards answer only the visitor's."""
    try:
        yield
    except PageroAuthorizationRequired as exc:
        if exc.user_pk is None:
            exc.user_pk = user_pk
        raise


def _must_refresh(token: PageroToken, force: bool) -> bool:
    """A refresh is due, and this caller must take part: not so for a caller whose access token
    still works while another refreshes (the lease it read is running): it uses that token."""
    if force:
        return True
    if not token.access_token_needs_refresh():
        return False
    return token.is_access_token_expired() or not _lease_running(token)


def _lease_running(token: PageroToken) -> bool:
    """The lease as ``token`` was read says another caller refreshes it now."""
    until = token.refresh_lease_until
    return until is not None and until > timezone.now()


def _stored_token(user: AbstractBaseUser | AnonymousUser | None) -> PageroToken:
    """The user's stored token, if it can be used or refreshed; else why not. The one loaded
    with the user for this request, else one indexed query (which re-reads ``is_active``).

    The hot path: only the access token is decrypted; the refresh token is read, under the
    lock, only when a refresh is due. The access token is decrypted here, so that a token that
    cannot be decrypted (its key was lost, or the value was copied from another row) raises
    ``UndecryptableToken``, a :class:`PageroAuthorizationRequired`, not an error in the view.
    """
    if user is None or not user.is_authenticated or not user.is_active:
        raise PageroAuthorizationRequired("The user is anonymous or inactive.")
    token: PageroToken | None
    if getattr(user, PRELOADED, False) and _USER_RELATION.is_cached(user):
        token = cast("PageroToken | None", _USER_RELATION.get_cached_value(user))
    else:
        token = _read_on_primary().filter(user_id=user.pk).first()
        if token is not None and not token.user.is_active:
            # The row's user, not the caller's object: a job may hold a user loaded before the
            # deactivation (the join costs no query).
            raise PageroAuthorizationRequired("The user is inactive.")
    if token is None:
        raise PageroAuthorizationRequired("The user has not connected to Pagero.")
    token.access_token  # noqa: B018 (decrypts it, see above)
    if token.needs_reauthorization:
        raise PageroAuthorizationRequired("The Pagero connection must be renewed by logging in.")
    return token


def _remember(user: Any, token: PageroToken) -> None:
    """Keep the refreshed token on a user ``PageroModelBackend`` loaded it with."""
    if getattr(user, PRELOADED, False):
        _USER_RELATION.set_cached_value(user, token)


#: ``user.pagero_token``, whose cache holds the token ``PageroModelBackend`` loaded.
_USER_RELATION = PageroToken._meta.get_field("user").remote_field

#: Set on the users ``PageroModelBackend`` loads: only their cached token is trusted (any other
#: user object may hold a token assigned to it long ago).
PRELOADED = "_pagero_token_preloaded"


def _read_on_primary() -> PageroTokenQuerySet:
    """Tokens with their users, read where writes go (a lagging read replica may still hold a
    token disconnected, or a user deactivated, on the primary); no refresh or ID token."""
    manager = PageroToken.objects.db_manager(router.db_for_write(PageroToken))
    return manager.select_related("user").defer("refresh_token", "id_token")


async def aget_valid_token(
    user: AbstractBaseUser | AnonymousUser | None, *, force_refresh: bool = False
) -> PageroToken:
    """:func:`get_valid_token` for async code. The read runs in Django's shared sync thread (as
    every ORM call from async code does); a refresh, which waits for Pagero, runs on a worker
    thread with a database connection of its own, closed afterwards, so other requests' ORM
    calls do not queue behind it; only inside a transaction (a test case's, whose rows another
    connection cannot see) does it run in the shared thread.
    """
    with about_user(getattr(user, "pk", None)):
        token, in_transaction = await sync_to_async(
            lambda: (_stored_token(user), _in_atomic_block()), thread_sensitive=True
        )()
        if _must_refresh(token, force_refresh):
            token = await _arefresh(token, force=force_refresh, in_transaction=in_transaction)
            _remember(user, token)
    return token


async def arefresh(token: PageroToken, *, force: bool = False) -> PageroToken:
    """:func:`refresh` for async code, off Django's shared sync thread (as in
    :func:`aget_valid_token`); e.g. the forced refresh after the API answered 401."""
    in_transaction = await sync_to_async(_in_atomic_block, thread_sensitive=True)()
    return await _arefresh(token, force=force, in_transaction=in_transaction)


async def _arefresh(token: PageroToken, *, force: bool, in_transaction: bool) -> PageroToken:
    return await sync_to_async(
        refresh if in_transaction else _refresh_on_own_thread,
        thread_sensitive=in_transaction,
    )(token, force=force)


def _in_atomic_block() -> bool:
    return connections[router.db_for_write(PageroToken)].in_atomic_block


def _refresh_on_own_thread(token: PageroToken, *, force: bool) -> PageroToken:
    """:func:`refresh` on a worker thread; this thread's database connections end with it."""
    try:
        return refresh(token, force=force)
    finally:
        connections.close_all()


@sensitive_variables("seen_access_token")
def refresh(token: PageroToken, *, force: bool = False) -> PageroToken:
    """Refresh ``token`` single-flight and return the current row.

    Without ``force``, refreshes only if the row still needs it. With ``force``, refreshes only
    if nobody replaced the access token since ``token`` was read, so N callers who all saw the
    same rejected access token cause one refresh, not N.

    One caller takes the row's refresh lease (:mod:`.lease`) and calls Pagero with no database
    transaction open. Meanwhile a caller whose access token still works (it is only inside the
    leeway) gets it back at once; a caller whose token has expired waits for the lease to end.

    After a transient failure, callers within ``REFRESH_FAILURE_BACKOFF`` seconds (or the
    server's ``Retry-After``) fail at once instead of queueing up to try again one by one; the
    back-off lives in Django's default cache, so a shared cache (Redis, Memcached) spreads it
    across processes and hosts. Either way, while the stored access token has not actually
    expired, a failed refresh returns it: it still works.

    Once Pagero has answered, its answer is committed before this returns, in a new short
    transaction (on a new connection if the old one broke), also when called inside the
    caller's own transaction (see ``durable.durable_place``).
    """
    seen_access_token = token.access_token
    with about_user(token.user_id):
        try:
            with durable_place(token.pk) as durable:
                fresh, refreshed = _single_flight(token, force, seen_access_token)
        except TokenLockTimeout as exc:  # nothing was sent to Pagero: the caller's copy holds
            failed = RefreshFailed(token, exc)
        except RefreshFailed as exc:
            failed = exc
        else:
            if refreshed:
                send_when_committed(
                    durable, lambda: token_refreshed.send(PageroToken, token=fresh, user=fresh.user)
                )
            return fresh
        return _refresh_failed(failed, force=force)


@sensitive_variables("seen_access_token")
def _single_flight(
    token: PageroToken, force: bool, seen_access_token: str
) -> tuple[PageroToken, bool]:
    """Take turns on the row until it is fine, or this caller refreshed it: the row, and
    whether this caller refreshed it. A failure is raised (:class:`.store.RefreshFailed`).

    A caller whose access token still works only tries to take the lease, in one statement,
    and only if no other caller of this process is trying; else it goes on with the token it
    has. A caller whose token has expired tries the same, else waits for the lease to end.
    """
    if force:
        return _take_turns(token, force, seen_access_token, None)
    if token.is_access_token_expired():
        held = None if _lease_running(token) else lease.try_take(token)
        # None: another caller holds the lease, or has just refreshed; wait for it first.
        return _take_turns(token, force, seen_access_token, held, wait_first=held is None)
    if not lease.first_here(token.pk):
        return token, False  # another caller of this process is on it
    held = None
    try:
        held = lease.try_take(token)
        if held is None:
            return token, False
        return _take_turns(token, force, seen_access_token, held)
    finally:
        lease.done_here(token.pk, busy_elsewhere=held is None)


@sensitive_variables("seen_access_token")
def _take_turns(
    token: PageroToken,
    force: bool,
    seen_access_token: str,
    held: lease.Lease | None,
    *,
    wait_first: bool = False,
) -> tuple[PageroToken, bool]:
    """Take turns on the row (see :func:`_take_turn`) until the caller can go on with it or
    this caller refreshed it. Between turns (and before the first, with ``wait_first``) wait
    while another holds the lease, then read the row again without a lock."""
    waiter = lease.Waiter(token.pk)
    while True:
        if wait_first:
            waiter.wait()
            settled = _settled(token.pk, force, seen_access_token)
            if settled is not None:
                return settled, False
        row, taken = _take_turn(token, force, seen_access_token, held)
        held = None
        if taken is not None:
            return _refresh_with_lease(row, taken)
        if _usable(row, force, seen_access_token):
            return row, False
        wait_first = True


@sensitive_variables("seen_access_token")
def _needs_nothing(row: PageroToken, force: bool, seen_access_token: str) -> bool:
    """Somebody refreshed ``row``: after the rejected access token was read (``force``), or
    while this caller waited."""
    if force:
        return bool(row.access_token != seen_access_token)
    return not row.access_token_needs_refresh()


@sensitive_variables("seen_access_token")
def _usable(row: PageroToken, force: bool, seen_access_token: str) -> bool:
    """The caller can go on with ``row`` while another refreshes it: its access token replaced
    the rejected one (``force``), or has not expired (it is only inside the leeway)."""
    if force:
        return _needs_nothing(row, force, seen_access_token)
    return not row.is_access_token_expired()


@sensitive_variables("seen_access_token")
def _settled(pk: Any, force: bool, seen_access_token: str) -> PageroToken | None:
    """After a wait: the row as committed now (read without a lock), if it needs nothing more."""
    current = _refreshable(_read_on_primary().filter(pk=pk).first())
    return current if _needs_nothing(current, force, seen_access_token) else None


@sensitive_variables("seen_access_token")
def _take_turn(
    token: PageroToken, force: bool, seen_access_token: str, held: lease.Lease | None
) -> tuple[PageroToken, lease.Lease | None]:
    """One short committed transaction: lock the row, decide, take the lease if the row needs a
    refresh and the lease is free (or keep ``held``, the lease this caller already holds).
    Returns the row and the lease to refresh it with, or None (somebody refreshed the row, or
    another holds the lease). :class:`.store.RefreshFailed` while a back-off runs.

    The lease is taken as ``mine``, one owner for every run of the transaction: a run whose
    COMMIT was acknowledged to nobody left a lease that the next run recognises as its own.
    A lease of ``mine`` this caller does not refresh with is released."""
    mine = held or lease.Lease(token.pk, lease.new_owner())

    def decide() -> tuple[PageroToken, lease.Lease | None]:
        current = _refreshable(locked_row(router.db_for_write(PageroToken), token.pk))
        if _needs_nothing(current, force, seen_access_token) or lease.held_by_other(current, mine):
            return current, None
        backoff = None if force else lease.backoff_failure(current)
        if backoff is not None:
            raise RefreshFailed(current, backoff, reported=False)
        return current, held or lease.take(current, mine.owner)

    try:
        try:
            row, taken = durably(decide, budget=1.0)
        except RETRIED as exc:
            raise TokenLockTimeout(LOCK_TIMEOUT_MESSAGE) from exc
    except RefreshFailed as failed:
        _release_unused(mine, held, failed.row)
        raise
    except BaseException:
        lease.release(mine)  # held, or perhaps taken by a run whose COMMIT went unacknowledged
        raise
    if taken is None:
        _release_unused(mine, held, row)
    return row, taken


def _release_unused(mine: lease.Lease, held: lease.Lease | None, row: PageroToken) -> None:
    """End ``mine`` when this caller does not refresh: it held it before the turn, or a run
    whose COMMIT went unacknowledged took it (the locked ``row`` shows it)."""
    if held is not None or row.refresh_lease_owner == mine.owner:
        lease.release(mine)


def _refreshable(current: PageroToken | None) -> PageroToken:
    """The locked row, if it can be refreshed without the user; else the reason why not."""
    if current is None:
        raise TokenGone("The user has no Pagero connection any more.")
    if current.needs_reauthorization:
        raise PageroAuthorizationRequired("The Pagero connection must be renewed by logging in.")
    if not current.user.is_active:
        # Re-read with the row: a user object loaded earlier may predate a deactivation.
        raise PageroAuthorizationRequired("The user is inactive.")
    return current


@sensitive_variables("used_refresh_token", "response")
def _refresh_with_lease(current: PageroToken, held: lease.Lease) -> tuple[PageroToken, bool]:
    """Spend the refresh token of ``current`` once, holding the lease and no transaction. On
    failure nothing is written but the re-authorization mark after ``invalid_grant``; the lease
    ends either way (after the back-off started, so that the waiters see it)."""
    used_refresh_token = current.refresh_token
    response: oauth.TokenResponse | None = None
    try:
        with lease.kept(held, oauth.request_deadline()):
            response = oauth.refresh_access_token(used_refresh_token)
    except OAuthErrorResponse as exc:
        if exc.error == "invalid_grant":
            return store.store_invalid_grant(current, used_refresh_token, held, exc)
        failure: PageroOAuthError = PageroUnavailable(
            exc.description, error=exc.error, status_code=exc.status_code
        )
    except SERVICE_ERRORS as exc:  # the token is kept; rejected credentials back off too
        failure = exc
    except BaseException:
        if response is None:
            lease.release(held)
        else:  # an interrupt while the keeper ended: the answer is in hand, store it
            store.store_before_leaving(current, used_refresh_token, held, response)
        raise
    else:
        # Stored first: the answer holds the only copy of the rotated refresh token, and the
        # back-off lives in a cache that may fail.
        stored = store.store_answer(current, used_refresh_token, held, response)
        lease.end_backoff(current)
        return stored
    try:
        lease.start_backoff(current, failure)  # type: ignore[arg-type]
    finally:
        lease.release(held)
    raise RefreshFailed(current, failure)


def _refresh_failed(failed: RefreshFailed, *, force: bool) -> PageroToken:
    """After the lock: report the failure and raise it, or fall back on a still-valid token."""
    current, failure = failed.row, failed.failure
    service = isinstance(failure, SERVICE_ERRORS)
    if failed.reported or not service:
        _report_failure(current, failure)
    if service and not force and not current.is_access_token_expired():
        logger.info(
            "Pagero refresh of token %s failed; its access token is still valid, using it",
            current.fingerprint,
        )
        return current
    raise failure


def _report_failure(token: PageroToken, failure: PageroOAuthError) -> None:
    """Log ``failure``; send ``token_refresh_failed`` with the nearest reason the signal has."""
    reason = nearest_reason(failure, ("reauthorization_required", "unavailable", "configuration"))
    logger.warning("Pagero refresh of token %s failed (%s): %s", token.fingerprint, reason, failure)
    token_refresh_failed.send(
        PageroToken, token=token, user=token.user, reason=reason, error=failure
    )


def refresh_now(token: PageroToken) -> PageroToken:
    """Force one refresh of ``token`` through the single-flight path (admin, commands); an
    inactive user's token is refused under the lock, before Pagero is called."""
    return refresh(token, force=True)


__all__ = [
    "Revocation",
    "aget_valid_token",
    "arefresh",
    "get_valid_token",
    "locked_token",
    "refresh",
    "refresh_now",
    "revoke",
]
