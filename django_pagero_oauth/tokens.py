"""The token lifecycle: the ONE way to get a user a valid access token, and to revoke it.

Pagero's refresh tokens are single-use: if two workers refresh with the same refresh token, one
of them gets ``invalid_grant`` and, if it then dropped the token, the user would be logged out
for good. So refreshing is *single-flight*: the refresher locks the user's row, re-reads it and
refreshes only if it is still expiring; everybody else waits on the lock, then sees the fresh
token and makes no call. This holds across threads, processes and hosts, because the lock is the
database's:

- PostgreSQL, MySQL, Oracle: ``SELECT ... FOR UPDATE`` on the row.
- SQLite (no row locks): the first statement of the transaction is a no-op ``UPDATE`` of the
  row, which takes SQLite's database write lock; other writers wait for it (up to the
  connection's ``timeout`` option, which should exceed ``PAGERO_OAUTH["TIMEOUT"]``).

Middleware, decorator, mixin, API client, admin action and management commands all call
:func:`get_valid_token` (or :func:`refresh` for a forced refresh).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from asgiref.sync import sync_to_async
from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.db import connections, router, transaction
from django.db.models import OneToOneRel
from django.views.decorators.debug import sensitive_variables

from . import oauth
from .conf import app_settings
from .exceptions import (
    OAuthErrorResponse,
    PageroAuthorizationRequired,
    PageroConfigurationError,
    PageroOAuthError,
    PageroUnavailable,
)
from .models import PageroToken
from .signals import token_refresh_failed, token_refreshed, token_revoked

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

logger = logging.getLogger("django_pagero_oauth")


def get_valid_token(
    user: AbstractBaseUser | AnonymousUser | None, *, force_refresh: bool = False
) -> PageroToken:
    """Return ``user``'s token, its access token valid for at least ``REFRESH_LEEWAY`` seconds.

    Refreshes single-flight when needed (or always, with ``force_refresh``, e.g. after the API
    answered 401). Raises :class:`PageroAuthorizationRequired` when the user must log in at
    Pagero (again) and :class:`PageroUnavailable` when Pagero cannot be used right now; in both
    cases the stored token is exactly as it was, unless Pagero definitely rejected the refresh
    token (``invalid_grant``), which marks it as needing re-authorization.
    """
    if user is None or not user.is_authenticated or not user.is_active:
        raise PageroAuthorizationRequired("The user is anonymous or inactive.")
    token = _token_of(user)
    if token is None:
        raise PageroAuthorizationRequired("The user has not connected to Pagero.")
    if token.needs_reauthorization:
        raise PageroAuthorizationRequired("The Pagero connection must be renewed by logging in.")
    if force_refresh or token.access_token_needs_refresh():
        token = refresh(token, force=force_refresh)
        if getattr(user, PRELOADED, False):
            _USER_RELATION.set_cached_value(user, token)
    return token


#: ``user.pagero_token``, whose cache holds the token ``PageroModelBackend`` loaded.
_USER_RELATION = cast(OneToOneRel, PageroToken._meta.get_field("user").remote_field)

#: Set on the users ``PageroModelBackend`` loads: only their cached token is trusted (any other
#: user object may hold a token assigned to it long ago).
PRELOADED = "_pagero_token_preloaded"


def _token_of(user: AbstractBaseUser) -> PageroToken | None:
    """The user's token: the one loaded with the user for this request, else one indexed query.

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
            token = PageroToken.objects.defer("refresh_token", "id_token").get(user_id=user.pk)
        except PageroToken.DoesNotExist:
            return None
    if token is not None:
        token.access_token  # noqa: B018 (decrypts it, see above)
    return token


async def aget_valid_token(
    user: AbstractBaseUser | AnonymousUser | None, *, force_refresh: bool = False
) -> PageroToken:
    """:func:`get_valid_token` for async code (runs it thread-sensitively)."""
    return await sync_to_async(get_valid_token, thread_sensitive=True)(
        user, force_refresh=force_refresh
    )


def _in_outer_transaction(using: str) -> bool:
    """True inside an atomic block of the caller's (not of a test case) on ``using``."""
    connection = connections[using]
    return connection.in_atomic_block and not all(
        getattr(block, "_from_testcase", False) for block in connection.atomic_blocks
    )


@contextmanager
def locked_token(pk: Any, *, with_secrets: bool = True) -> Iterator[PageroToken | None]:
    """A transaction holding the write lock on one token row; yields the row as committed now.

    ``with_secrets=False`` leaves the encrypted columns unloaded (and undecrypted): enough to
    delete a token whose encryption key was lost.

    Inside the caller's own transaction (e.g. ``ATOMIC_REQUESTS``) this is only a savepoint: the
    lock is held, and the write becomes durable, only when the outer transaction commits. If it
    rolls back after a refresh, the new single-use refresh token is lost, so that is logged.
    """
    using = router.db_for_write(PageroToken)
    manager = PageroToken.objects.db_manager(using)
    if _in_outer_transaction(using):
        logger.warning(
            "Pagero token lock taken inside an outer transaction: a refresh is committed only "
            "when it commits, and lost (with the user's connection) if it rolls back. Get the "
            "token before the transaction, e.g. with PageroTokenMiddleware."
        )
    # The user comes along (is_active is checked, signals carry it); only the token row is locked.
    queryset = manager.filter(pk=pk).select_related("user")
    if not with_secrets:
        queryset = queryset.without_secrets()
    with transaction.atomic(using=using):
        yield queryset.locked().first()


def _backoff_key(token: PageroToken) -> str:
    # Keyed by the refresh token's fingerprint too: a new login or a rotation starts afresh.
    return f"django_pagero_oauth:refresh-backoff:{token.pk}:{token.fingerprint}"


def _backoff_remaining(token: PageroToken) -> int | None:
    """Seconds left of the back-off after a recent transient failure, or None."""
    until = caches[DEFAULT_CACHE_ALIAS].get(_backoff_key(token))
    if until is None:
        return None
    remaining = int(until - time.time()) + 1
    return remaining if remaining > 0 else None


def _start_backoff(token: PageroToken, failure: PageroUnavailable) -> None:
    seconds = app_settings.REFRESH_FAILURE_BACKOFF
    if failure.retry_after:
        seconds = max(seconds, min(failure.retry_after, 300))
    if seconds > 0:
        caches[DEFAULT_CACHE_ALIAS].set(_backoff_key(token), time.time() + seconds, seconds)


@sensitive_variables("seen_access_token", "used_refresh_token", "response")
def refresh(token: PageroToken, *, force: bool = False) -> PageroToken:
    """Refresh ``token`` single-flight and return the current row.

    Without ``force``, refreshes only if the locked row still needs it. With ``force``,
    refreshes only if nobody replaced the access token since ``token`` was read, so N callers
    who all saw the same rejected access token cause one refresh, not N.

    After a transient failure, callers within ``REFRESH_FAILURE_BACKOFF`` seconds (or the
    server's ``Retry-After``) fail at once instead of queueing up to try again one by one; the
    back-off lives in Django's default cache, so a shared cache (Redis, Memcached) spreads it
    across processes and hosts. Either way, while the stored access token has not actually
    expired (it is only inside the leeway), a failed refresh returns it: it still works.
    """
    seen_access_token = token.access_token
    failure: PageroOAuthError
    with locked_token(token.pk) as current:
        if current is None:
            raise PageroAuthorizationRequired("The user has no Pagero connection any more.")
        if current.needs_reauthorization:
            raise PageroAuthorizationRequired(
                "The Pagero connection must be renewed by logging in."
            )
        if not current.user.is_active:
            # Re-read with the row: a user object loaded earlier may predate a deactivation.
            raise PageroAuthorizationRequired("The user is inactive.")
        if force:
            if current.access_token != seen_access_token:
                return current
        elif not current.access_token_needs_refresh():
            return current
        used_refresh_token = current.refresh_token
        backoff = None if force else _backoff_remaining(current)
        try:
            if backoff is not None:
                raise PageroUnavailable(
                    "a refresh failed moments ago; not trying again yet", retry_after=backoff
                )
            response = oauth.refresh_access_token(used_refresh_token)
        except OAuthErrorResponse as exc:
            if exc.error == "invalid_grant":
                survivor = _reread_after_invalid_grant(current, used_refresh_token)
                if survivor is not None:
                    return survivor
                current.mark_reauthorization_required("invalid_grant")
                failure = PageroAuthorizationRequired(
                    "Pagero rejected the refresh token; the user must log in again.",
                    status_code=exc.status_code,
                )
            else:
                failure = PageroUnavailable(
                    exc.description, error=exc.error, status_code=exc.status_code
                )
        except PageroUnavailable as exc:
            failure = exc
        else:
            caches[DEFAULT_CACHE_ALIAS].delete(_backoff_key(current))
            current.apply_token_response(response)
            current.last_refreshed = current.access_token_issued_at
            current.save()
            fresh = current
            transaction.on_commit(
                lambda: token_refreshed.send(PageroToken, token=fresh, user=fresh.user),
                using=router.db_for_write(PageroToken),
            )
            return current
        if isinstance(failure, PageroUnavailable) and backoff is None:
            # Still under the lock, so the callers waiting on it see the back-off.
            _start_backoff(current, failure)
    # Outside the transaction: the re-authorization mark above is committed, nothing else changed.
    if isinstance(failure, PageroUnavailable):
        if backoff is None:
            _report_failure(current, failure)
        if not force and not current.is_access_token_expired():
            logger.info(
                "Pagero refresh of token %s failed; its access token is still valid, using it",
                current.fingerprint,
            )
            return current
    else:
        _report_failure(current, failure)
    raise failure


@sensitive_variables()
def _reread_after_invalid_grant(
    current: PageroToken, used_refresh_token: str
) -> PageroToken | None:
    """After ``invalid_grant``, look again: another writer may have rotated the token just now.

    With the row lock held that cannot happen through this module, but a writer that bypasses
    it (a new login replacing the token, a deployment without row locks) might have.
    """
    fresh: PageroToken | None = PageroToken.objects.filter(pk=current.pk).first()
    if (
        fresh is not None
        and fresh.refresh_token != used_refresh_token
        and not fresh.needs_reauthorization
    ):
        logger.info(
            "Pagero refresh: token %s was rotated concurrently; using it", fresh.fingerprint
        )
        return fresh
    return None


def _report_failure(token: PageroToken, failure: PageroOAuthError) -> None:
    if isinstance(failure, PageroAuthorizationRequired):
        reason = "reauthorization_required"
        logger.warning("Pagero refresh: token %s needs re-authorization", token.fingerprint)
    elif isinstance(failure, PageroConfigurationError):
        reason = "configuration"
    else:
        reason = "unavailable"
        logger.warning(
            "Pagero refresh of token %s failed, token kept: %s", token.fingerprint, failure
        )
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
    error is raised; ``local_only=True`` deletes without telling Pagero.
    """
    user = token.user
    tell_pagero = not local_only and bool(app_settings.REVOKE_URL)
    with locked_token(token.pk, with_secrets=tell_pagero) as current:
        if current is None:
            return Revocation(remote=False, skipped_because="already_deleted")
        if local_only:
            result = Revocation(remote=False, skipped_because="local_only")
        elif not app_settings.REVOKE_URL:
            result = Revocation(remote=False, skipped_because="no_revoke_url")
        else:
            oauth.revoke_token(current.refresh_token, token_type_hint="refresh_token")
            result = Revocation(remote=True)
        current.delete()
        current.pk = token.pk
        transaction.on_commit(
            lambda: token_revoked.send(PageroToken, token=current, user=user, remote=result.remote),
            using=router.db_for_write(PageroToken),
        )
    logger.info("Pagero token %s deleted (remote revocation: %s)", token.fingerprint, result.remote)
    return result


def refresh_now(token: PageroToken) -> PageroToken:
    """Force one refresh of ``token`` through the single-flight path (admin, commands)."""
    if not token.user.is_active:
        raise PageroAuthorizationRequired("The user is inactive.")
    return refresh(token, force=True)


__all__ = [
    "Revocation",
    "aget_valid_token",
    "get_valid_token",
    "locked_token",
    "refresh",
    "refresh_now",
    "revoke",
]
