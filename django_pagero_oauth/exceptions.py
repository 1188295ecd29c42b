"""Exceptions of django-pagero-oauth.

None of them ever carries a token, a code or the client secret in its message. Each class
says why it failed in its ``reason`` (as DRF's ``default_code``): the words shown to people
(``explain``), the keep-alive runs' counts and ``token_refresh_failed`` go by it.
"""

from __future__ import annotations

from collections.abc import Container
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from django.core.exceptions import ImproperlyConfigured, PermissionDenied, SuspiciousOperation

if TYPE_CHECKING:
    from typing_extensions import Unpack

#: Why something failed, in the terms a person acts on.
FailureReason = Literal[
    "error",  # anything else: a bug, a database error
    "refused",  # Pagero answered an OAuth error
    "unavailable",  # try again later
    "invalid_response",  # Pagero answered 200 with something unusable
    "configuration",  # this site's settings are wrong (invalid_client, ...)
    "reauthorization_required",  # the user must log in at Pagero again
    "gone",  # the token was deleted meanwhile (disconnected, revoked, user deleted)
    "callback",  # the redirect back cannot be accepted
    "undecryptable",  # a key is missing: the operator's to fix
    "id_token",  # the id_token failed verification
    "identity_refused",  # "Sign in with Pagero" may not use this identity
]


class _Details(TypedDict, total=False):
    """The keyword arguments of every :class:`PageroOAuthError`."""

    error: str | None
    status_code: int | None


class PageroOAuthError(Exception):
    """Base class. ``error`` and ``description`` follow RFC 6749 section 5.2 where they apply."""

    default_error = "pagero_error"
    reason: FailureReason = "error"

    def __init__(
        self, description: str = "", *, error: str | None = None, status_code: int | None = None
    ) -> None:
        self.error = error or self.default_error
        self.description = description
        self.status_code = status_code
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = self.error
        if self.description:
            text = f"{text}: {self.description}"
        if self.status_code is not None:
            text = f"{text} (HTTP {self.status_code})"
        return text


class OAuthErrorResponse(PageroOAuthError):
    """The token or revocation endpoint answered with an OAuth error (RFC 6749 5.2)."""

    default_error = "invalid_request"
    reason: FailureReason = "refused"


class PageroUnavailable(PageroOAuthError):
    """Pagero could not be used right now: timeout, connection error, 5xx, 429, a malformed answer.

    Nothing stored was changed; trying again later may work. ``retry_after`` is in seconds when
    the server said so (``Retry-After``).
    """

    default_error = "temporarily_unavailable"
    reason: FailureReason = "unavailable"

    def __init__(
        self, description: str = "", *, retry_after: int | None = None, **details: Unpack[_Details]
    ) -> None:
        self.retry_after = retry_after
        super().__init__(description, **details)


class TransactionEnded(PageroUnavailable):
    """The database ended the request's transaction while a protected view ran (a terminated
    backend, a failover, a serialization failure, a timeout); nothing the view wrote was kept.
    Answered as a 503 ("try again"), as when Pagero is unavailable."""

    default_error = "transaction_ended"


class InvalidTokenResponse(PageroUnavailable):
    """The token endpoint answered 200 with something that is not a usable bearer token."""

    default_error = "invalid_token_response"
    reason: FailureReason = "invalid_response"


class TokenLockTimeout(PageroUnavailable):
    """The token row could not be locked in time to refresh or revoke it; Pagero was not called.

    Usually another refresh of the same token took too long. It also happens when the caller's
    own open transaction holds the lock the refresh needs (the row itself, or on SQLite any
    database lock): get the token before that transaction starts (the decorator, the mixin and
    the middleware do).
    """

    default_error = "token_lock_timeout"


class PageroConfigurationError(PageroOAuthError, ImproperlyConfigured):
    """This site's Pagero configuration is wrong: Pagero rejected the client credentials
    (``invalid_client``), or a setting the operation needs is missing or invalid.

    Not a :class:`PageroUnavailable`: trying again later does not help, a person
    must fix the settings. The stored tokens are kept: the site's configuration is wrong, not
    the user's connection. Pages and API answers treat it like :class:`PageroUnavailable`
    (503), the background jobs do not retry it. ``retry_after`` is always ``None``; it exists so
    that code handling both classes can read it.
    """

    default_error = "invalid_client"
    reason: FailureReason = "configuration"
    retry_after: int | None = None


#: What "Pagero cannot be used, the token is kept" means for a caller: try again later
#: (:class:`PageroUnavailable`) or after a person fixed the settings
#: (:class:`PageroConfigurationError`). ``except SERVICE_ERRORS`` catches both.
SERVICE_ERRORS = (PageroUnavailable, PageroConfigurationError)


class PageroAuthorizationRequired(PageroOAuthError, PermissionDenied):
    """The user has no usable Pagero connection and must log in at Pagero (again).

    A subclass of Django's ``PermissionDenied``, so an unhandled one gives a 403.

    ``user_pk`` is the primary key of the user whose connection it is about (set by the app
    wherever it raises one about a user; ``None``: not known). The guards answer it with "log
    in at Pagero" only when it is about the visitor; one about another user's connection (an
    organisation's, a colleague's) propagates (a 403), for the visitor's own connection is fine.
    """

    default_error = "pagero_authorization_required"
    reason: FailureReason = "reauthorization_required"

    def __init__(
        self, description: str = "", *, user_pk: Any = None, **details: Unpack[_Details]
    ) -> None:
        self.user_pk = user_pk
        super().__init__(description, **details)


class TokenGone(PageroAuthorizationRequired):
    """The token row was deleted while this operation was on its way to it.

    The user disconnected, an admin revoked the token or the user was deleted between the
    moment the token was loaded and the moment its row was locked; nothing was sent to Pagero.
    For the user it is like any other :class:`PageroAuthorizationRequired`; the keep-alive
    jobs and the admin report it as "deleted meanwhile", not as a failed refresh.
    """

    default_error = "pagero_token_gone"
    reason: FailureReason = "gone"


class CallbackError(PageroOAuthError, SuspiciousOperation):
    """The redirect back from Pagero cannot be accepted (state, ``iss``, missing code, ...).

    A subclass of ``SuspiciousOperation``: Django logs these on the ``django.security`` logger.
    """

    default_error = "invalid_callback"
    reason: FailureReason = "callback"


class TokenDecryptionError(ImproperlyConfigured):
    """A stored token cannot be decrypted with the configured keys."""

    reason: FailureReason = "undecryptable"


class UndecryptableToken(PageroAuthorizationRequired, TokenDecryptionError):
    """A stored token cannot be decrypted: its key is not configured any more, or the value was
    altered or copied from another row.

    For the user the connection is gone (a :class:`PageroAuthorizationRequired`: pages redirect
    to Pagero's login, JSON callers get 401, and logging in again overwrites the row); for the
    operator a key is missing (a :class:`TokenDecryptionError`).
    """

    default_error = "token_undecryptable"
    reason: FailureReason = "undecryptable"


class IdTokenError(PageroOAuthError, SuspiciousOperation):
    """An ``id_token`` failed OpenID Connect Core 1.0 3.1.3.7 validation (or is missing).

    Nothing is stored and nobody is logged in. ``description`` names the rule that failed; it
    never contains the token.
    """

    default_error = "invalid_id_token"
    reason: FailureReason = "id_token"


class IdentityRefused(PageroOAuthError, PermissionDenied):
    """A verified Pagero identity may not be used here (``error`` says why).

    - ``unknown_identity``: no user is linked to it and ``SIGN_IN_CREATE_USERS`` is off;
    - ``identity_taken``: it is linked to another user of this site;
    - ``other_identity_linked``: the user is linked to another identity of this issuer;
    - ``inactive_user``: its user may not log in;
    - ``sign_in_disabled``: the flow was a sign-in, and ``SIGN_IN_ENABLED`` is off.
    """

    default_error = "identity_refused"
    reason: FailureReason = "identity_refused"


def nearest_reason(exc: BaseException, known: Container[str]) -> FailureReason:
    """The reason of ``exc`` that ``known`` has: its class's, else the nearest one of the
    classes it derives from (an :class:`InvalidTokenResponse` is ``"invalid_response"``, or
    ``"unavailable"`` where that one is not known); ``"error"`` when none is known, and for
    any exception not of this module."""
    for cls in type(exc).__mro__:
        if issubclass(cls, (PageroOAuthError, TokenDecryptionError)) and cls.reason in known:
            return cls.reason
    return "error"
