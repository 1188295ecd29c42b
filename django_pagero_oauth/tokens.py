"""The token lifecycle: the ONE way to get a user a valid access token, and to revoke it.

Pagero's refresh tokens are single-use, so refreshing is *single-flight* across threads,
processes and hosts: one caller takes the row's refresh lease (:mod:`.lease`), calls Pagero with
no transaction open and stores the answer only on the row that still holds the refresh token it
spent; callers whose access token still works go on with it, the others wait for the lease.
Middleware, decorator, mixin, API client, admin action and management commands all call
:func:`get_valid_token` (or :func:`refresh` for a forced refresh).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connections, router, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import lease, oauth
from .conf import app_settings
from .crypto import fingerprint
from .exceptions import (
    SERVICE_ERRORS,
    OAuthErrorResponse,
    PageroAuthorizationRequired,
    PageroOAuthError,
    PageroUnavailable,
    TokenDecryptionError,
    TokenGone,
    TokenLockTimeout,
    nearest_reason,
)
from .models import PageroToken, refresh_token_expiry
from .signals import token_refresh_failed, token_refreshed, token_revoked

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
    from django.http import HttpResponseBase

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
    """The user's stored token, if it can be used or refreshed; else why not."""
    if user is None or not user.is_authenticated or not user.is_active:
        raise PageroAuthorizationRequired("The user is anonymous or inactive.")
    token = _token_of(user)
    if token is None:
        raise PageroAuthorizationRequired("The user has not connected to Pagero.")
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


def _token_of(user: AbstractBaseUser) -> PageroToken | None:
    """The user's token: the one loaded with the user for this request, else one indexed query
    (which re-reads the user's ``is_active``).

    The hot path: only the access token is decrypted; the refresh token is read, under the
    lock, only when a refresh is due. The access token is decrypted here, so that a token that
    cannot be decrypted (its key was lost, or the value was copied from another row) raises
    ``UndecryptableToken``, a :class:`PageroAuthorizationRequired`, not an error in the view.
    """
    token: PageroToken | None
    if getattr(user, PRELOADED, False) and _USER_RELATION.is_cached(user):
        token = cast("PageroToken | None", _USER_RELATION.get_cached_value(user))
    else:
        try:
            # Read where writes go: a lagging read replica may still hold a token
            # disconnected, or a user deactivated, on the primary.
            token = (
                PageroToken.objects.db_manager(router.db_for_write(PageroToken))
                .defer("refresh_token", "id_token")
                .select_related("user")
                .get(user_id=user.pk)
            )
        except PageroToken.DoesNotExist:
            return None
        if not token.user.is_active:
            # The row's user, not the caller's object: a job may hold a user loaded before the
            # deactivation (the join costs no query).
            raise PageroAuthorizationRequired("The user is inactive.")
    if token is not None:
        token.access_token  # noqa: B018 (decrypts it, see above)
    return token


async def aget_valid_token(
    user: AbstractBaseUser | AnonymousUser | None, *, force_refresh: bool = False
) -> PageroToken:
    """:func:`get_valid_token` for async code.

    The read runs in Django's shared sync thread (as every ORM call from async code does); a
    refresh, which waits for Pagero, runs on a worker thread with a database connection of its
    own, closed afterwards, so other requests' ORM calls do not queue behind it. (Only when the
    shared thread is inside a transaction, e.g. a test case's, whose rows another connection
    cannot see, does the refresh run there.)
    """
    with about_user(getattr(user, "pk", None)):
        token, in_transaction = await sync_to_async(_read_for_async, thread_sensitive=True)(user)
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


def _read_for_async(user: AbstractBaseUser | AnonymousUser | None) -> tuple[PageroToken, bool]:
    token = _stored_token(user)
    return token, _in_atomic_block()


def _refresh_on_own_thread(token: PageroToken, *, force: bool) -> PageroToken:
    """:func:`refresh` on a worker thread; this thread's database connections end with it."""
    try:
        return refresh(token, force=force)
    finally:
        connections.close_all()


@contextmanager
def locked_token(pk: Any, *, with_secrets: bool = True) -> Iterator[PageroToken | None]:
    """A transaction holding the write lock on one token row; yields the row as committed now.

    ``with_secrets=False`` leaves the encrypted columns unloaded (and undecrypted): enough to
    delete a token whose encryption key was lost.

    What the block writes is committed when it ends, even inside the caller's own transaction
    (which is left untouched): see ``lease.durable_place``. A refresh in flight holds no
    row lock but a lease (:mod:`.lease`); it stores its answer only while the row still holds
    the refresh token it spent, so what the block writes is never overwritten by a stale one.
    """
    with lease.row_lock(pk, with_secrets=with_secrets) as (current, _durable):
        yield current


def _after_commit(durable: bool, send: Callable[[], object]) -> None:
    """Send a signal now if the write it reports is committed, else when the caller commits."""
    if durable:
        send()
    else:
        transaction.on_commit(send, using=router.db_for_write(PageroToken))


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
    caller's own transaction (see ``lease.durable_place``).
    """
    seen_access_token = token.access_token
    with about_user(token.user_id):
        try:
            with lease.durable_place(token.pk) as durable:
                outcome = _single_flight(token, force=force, seen_access_token=seen_access_token)
        except TokenLockTimeout as exc:
            # Nothing was sent to Pagero; the caller's copy is as good as it was.
            return _refresh_failed(token, exc, force=force, reported=True)
        if isinstance(outcome, _Failed):
            return _refresh_failed(
                outcome.row, outcome.failure, force=force, reported=outcome.report
            )
    fresh, refreshed = outcome
    if refreshed:
        _after_commit(
            durable, lambda: token_refreshed.send(PageroToken, token=fresh, user=fresh.user)
        )
    return fresh


@dataclass(frozen=True)
class _Failed:
    """A refresh that failed: the row it was about, and whether to report it (a back-off's
    failure was reported when it started)."""

    row: PageroToken
    failure: PageroOAuthError
    report: bool = True


@dataclass(frozen=True)
class _Turn:
    """What the caller does, decided under the row lock: nothing (the row is fine), wait
    (``busy``: another holds the lease), fail at once (a back-off runs) or refresh (``held``)."""

    row: PageroToken
    busy: bool = False
    failure: PageroOAuthError | None = None
    held: lease.Lease | None = None


@sensitive_variables("seen_access_token")
def _single_flight(
    token: PageroToken, *, force: bool, seen_access_token: str
) -> tuple[PageroToken, bool] | _Failed:
    """Take turns on the row until it is fine, has failed, or this caller refreshed it.

    A caller whose access token still works only tries to take the lease, in one statement,
    and only if no other caller of this process is trying: if another caller has it (or has
    just refreshed), it goes on with the token it has. A caller whose token has expired tries
    the same; if another caller has the lease, it waits for it to end and reads the row again,
    without a lock.
    """
    if force:
        return _take_turns(token, force, seen_access_token, None)
    if token.is_access_token_expired():
        held = None if _lease_running(token) else lease.try_take(token)
        if held is None:  # another caller holds the lease, or has just refreshed
            lease.Waiter(token.pk).wait()
            settled = _settled(token.pk, force, seen_access_token)
            if settled is not None:
                return settled, False
        return _take_turns(token, force, seen_access_token, held)
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
    token: PageroToken, force: bool, seen_access_token: str, held: lease.Lease | None
) -> tuple[PageroToken, bool] | _Failed:
    """Take turns on the row (see :func:`_take_turn`) until it is fine, has failed, or this
    caller refreshed it; between turns, wait while another holds the lease."""
    waiter = lease.Waiter(token.pk)
    while True:
        turn = _take_turn(token, force, seen_access_token, held)
        if turn.held is None and held is not None:
            lease.release(held)  # the row changed meanwhile: no refresh after all
        held = None
        if turn.failure is not None:
            return _Failed(turn.row, turn.failure, report=False)
        if turn.held is not None:
            return _refresh_with_lease(turn.row, turn.held)
        if not turn.busy or (not force and not turn.row.is_access_token_expired()):
            return turn.row, False
        waiter.wait()
        settled = _settled(token.pk, force, seen_access_token)
        if settled is not None:
            return settled, False


@sensitive_variables("seen_access_token")
def _settled(pk: Any, force: bool, seen_access_token: str) -> PageroToken | None:
    """After a wait: the row as committed now (read without a lock), if it needs nothing more."""
    manager = PageroToken.objects.db_manager(router.db_for_write(PageroToken))
    row = manager.select_related("user").defer("refresh_token", "id_token").filter(pk=pk).first()
    current = _refreshable(row)
    if force and current.access_token != seen_access_token:
        return current
    if not force and not current.access_token_needs_refresh():
        return current
    return None


@sensitive_variables("seen_access_token")
def _take_turn(
    token: PageroToken, force: bool, seen_access_token: str, held: lease.Lease | None
) -> _Turn:
    """One short committed transaction: lock the row, decide, take the lease if it is free (or
    keep ``held``, the lease this caller already holds). The lease is taken as ``mine``, one
    owner for every run of the transaction: a run whose COMMIT was acknowledged to nobody left
    a lease that the next run recognises as its own."""
    mine = held or lease.Lease(token.pk, lease.new_owner())

    def decide() -> _Turn:
        using = router.db_for_write(PageroToken)
        current = _refreshable(lease.locked_row(using, token.pk))
        if force and current.access_token != seen_access_token:
            return _Turn(current)  # somebody refreshed after the rejected access token was read
        if not force and not current.access_token_needs_refresh():
            return _Turn(current)  # somebody refreshed while this caller waited
        if lease.held_by_other(current, mine):
            return _Turn(current, busy=True)
        backoff = None if force else lease.backoff_remaining(current)
        if backoff is not None:
            return _Turn(current, failure=backoff.failure())
        return _Turn(current, held=held or lease.take(current, mine.owner))

    try:
        try:
            turn = lease.durably(decide, budget=1.0)
        except lease.RETRIED as exc:
            raise TokenLockTimeout(lease.LOCK_TIMEOUT_MESSAGE) from exc
    except BaseException:
        lease.release(mine)  # held, or perhaps taken by a run whose COMMIT went unacknowledged
        raise
    if turn.held is None and held is None and turn.row.refresh_lease_owner == mine.owner:
        lease.release(mine)  # an unacknowledged run took it, and this run decided otherwise
    return turn


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
def _refresh_with_lease(
    current: PageroToken, held: lease.Lease
) -> tuple[PageroToken, bool] | _Failed:
    """Spend the refresh token of ``current`` once, holding the lease and no transaction.

    On failure nothing is written but the re-authorization mark after ``invalid_grant``; the
    lease ends either way (after the back-off started, so that the waiters see it).
    """
    used_refresh_token = current.refresh_token
    response: oauth.TokenResponse | None = None
    try:
        with lease.kept(held, oauth.request_deadline()):
            response = oauth.refresh_access_token(used_refresh_token)
    except OAuthErrorResponse as exc:
        if exc.error == "invalid_grant":
            return _after_invalid_grant(current, used_refresh_token, held, exc)
        failure: PageroOAuthError = PageroUnavailable(
            exc.description, error=exc.error, status_code=exc.status_code
        )
    except SERVICE_ERRORS as exc:  # the token is kept; rejected credentials back off too
        failure = exc
    except BaseException:
        if response is None:
            lease.release(held)
        else:  # an interrupt while the keeper ended: the answer is in hand, store it
            _store_before_leaving(current, used_refresh_token, held, response)
        raise
    else:
        # Stored first: the answer holds the only copy of the rotated refresh token, and the
        # back-off lives in a cache that may fail.
        stored = _store_answer(current, used_refresh_token, held, response)
        if not isinstance(stored, _Failed):
            lease.end_backoff(current)
        return stored
    try:
        lease.start_backoff(current, failure)  # type: ignore[arg-type]
    finally:
        lease.release(held)
    return _Failed(current, failure)


@sensitive_variables("used_refresh_token")
def _after_invalid_grant(
    current: PageroToken, used_refresh_token: str, held: lease.Lease, exc: OAuthErrorResponse
) -> tuple[PageroToken, bool] | _Failed:
    """Mark the row dead, unless it holds another refresh token by now (then use that).

    Not so after taking over a lease that ran out without being ended: its holder may be alive
    (paused), have spent this same refresh token, and still store Pagero's answer to it. Then
    the row keeps its token, the failure is :class:`PageroUnavailable` with a back-off, and the
    next refresh, on a lease taken afresh, decides.
    """

    def mark() -> PageroToken | None:
        survivor = _reread_after_invalid_grant(current, used_refresh_token)
        if survivor is None and not held.took_over:
            current.mark_reauthorization_required("invalid_grant")
        return survivor

    try:
        survivor = lease.durably(mark, budget=app_settings.TIMEOUT)
    finally:
        lease.release(held)
    if survivor is not None:
        return survivor, False
    if held.took_over:
        logger.warning(
            "Pagero refresh of token %s: invalid_grant after taking over a lease that ran out; "
            "its holder may still store the answer, so the token is kept",
            current.fingerprint,
        )
        unsure = PageroUnavailable("a refresh that ran out of time may still be storing")
        lease.start_backoff(current, unsure)
        return _Failed(current, unsure)
    failure = PageroAuthorizationRequired(
        "Pagero rejected the refresh token; the user must log in again.",
        status_code=exc.status_code,
    )
    return _Failed(current, failure)


@sensitive_variables("used_refresh_token", "response")
def _store_answer(
    current: PageroToken, used_refresh_token: str, held: lease.Lease, response: oauth.TokenResponse
) -> tuple[PageroToken, bool] | _Failed:
    """Store Pagero's answer in a new short transaction, only on the row that still holds the
    refresh token that was spent, and end the lease with it. A broken connection is replaced
    and the transaction tried again, for half a lease's length: the lease was extended at most
    a quarter of one ago (``lease.kept``), so the retries end before it does."""

    def write() -> tuple[PageroToken | None, bool | None]:
        row = lease.locked_row(router.db_for_write(PageroToken), current.pk)
        if row is not None and _holds_answer(row, response, used_refresh_token):
            # An earlier run of this write committed, and its acknowledgement was lost (or an
            # ``on_commit`` hook raised a database error): stored, so nothing to do again.
            lease.clear(row, held)
            _update_without_signals(row, cast(str, row._state.db), _LEASE_FIELDS)
            return row, row.access_token == response.access_token
        if row is None or not _still_holds(row, used_refresh_token):
            return row, None
        lease.clear(row, held)
        return row, _store_refresh_answer(row, response)

    try:
        row, stored = lease.durably(write, budget=lease.lease_seconds() / 2)
    except lease.RETRIED as exc:
        lease.release(held)
        logger.error(
            "Pagero refresh of token %s: the database did not take the answer (%s); the new "
            "refresh token is lost",
            current.fingerprint,
            type(exc).__name__,
        )
        raise PageroUnavailable("the refresh answer could not be stored") from None
    except BaseException:  # SystemExit from a signal handler, KeyboardInterrupt: rolled back
        _store_before_leaving(current, used_refresh_token, held, response)
        raise
    lease.released()
    if stored is None:
        lease.release(held)
        return _answer_unwanted(current, row, response, used_refresh_token)
    if stored and response.has_access_token:
        return cast(PageroToken, row), True
    # Pagero rotated, and the new refresh token is stored; there is no usable access token.
    failure = PageroUnavailable("Pagero's refresh answer could not be used in full")
    lease.start_backoff(cast(PageroToken, row), failure)
    return _Failed(cast(PageroToken, row), failure)


@sensitive_variables("used_refresh_token", "response", "new_refresh_token")
def _store_before_leaving(
    current: PageroToken, used_refresh_token: str, held: lease.Lease, response: oauth.TokenResponse
) -> None:
    """An interrupt ended the store and rolled it back: write at least the new refresh token
    (:func:`_store_refresh_token_only`) on the row that still holds the spent one, and end the
    lease, before the interrupt goes on. A failure here is logged; the interrupt is raised."""
    using = router.db_for_write(PageroToken)

    new_refresh_token = response.refresh_token

    def write() -> None:
        row = lease.locked_row(using, current.pk)
        if row is not None and new_refresh_token and _still_holds(row, used_refresh_token):
            lease.clear(row, held)
            _store_refresh_token_only(row, new_refresh_token, using)

    try:
        if new_refresh_token:
            lease.durably(write, budget=1.0)
    except Exception as exc:
        logger.error(
            "Pagero refresh of token %s: interrupted, and the new refresh token could not be "
            "stored (%s)",
            current.fingerprint,
            type(exc).__name__,
        )
    finally:
        lease.release(held)


@sensitive_variables("response", "issued", "used_refresh_token")
def _holds_answer(row: PageroToken, response: oauth.TokenResponse, used_refresh_token: str) -> bool:
    """The row holds the refresh token of ``response``, Pagero's rotation of the spent one:
    the answer is stored (in full, or by :func:`_store_refresh_token_only`). Never so for an
    answer that echoes the spent refresh token (RFC 6749 section 6 allows it): the row holds
    that one before the store too, and the conditional store (on the spent token) writes it."""
    issued = response.refresh_token
    return bool(issued) and issued != used_refresh_token and _still_holds(row, cast(str, issued))


#: The lease's columns, written when an answer found already stored ends the lease.
_LEASE_FIELDS = ("refresh_lease_until", "refresh_lease_owner")


@sensitive_variables("used_refresh_token")
def _still_holds(row: PageroToken, used_refresh_token: str) -> bool:
    """The row still holds the refresh token that was spent (not a newer login's)."""
    try:
        return bool(row.refresh_token == used_refresh_token)
    except TokenDecryptionError:  # written with a key this process lacks: not what it spent
        return False


@sensitive_variables("response", "used_refresh_token")
def _answer_unwanted(
    current: PageroToken,
    row: PageroToken | None,
    response: oauth.TokenResponse,
    used_refresh_token: str,
) -> tuple[PageroToken, bool]:
    """The row was deleted or replaced (a disconnect, a new login) while Pagero answered: the
    new refresh token belongs to nothing, so it is revoked (best effort, with ``REVOKE_URL``);
    never one the row holds.

    A row a new login replaced is left alone with ``REVOKE_REPLACED_TOKEN`` off: that setting
    is for a server that revokes the whole grant with one refresh token, which here would end
    the connection the user has just made. The orphan then stays valid at Pagero (logged). So
    is a row deleted (a disconnect) when the user has a connection again by now (a new row).
    """
    orphan = response.refresh_token
    if orphan and app_settings.REVOKE_URL:
        label = fingerprint(orphan)
        if row is None and not _connected_now(current):
            _revoke_best_effort(orphan, label, "disconnected meanwhile")
        elif row is None or not _holds_answer(row, response, used_refresh_token):
            if app_settings.REVOKE_REPLACED_TOKEN:
                _revoke_best_effort(orphan, label, "replaced meanwhile")
            else:
                logger.warning(
                    "Pagero token %s, replaced by a new login while refreshed, is not revoked "
                    "(REVOKE_REPLACED_TOKEN is off)",
                    label,
                )
    if row is None:
        raise TokenGone("The user has no Pagero connection any more.")
    return row, False


def _connected_now(current: PageroToken) -> bool:
    """The user of ``current`` has a Pagero connection now (a row of its own, not ``current``'s
    necessarily: a disconnect and a new login make a new one)."""
    manager = PageroToken.objects.db_manager(router.db_for_write(PageroToken))
    return manager.filter(user_id=current.user_id).exists()


@sensitive_variables("response")
def _store_refresh_answer(current: PageroToken, response: oauth.TokenResponse) -> bool:
    """Save a refresh answer on the locked row ``current``; False if only part of it was saved.

    Pagero has already spent the old single-use refresh token, so whatever else fails, the new
    one must be stored. The answer is saved with ``save()``, so the project's ``pre_save`` and
    ``post_save`` receivers run as for any save. If that fails (a receiver raises: its audit
    service is down; a value some database cannot hold; a bug), the row is written again
    WITHOUT model signals (``QuerySet.update()``, the values encrypted for the row as ``save()``
    would): first the whole answer, and if even that fails, only the new refresh token, its
    fingerprint and lifetime, with the access token expired (the next use refreshes). A
    receiver's failure is logged (its class name) and can never roll back a rotated token.
    """
    using = current._state.db or router.db_for_write(PageroToken)
    applied = False
    try:
        with transaction.atomic(using=using):  # a savepoint: the fallback below needs the lock
            current.apply_token_response(response)
            current.last_refreshed = current.access_token_issued_at
            applied = True
            current.save(using=using)
        return True
    except Exception as exc:
        if not response.refresh_token:
            raise
        failure = exc
    try:
        if not applied:  # a half-applied answer is never written
            raise failure
        logger.error(
            "Pagero refresh of token %s: saving the answer failed (%s); writing it without "
            "model signals",
            current.fingerprint,
            type(failure).__name__,
        )
        with transaction.atomic(using=using):
            _update_without_signals(current, using, _ANSWER_FIELDS)
        return True
    except Exception as exc:
        logger.error(
            "Pagero refresh of token %s: the answer could not be stored (%s); storing only the "
            "new refresh token",
            current.fingerprint,
            type(exc).__name__,
        )
    _store_refresh_token_only(current, response.refresh_token, using)
    return False


@sensitive_variables("refresh_token")
def _store_refresh_token_only(current: PageroToken, refresh_token: str, using: str) -> None:
    """The last resort: the new refresh token, its fingerprint and lifetime, with the access
    token expired (the next use refreshes); ``current`` is read back."""
    now = timezone.now()
    row = PageroToken.objects.db_manager(using).get(pk=current.pk)
    row.refresh_token = refresh_token
    row.fingerprint = fingerprint(refresh_token)
    row.refresh_token_expires_at = refresh_token_expiry(now)
    row.access_token = ""
    row.access_token_issued_at = row.access_token_expires_at = now
    row.refresh_lease_until = current.refresh_lease_until
    row.refresh_lease_owner = current.refresh_lease_owner
    _update_without_signals(row, using, _TOKEN_ONLY_FIELDS)
    current.refresh_from_db(using=using)


#: The columns :func:`_store_refresh_token_only` writes.
_TOKEN_ONLY_FIELDS = (
    "refresh_token",
    "fingerprint",
    "refresh_token_expires_at",
    "access_token",
    "access_token_issued_at",
    "access_token_expires_at",
    "refresh_lease_until",
    "refresh_lease_owner",
    "updated",
)


#: The columns a refresh answer writes (``apply_token_response``, ``last_refreshed``), and
#: ``updated``.
_ANSWER_FIELDS = tuple(
    field.name
    for field in PageroToken._meta.concrete_fields
    if not field.primary_key and field.name not in ("user", "created")
)


def _update_without_signals(row: PageroToken, using: str, names: tuple[str, ...]) -> None:
    """Write ``row``'s ``names`` columns with one ``UPDATE``: no ``pre_save``/``post_save``.

    Each value is prepared by its field's ``pre_save`` as ``save()`` would: an
    :class:`~.crypto.EncryptedTextField` encrypts it for this row (``crypto.bound_context``),
    ``auto_now`` sets the time.
    """
    values = {}
    for name in names:
        field = PageroToken._meta.get_field(name)
        values[field.attname] = field.pre_save(row, add=False)  # type: ignore[union-attr]
    PageroToken.objects.db_manager(using).filter(pk=row.pk).update(**values)


def _refresh_failed(
    current: PageroToken, failure: PageroOAuthError, *, force: bool, reported: bool
) -> PageroToken:
    """After the lock: report ``failure`` and raise it, or fall back on a still-valid token."""
    if not isinstance(failure, SERVICE_ERRORS):
        _report_failure(current, failure)
        raise failure
    if reported:
        _report_failure(current, failure)
    if not force and not current.is_access_token_expired():
        logger.info(
            "Pagero refresh of token %s failed; its access token is still valid, using it",
            current.fingerprint,
        )
        return current
    raise failure


@sensitive_variables()
def _reread_after_invalid_grant(
    current: PageroToken, used_refresh_token: str
) -> PageroToken | None:
    """After ``invalid_grant``, look again: another writer may have rotated the token just now.

    With the lease held that cannot happen through this module, but a writer that bypasses it
    (a new login replacing the token) might have. Call it in a transaction: the row is locked.
    A row deleted meanwhile (a disconnect) is :class:`TokenGone`: there is nothing to mark.
    """
    # The database the lock is on, never a read replica that may not have the rotation yet.
    manager = PageroToken.objects.db_manager(current._state.db)
    fresh: PageroToken | None = manager.filter(pk=current.pk).locked().first()
    if fresh is None:
        raise TokenGone("The user has no Pagero connection any more.")
    if fresh.refresh_token != used_refresh_token and not fresh.needs_reauthorization:
        logger.info(
            "Pagero refresh: token %s was rotated concurrently; using it", fresh.fingerprint
        )
        return fresh
    return None


def _report_failure(token: PageroToken, failure: PageroOAuthError) -> None:
    """Log ``failure``; send ``token_refresh_failed`` with the nearest reason the signal has."""
    reason = nearest_reason(failure, ("reauthorization_required", "unavailable", "configuration"))
    logger.warning("Pagero refresh of token %s failed (%s): %s", token.fingerprint, reason, failure)
    token_refresh_failed.send(
        PageroToken, token=token, user=token.user, reason=reason, error=failure
    )


@dataclass(frozen=True)
class Revocation:
    """What :func:`revoke` did."""

    #: Pagero confirmed the revocation (RFC 7009 2.2).
    remote: bool
    #: Why Pagero was not told (empty when it was): "no_revoke_url" or "local_only".
    skipped_because: str = ""


@sensitive_variables()
def revoke(token: PageroToken, *, local_only: bool = False) -> Revocation:
    """Revoke ``token`` at Pagero (when ``REVOKE_URL`` is set) and delete it locally.

    Holds the row lock, so a refresh in flight cannot rotate the refresh token underneath.
    If Pagero cannot confirm (503, network error, an OAuth error), the token is KEPT and the
    error is raised; ``local_only=True`` deletes without telling Pagero. Like a refresh, the
    deletion is committed before this returns, also inside the caller's transaction.
    """
    user = token.user
    tell_pagero = not local_only and bool(app_settings.REVOKE_URL)
    with lease.row_lock(token.pk, with_secrets=tell_pagero) as (current, durable):
        if current is None:
            return Revocation(remote=False, skipped_because="already_deleted")
        if tell_pagero:
            oauth.revoke_token(current.refresh_token, token_type_hint="refresh_token")
            result = Revocation(remote=True)
        else:
            why = "local_only" if local_only else "no_revoke_url"
            result = Revocation(remote=False, skipped_because=why)
        current.delete()
        current.pk = token.pk
    _after_commit(
        durable,
        lambda: token_revoked.send(PageroToken, token=current, user=user, remote=result.remote),
    )
    logger.info("Pagero token %s deleted (remote revocation: %s)", token.fingerprint, result.remote)
    return result


@sensitive_variables("previous")
def revocable_refresh_token(user_pk: Any, *, using: str) -> tuple[str, str] | None:
    """The user's stored refresh token and its fingerprint, when it is worth revoking.

    For a login that is about to replace the token, or a user about to be deleted: call it in
    that transaction (the row stays locked, so no refresh rotates the token meanwhile). ``None``
    without ``REVOKE_URL``, without a token, for a dead one (nothing to revoke), and for one that
    cannot be decrypted (a lost key; logged): that must never stop the login or the delete.
    """
    if not app_settings.REVOKE_URL:
        return None
    try:
        previous = PageroToken.objects.db_manager(using).filter(user_id=user_pk).locked().first()
        if previous is None or previous.needs_reauthorization or not previous.refresh_token:
            return None
        return previous.refresh_token, previous.fingerprint
    except TokenDecryptionError:
        logger.warning(
            "Pagero token of user #%s cannot be decrypted, so it cannot be revoked", user_pk
        )
        return None


@sensitive_variables("refresh_token")
def revoke_after_commit(refresh_token: str, *, fingerprint: str, using: str, why: str) -> None:
    """Revoke a refresh token this site is dropping, once the transaction on ``using`` commits.

    RFC 7009 2.1 at ``REVOKE_URL``; nothing happens if the transaction rolls back. A failure is
    logged (the fingerprint and the error code, never the token) and never raised: it must not
    fail, or block, the login or the delete that dropped the token.
    """

    @sensitive_variables()
    def revoke_now() -> None:
        _revoke_best_effort(refresh_token, fingerprint, why)

    transaction.on_commit(revoke_now, using=using, robust=True)


@sensitive_variables("refresh_token")
def revoke_after_response(response: HttpResponseBase, refresh_token: str, *, why: str) -> None:
    """Revoke a refresh token this site obtained but will not keep, once ``response`` is sent.

    For the tokens of a code exchange whose login was refused (an unknown or taken identity, an
    ``id_token`` that failed): nothing stores them, and left alone they would stay valid at
    Pagero for three years. RFC 7009 2.1 at ``REVOKE_URL`` (nothing without it), run when the
    server closes the response (WSGI and ASGI both do, after sending it), so the visitor never
    waits for it. A failure is logged (fingerprint and error code) and never raised.
    """
    if not app_settings.REVOKE_URL or not refresh_token:
        return
    label = fingerprint(refresh_token)
    close = response.close

    @sensitive_variables()
    def close_then_revoke() -> None:
        try:
            close()
        finally:
            _revoke_best_effort(refresh_token, label, why)

    response.close = close_then_revoke  # type: ignore[method-assign]


@sensitive_variables()
def revoke_unstored(refresh_token: str, *, why: str) -> None:
    """Revoke at once, best effort, a refresh token this site obtained and could not store.

    For a code exchange whose answer failed to be stored (unusable ``ENCRYPTION_KEYS``, a
    database error, a bug): stored nowhere, it would stay valid at Pagero for three years.
    RFC 7009 2.1 at ``REVOKE_URL`` (nothing without it). Never raises: the caller re-raises its
    own error. The log names it by its fingerprint, or not at all when the keys that make one
    are what failed.

    The error may have come after the store committed (the COMMIT's acknowledgement lost, an
    ``on_commit`` hook raising): a token the database holds, committed, is never revoked.
    """
    if not app_settings.REVOKE_URL or not refresh_token:
        return
    try:
        label = fingerprint(refresh_token)
    except Exception:  # the keys themselves may be what failed
        label = "(no fingerprint: the encryption keys are unusable)"
    else:
        if _stored_committed(refresh_token, label):
            logger.info("Pagero token %s is stored after all; not revoked (%s)", label, why)
            return
    _revoke_best_effort(refresh_token, label, why)


@sensitive_variables("refresh_token")
def _stored_committed(refresh_token: str, label: str) -> bool:
    """A committed row holds ``refresh_token`` (fingerprint ``label``): read on the write
    database, on a new connection if the old one broke. False when that cannot be known (the
    caller's transaction is open, so a row it sees may yet roll back; the database is down)."""
    using = router.db_for_write(PageroToken)
    if connections[using].in_atomic_block:
        return False

    def look() -> bool:
        rows = PageroToken.objects.db_manager(using).filter(fingerprint=label)
        return any(_still_holds(row, refresh_token) for row in rows)

    try:
        return lease.durably(look, budget=1.0)
    except Exception:
        logger.warning("Pagero token %s: whether it is stored cannot be read", label)
        return False


@sensitive_variables("refresh_token")
def _revoke_best_effort(refresh_token: str, label: str, why: str) -> None:
    """Revoke a refresh token this site drops (RFC 7009 2.1); a failure is logged (the
    fingerprint ``label`` and the error code, never the token) and never raised."""
    try:
        oauth.revoke_token(refresh_token, token_type_hint="refresh_token")
    except PageroOAuthError as exc:
        logger.warning(
            "Pagero revocation of token %s (%s) failed, it stays valid at Pagero: %s",
            label,
            why,
            exc.error,
        )
    except Exception:  # never let a revocation break a commit's or a server's cleanup
        logger.exception("Pagero revocation of token %s (%s) failed", label, why)
    else:
        logger.info("Pagero token %s revoked (%s)", label, why)


@sensitive_variables("previous")
def revoke_on_user_delete(sender: Any, instance: Any, using: str, **kwargs: Any) -> None:
    """``pre_delete`` receiver (of every model; it keeps to the user model and its proxies):
    revoke the user's refresh token at Pagero after the delete commits (the row itself goes
    with the user, ``on_delete=CASCADE``)."""
    meta = getattr(instance, "_meta", None)
    if meta is None or meta.concrete_model is not get_user_model():
        return
    previous = revocable_refresh_token(instance.pk, using=using)
    if previous is not None:
        revoke_after_commit(previous[0], fingerprint=previous[1], using=using, why="user deleted")


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
    "revocable_refresh_token",
    "revoke",
    "revoke_after_commit",
    "revoke_after_response",
    "revoke_on_user_delete",
    "revoke_unstored",
]
