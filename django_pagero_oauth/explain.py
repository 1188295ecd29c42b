"""The one mapping from exceptions to the words shown to people.

The callback and disconnect views, the "Sign in with Pagero" refusals, the admin actions and
the management commands all ask :func:`explain` what to say about a failure; none of them
decides on its own which exception class means what. :func:`reason_for` holds the one order
in which the classes are tested (the order matters: an ``UndecryptableToken`` is both a
:class:`~.exceptions.TokenDecryptionError` and a
:class:`~.exceptions.PageroAuthorizationRequired`), :data:`WORDS` what each place says for
each reason. The texts are marked for translation here and translated when shown; none of
them contains a token, a code or the client secret (the only values filled in are the
user, the fingerprint, an HTTP status, an OAuth error code and an exception class name).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext, gettext_noop, ngettext_lazy

from .exceptions import (
    CallbackError,
    IdentityRefused,
    IdTokenError,
    InvalidTokenResponse,
    OAuthErrorResponse,
    PageroAuthorizationRequired,
    PageroConfigurationError,
    PageroUnavailable,
    TokenDecryptionError,
    TokenGone,
)


class Reason(Enum):
    """Why something failed, in the terms a person acts on."""

    UNDECRYPTABLE = "undecryptable"  # a key is missing: the operator's to fix
    GONE = "gone"  # the token was deleted meanwhile (disconnected, revoked, user deleted)
    REAUTHORIZATION = "reauthorization"  # the user must log in at Pagero again
    IDENTITY_REFUSED = "identity_refused"  # "Sign in with Pagero" may not use this identity
    ID_TOKEN = "id_token"  # the id_token failed verification
    CALLBACK = "callback"  # the redirect back cannot be accepted
    CONFIGURATION = "configuration"  # this site's settings are wrong (invalid_client, ...)
    INVALID_RESPONSE = "invalid_response"  # Pagero answered 200 with something unusable
    UNAVAILABLE = "unavailable"  # try again later
    REFUSED = "refused"  # Pagero answered an OAuth error
    ERROR = "error"  # anything else: a bug, a database error


#: The order in which exception classes are tested: the first match wins.
_ORDER: tuple[tuple[type[BaseException], Reason], ...] = (
    (TokenDecryptionError, Reason.UNDECRYPTABLE),  # before PageroAuthorizationRequired
    (TokenGone, Reason.GONE),  # before PageroAuthorizationRequired
    (PageroAuthorizationRequired, Reason.REAUTHORIZATION),
    (IdentityRefused, Reason.IDENTITY_REFUSED),
    (IdTokenError, Reason.ID_TOKEN),
    (CallbackError, Reason.CALLBACK),
    (PageroConfigurationError, Reason.CONFIGURATION),
    (InvalidTokenResponse, Reason.INVALID_RESPONSE),  # before PageroUnavailable
    (PageroUnavailable, Reason.UNAVAILABLE),
    (OAuthErrorResponse, Reason.REFUSED),
)


def reason_for(exc: BaseException) -> Reason:
    """The :class:`Reason` of ``exc``."""
    for cls, reason in _ORDER:
        if isinstance(exc, cls):
            return reason
    return Reason.ERROR


class Place(Enum):
    """Where the words are shown."""

    LOGIN = "login"  # the callback's error page (status: the page's HTTP status)
    DISCONNECT = "disconnect"  # the disconnect page
    ADMIN_REFRESH = "admin_refresh"  # the admin's "Refresh now" (one message per token)
    ADMIN_REVOKE = "admin_revoke"  # the admin's "Revoke" (one message per token)
    COMMAND_REFRESH = "command_refresh"  # pagero_refresh_tokens' line per failed token


@dataclass(frozen=True)
class Words:
    """What to say: ``text`` (marked, translated when shown), how loud, for pages the status.

    ``text`` is a ``gettext_noop`` string, or an ``ngettext_lazy`` pair counted by one of the
    placeholders.
    """

    text: str | Promise
    status: int = 503
    warning: bool = False  # transient (try again later), rather than an error


WORDS: dict[Place, dict[Reason, Words]] = {
    Place.LOGIN: {
        Reason.IDENTITY_REFUSED: Words("", status=403),  # the text: IDENTITY_REFUSALS
        Reason.ID_TOKEN: Words(
            gettext_noop(
                "Pagero's proof of who you are could not be verified. Nothing was stored."
            ),
            status=400,
        ),
        Reason.CONFIGURATION: Words(
            gettext_noop("This site's connection to Pagero is misconfigured."), status=503
        ),
        Reason.INVALID_RESPONSE: Words(
            gettext_noop("Pagero sent an answer that cannot be used."), status=502
        ),
        Reason.UNAVAILABLE: Words(
            gettext_noop("Pagero is not reachable right now. Please try again."), status=503
        ),
        Reason.REFUSED: Words(
            gettext_noop("Pagero did not accept this login. Please start again."), status=400
        ),
    },
    Place.DISCONNECT: {
        Reason.UNDECRYPTABLE: Words(
            gettext_noop(
                "The stored connection cannot be read (an encryption key is missing), so "
                "Pagero could not be told. The connection was kept."
            )
        ),
        Reason.ERROR: Words(
            gettext_noop("Pagero could not confirm the disconnection, so the connection was kept.")
        ),
    },
    Place.ADMIN_REFRESH: {
        Reason.UNDECRYPTABLE: Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): not refreshed, the token cannot be "
                "decrypted with the configured keys."
            )
        ),
        Reason.REAUTHORIZATION: Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): not refreshed, the connection needs "
                "re-authorization (the user must log in at Pagero again)."
            )
        ),
        Reason.GONE: Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): not refreshed, the token was deleted meanwhile "
                "(the user disconnected, or it was revoked)."
            ),
            warning=True,
        ),
        Reason.CONFIGURATION: Words(
            ngettext_lazy(
                "%(user)s (%(fingerprint)s): not refreshed, Pagero rejected this site's "
                "client credentials (check CLIENT_ID and CLIENT_SECRET). %(skipped)d "
                "more token was not tried.",
                "%(user)s (%(fingerprint)s): not refreshed, Pagero rejected this site's "
                "client credentials (check CLIENT_ID and CLIENT_SECRET). %(skipped)d "
                "more tokens were not tried.",
                "skipped",
            )
        ),
        Reason.UNAVAILABLE: Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): not refreshed, Pagero is unavailable"
                "%(http)s; the token was kept. Try again later."
            ),
            warning=True,
        ),
    },
    Place.ADMIN_REVOKE: {
        Reason.CONFIGURATION: Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): kept, Pagero rejected this site's client "
                "credentials (check CLIENT_ID and CLIENT_SECRET)."
            )
        ),
        Reason.UNAVAILABLE: Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): kept, Pagero could not confirm the "
                "revocation%(http)s. Try again later."
            ),
            warning=True,
        ),
        Reason.REFUSED: Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): kept, Pagero refused the revocation (%(error)s)."
            )
        ),
        Reason.UNDECRYPTABLE: Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): kept, the token cannot be decrypted with "
                "the configured keys, so Pagero cannot be told."
            )
        ),
    },
    Place.COMMAND_REFRESH: {
        Reason.REAUTHORIZATION: Words(
            gettext_noop("the connection needs re-authorization (invalid_grant)")
        ),
        Reason.GONE: Words(gettext_noop("the token was deleted during the run")),
        Reason.UNAVAILABLE: Words(
            gettext_noop("Pagero is unavailable%(http)s; the token was kept"), warning=True
        ),
        Reason.UNDECRYPTABLE: Words(
            gettext_noop("the token cannot be decrypted with the configured keys")
        ),
        Reason.ERROR: Words(gettext_noop("unexpected error: %(type)s")),
        Reason.CONFIGURATION: Words(
            gettext_noop("Pagero rejected the client credentials (invalid_client)")
        ),
    },
}

#: What the visitor reads for each refusal of "Sign in with Pagero" (``IdentityRefused.error``);
#: an unknown error reads as ``identity_taken``.
IDENTITY_REFUSALS: dict[str, str] = {
    "unknown_identity": gettext_noop(
        "This Pagero account is not linked to a user of this site yet. To link it, log in with "
        "your username and password, then choose “Sign in with Pagero” again."
    ),
    "identity_taken": gettext_noop(
        "This Pagero account is already linked to another user of this site. Nothing was changed."
    ),
    "other_identity_linked": gettext_noop(
        "Your account is already linked to another Pagero account. Disconnect from Pagero and "
        "unlink it first. Nothing was changed."
    ),
    "inactive_user": gettext_noop("The account linked to this Pagero account is disabled."),
    "sign_in_disabled": gettext_noop("Signing in with Pagero is not available on this site."),
}

#: OAuth error codes of the redirect back (RFC 6749 4.1.2.1; not exceptions, but the same
#: page) with what the user reads; any other code reads as
#: :data:`UNKNOWN_AUTHORIZATION_ERROR`.
AUTHORIZATION_ERROR_MESSAGES = {
    "access_denied": gettext_noop("The connection to Pagero was cancelled or denied."),
    "login_required": gettext_noop("Please log in at Pagero to connect your account."),
    "consent_required": gettext_noop("Pagero needs your consent to connect this account."),
    "temporarily_unavailable": gettext_noop(
        "Pagero is temporarily unavailable. Please try again later."
    ),
    "server_error": gettext_noop("Pagero could not complete the login. Please try again later."),
}
UNKNOWN_AUTHORIZATION_ERROR = gettext_noop(
    "Pagero could not connect your account. Please try again."
)


def explain_authorization_error(error: str) -> str:
    """What the user reads when Pagero sent them back with ``error`` instead of a code."""
    return gettext(AUTHORIZATION_ERROR_MESSAGES.get(error, UNKNOWN_AUTHORIZATION_ERROR))


#: The OAuth error codes shown as they are (RFC 6749 4.1.2.1 and 5.2, RFC 6750 3.1, RFC 7009
#: 2.2.1); any other ``error`` a server chose is shown as :data:`UNKNOWN_ERROR_CODE`.
KNOWN_ERROR_CODES = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "access_denied",
        "unsupported_response_type",
        "server_error",
        "temporarily_unavailable",
        "invalid_token",
        "insufficient_scope",
        "unsupported_token_type",
    }
)
UNKNOWN_ERROR_CODE = gettext_noop("an unknown error")


def _error_code(exc: BaseException) -> str:
    """``exc.error`` if it is a known OAuth error code: the server chooses it, and a person
    reads it."""
    error = getattr(exc, "error", "")
    if isinstance(error, str) and error in KNOWN_ERROR_CODES:
        return error
    return gettext(UNKNOWN_ERROR_CODE)


#: Reasons a place has no words of its own for are said as this one of the place.
_FALLBACKS = {
    Place.ADMIN_REVOKE: {Reason.INVALID_RESPONSE: Reason.UNAVAILABLE},
    Place.ADMIN_REFRESH: {
        Reason.INVALID_RESPONSE: Reason.UNAVAILABLE,
        Reason.REFUSED: Reason.UNAVAILABLE,
    },
    Place.COMMAND_REFRESH: {
        Reason.INVALID_RESPONSE: Reason.UNAVAILABLE,
        Reason.REFUSED: Reason.UNAVAILABLE,
    },
}


def words_for(place: Place, exc: BaseException) -> Words:
    """The :class:`Words` for ``exc`` at ``place`` (falling back on the place's ``ERROR``)."""
    table = WORDS[place]
    reason = reason_for(exc)
    reason = _FALLBACKS.get(place, {}).get(reason, reason)
    if reason in table:
        return table[reason]
    if Reason.ERROR in table:
        return table[Reason.ERROR]
    raise LookupError(f"no words for {reason.value} at {place.value}")


def explain(place: Place, exc: BaseException, **params: Any) -> str:
    """What to tell a person at ``place`` about ``exc``, translated now.

    ``params`` fill the text's placeholders (``user``, ``fingerprint``, ``skipped``); ``http``
    (`` (HTTP 503)`` or empty), ``error`` (the OAuth error code, if a known one) and ``type`` (the exception's
    class name) come from ``exc``.
    """
    if isinstance(exc, IdentityRefused):
        error = exc.error if exc.error in IDENTITY_REFUSALS else "identity_taken"
        return gettext(IDENTITY_REFUSALS[error])
    words = words_for(place, exc)
    status = getattr(exc, "status_code", None)
    values = {
        "http": f" (HTTP {status})" if status else "",
        "error": _error_code(exc),
        "type": type(exc).__name__,
        **params,
    }
    if isinstance(words.text, str):
        return gettext(words.text) % values
    return str(words.text % values)  # ngettext_lazy: the count is one of the values


def is_warning(place: Place, exc: BaseException) -> bool:
    """Whether ``exc`` at ``place`` is transient (a warning) rather than an error."""
    return words_for(place, exc).warning


def status_for(place: Place, exc: BaseException) -> int:
    """The HTTP status of the page that shows ``exc`` at ``place``."""
    return words_for(place, exc).status


__all__ = [
    "AUTHORIZATION_ERROR_MESSAGES",
    "IDENTITY_REFUSALS",
    "KNOWN_ERROR_CODES",
    "UNKNOWN_AUTHORIZATION_ERROR",
    "UNKNOWN_ERROR_CODE",
    "WORDS",
    "Place",
    "Reason",
    "Words",
    "explain",
    "explain_authorization_error",
    "is_warning",
    "reason_for",
    "status_for",
    "words_for",
]
