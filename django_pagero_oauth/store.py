"""Storing Pagero's refresh answer once, on the row that still holds the spent refresh token.

The answer holds the only copy of the rotated refresh token: it is stored whatever else fails (a
``save()`` receiver, a broken connection, an interrupt), at the least the new refresh token.
"""

from __future__ import annotations

import logging
from typing import cast

from django.db import router, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import lease, oauth
from .conf import app_settings
from .crypto import fingerprint
from .durable import RETRIED, durably, locked_row
from .exceptions import (
    OAuthErrorResponse,
    PageroAuthorizationRequired,
    PageroOAuthError,
    PageroUnavailable,
    TokenGone,
)
from .models import PageroToken, refresh_token_expiry
from .revocation import revoke_best_effort

logger = logging.getLogger("django_pagero_oauth")


class RefreshFailed(Exception):
    """A refresh failed after its caller took its turn: ``failure``, about ``row`` as read under
    the lock. ``reported`` is False for the failure of a running back-off (reported when the
    back-off started)."""

    def __init__(self, row: PageroToken, failure: PageroOAuthError, *, reported: bool = True):
        super().__init__()
        self.row, self.failure, self.reported = row, failure, reported


@sensitive_variables("used_refresh_token", "response")
def store_answer(
    current: PageroToken, used_refresh_token: str, held: lease.Lease, response: oauth.TokenResponse
) -> tuple[PageroToken, bool]:
    """Store Pagero's answer in a new short transaction, only on the row that still holds the
    spent refresh token, and end the lease with it; return the row and whether it holds the
    answer's access token. A broken connection is replaced and the transaction run again for
    half a lease's length: the lease was extended at most a quarter of one ago (``lease.kept``),
    so the retries end before it does. :class:`RefreshFailed` (with a back-off) when only the
    new refresh token could be stored; :class:`TokenGone` when the row was deleted meanwhile.
    """

    def write() -> tuple[PageroToken | None, bool | None]:
        row = locked_row(router.db_for_write(PageroToken), current.pk)
        if row is not None and _holds_answer(row, response, used_refresh_token):
            # An earlier run of this write committed, its acknowledgement lost (or an
            # ``on_commit`` hook raised a database error): only the lease is left to end.
            lease.clear(row, held)
            lease_fields = ("refresh_lease_until", "refresh_lease_owner")
            _update_without_signals(row, cast(str, row._state.db), lease_fields)
            return row, row.access_token == response.access_token
        if row is None or not row.holds_refresh_token(used_refresh_token):
            return row, None
        lease.clear(row, held)
        return row, _store_refresh_answer(row, response)

    try:
        row, stored = durably(write, budget=lease.lease_seconds() / 2)
    except RETRIED as exc:
        lease.release(held)
        logger.error(
            "Pagero refresh of token %s: the database did not take the answer (%s); the new "
            "refresh token is lost",
            current.fingerprint,
            type(exc).__name__,
        )
        raise PageroUnavailable("the refresh answer could not be stored") from None
    except BaseException:  # SystemExit from a signal handler, KeyboardInterrupt: rolled back
        store_before_leaving(current, used_refresh_token, held, response)
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
    raise RefreshFailed(cast(PageroToken, row), failure)


@sensitive_variables("used_refresh_token")
def store_invalid_grant(
    current: PageroToken, used_refresh_token: str, held: lease.Lease, exc: OAuthErrorResponse
) -> tuple[PageroToken, bool]:
    """Pagero answered ``invalid_grant``: mark the row dead, unless it holds another refresh
    token by now (then use that); the lease ends either way. Not so after taking over a lease that ran out without being ended: its holder may be alive
    (paused), have spent this same refresh token, and still store Pagero's answer to it. Then
    the row keeps its token, the failure is :class:`PageroUnavailable` with a back-off, and the
    next refresh, on a lease taken afresh, decides.
    """

    def mark() -> PageroToken | None:
        survivor = _rotated_meanwhile(current, used_refresh_token)
        if survivor is None and not held.took_over:
            current.mark_reauthorization_required("invalid_grant")
        return survivor

    try:
        survivor = durably(mark, budget=app_settings.TIMEOUT)
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
        raise RefreshFailed(current, unsure)
    failure = PageroAuthorizationRequired(
        "Pagero rejected the refresh token; the user must log in again.",
        status_code=exc.status_code,
    )
    raise RefreshFailed(current, failure)


@sensitive_variables("used_refresh_token", "response", "new_refresh_token")
def store_before_leaving(
    current: PageroToken, used_refresh_token: str, held: lease.Lease, response: oauth.TokenResponse
) -> None:
    """An interrupt ended the store and rolled it back: write at least the new refresh token
    (:func:`_store_refresh_token_only`) on the row that still holds the spent one, and end the
    lease, before the interrupt goes on. A failure here is logged; the interrupt is raised."""
    using = router.db_for_write(PageroToken)
    new_refresh_token = response.refresh_token

    def write() -> None:
        row = locked_row(using, current.pk)
        if row is not None and new_refresh_token and row.holds_refresh_token(used_refresh_token):
            lease.clear(row, held)
            _store_refresh_token_only(row, new_refresh_token, using)

    try:
        if new_refresh_token:
            durably(write, budget=1.0)
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
    return (
        bool(issued) and issued != used_refresh_token and row.holds_refresh_token(cast(str, issued))
    )


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
            revoke_best_effort(orphan, label, "disconnected meanwhile")
        elif row is None or not _holds_answer(row, response, used_refresh_token):
            if app_settings.REVOKE_REPLACED_TOKEN:
                revoke_best_effort(orphan, label, "replaced meanwhile")
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

    The answer is saved with ``save()``, so the project's ``pre_save`` and ``post_save``
    receivers run as for any save. If that fails (a receiver raises: its audit service is down;
    a value some database cannot hold; a bug), the row is written again WITHOUT model signals
    (:func:`_update_without_signals`): first the whole answer, and if even that fails, only the
    new refresh token (:func:`_store_refresh_token_only`). A receiver's failure is logged (its
    class name) and can never roll back a rotated token.
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
        failure: Exception = exc
    if applied:  # a half-applied answer is never written
        logger.error(
            "Pagero refresh of token %s: saving the answer failed (%s); writing it without "
            "model signals",
            current.fingerprint,
            type(failure).__name__,
        )
        try:
            with transaction.atomic(using=using):
                _update_without_signals(current, using, _ANSWER_FIELDS)
            return True
        except Exception as exc:
            failure = exc
    logger.error(
        "Pagero refresh of token %s: the answer could not be stored (%s); storing only the "
        "new refresh token",
        current.fingerprint,
        type(failure).__name__,
    )
    _store_refresh_token_only(current, response.refresh_token, using)
    return False


@sensitive_variables("refresh_token")
def _store_refresh_token_only(current: PageroToken, refresh_token: str, using: str) -> None:
    """The last resort: the new refresh token, its fingerprint and lifetime, with the access
    token expired (the next use refreshes); ``current`` is read back."""
    now = timezone.now()
    row = PageroToken.objects.db_manager(using).get(pk=current.pk)
    changes = {
        "refresh_token": refresh_token,
        "fingerprint": fingerprint(refresh_token),
        "refresh_token_expires_at": refresh_token_expiry(now),
        "access_token": "",
        "access_token_issued_at": now,
        "access_token_expires_at": now,
        "refresh_lease_until": current.refresh_lease_until,
        "refresh_lease_owner": current.refresh_lease_owner,
    }
    for name, value in changes.items():
        setattr(row, name, value)
    _update_without_signals(row, using, (*changes, "updated"))
    current.refresh_from_db(using=using)


#: The columns a refresh answer writes (``apply_token_response``, ``last_refreshed``), and
#: ``updated``.
_ANSWER_FIELDS = tuple(
    field.name
    for field in PageroToken._meta.concrete_fields
    if not field.primary_key and field.name not in ("user", "created")
)


def _update_without_signals(row: PageroToken, using: str, names: tuple[str, ...]) -> None:
    """Write ``row``'s ``names`` columns with one ``UPDATE``: no ``pre_save``/``post_save``.
    Each value is prepared by its field's ``pre_save`` as ``save()`` would (encrypted for this
    row, ``auto_now``)."""
    values = {}
    for name in names:
        field = PageroToken._meta.get_field(name)
        values[field.attname] = field.pre_save(row, add=False)  # type: ignore[union-attr]
    PageroToken.objects.db_manager(using).filter(pk=row.pk).update(**values)


@sensitive_variables()
def _rotated_meanwhile(current: PageroToken, used_refresh_token: str) -> PageroToken | None:
    """After ``invalid_grant``, look again: another writer may have rotated the token just now.

    With the lease held that cannot happen through a refresh, but a writer that bypasses it
    (a new login replacing the token) might have. Call it in a transaction: the row is locked.
    A row deleted meanwhile (a disconnect) is :class:`TokenGone`: there is nothing to mark.
    """
    # The database the lock is on, never a read replica that may not have the rotation yet.
    fresh = locked_row(cast(str, current._state.db), current.pk)
    if fresh is None:
        raise TokenGone("The user has no Pagero connection any more.")
    if fresh.refresh_token != used_refresh_token and not fresh.needs_reauthorization:
        logger.info(
            "Pagero refresh: token %s was rotated concurrently; using it", fresh.fingerprint
        )
        return fresh
    return None
