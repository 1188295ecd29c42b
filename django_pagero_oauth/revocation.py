"""Revocation (RFC 7009): of a stored token (:func:`revoke`), and, best effort, of a refresh
token this site drops, obtains but will not keep, or could not store.

A best-effort revocation (RFC 7009 2.1 at ``REVOKE_URL``; nothing without it) is logged by the
token's fingerprint and the error code, never the token, and never raises: it must not fail, or
block, the login, delete or request that dropped the token.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import connections, router, transaction
from django.views.decorators.debug import sensitive_variables

from . import oauth
from .conf import app_settings
from .crypto import fingerprint
from .durable import durably, row_lock, send_when_committed
from .exceptions import PageroOAuthError, TokenDecryptionError
from .locking import write_locked
from .models import PageroToken
from .signals import token_revoked

if TYPE_CHECKING:
    from django.http import HttpResponseBase

logger = logging.getLogger("django_pagero_oauth")


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
    with row_lock(token.pk, with_secrets=tell_pagero) as (current, durable):
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
    send_when_committed(
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
        previous = write_locked(
            PageroToken.objects.db_manager(using).filter(user_id=user_pk)
        ).first()
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
    """Revoke a refresh token this site is dropping, once the transaction on ``using`` commits
    (nothing happens if it rolls back)."""

    @sensitive_variables()
    def revoke_now() -> None:
        revoke_best_effort(refresh_token, fingerprint, why)

    transaction.on_commit(revoke_now, using=using, robust=True)


@sensitive_variables("refresh_token")
def revoke_after_response(response: HttpResponseBase, refresh_token: str, *, why: str) -> None:
    """Revoke a refresh token this site obtained but will not keep, once ``response`` is sent.

    For the tokens of a code exchange whose login was refused (an unknown or taken identity, an
    ``id_token`` that failed): nothing stores them, and left alone they would stay valid at
    Pagero for three years. Run when the server closes the response (WSGI and ASGI both do,
    after sending it), so the visitor never waits for it.
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
            revoke_best_effort(refresh_token, label, why)

    response.close = close_then_revoke  # type: ignore[method-assign]


@sensitive_variables()
def revoke_unstored(refresh_token: str, *, why: str) -> None:
    """Revoke at once, best effort, a refresh token this site obtained and could not store.

    For a code exchange whose answer failed to be stored (unusable ``ENCRYPTION_KEYS``, a
    database error, a bug): stored nowhere, it would stay valid at Pagero for three years. The
    caller re-raises its own error. The log names the token by its fingerprint, or not at all
    when the keys that make one are what failed.

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
    revoke_best_effort(refresh_token, label, why)


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
        return any(row.holds_refresh_token(refresh_token) for row in rows)

    try:
        return durably(look, budget=1.0)
    except Exception:
        logger.warning("Pagero token %s: whether it is stored cannot be read", label)
        return False


@sensitive_variables("refresh_token")
def revoke_best_effort(refresh_token: str, label: str, why: str) -> None:
    """Revoke a refresh token this site drops, best effort; ``label`` is its fingerprint."""
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
