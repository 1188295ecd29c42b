"""The one mapping from exceptions to the words shown to people (the callback and disconnect
views, the sign-in refusals, the admin actions, the management commands).

Each exception class carries its ``reason`` (:mod:`.exceptions`); :data:`WORDS` holds what each
place says for each reason, and a place without words for a reason says those of the nearest
one along the exception's classes, else its ``error`` words. The texts are translated when
shown; none contains a token, a code or the client secret (the values filled in are the user,
the fingerprint, an HTTP status, an OAuth error code and an exception class name).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from django.utils.functional import Promise
from django.utils.translation import gettext, gettext_noop, ngettext_lazy

from .exceptions import FailureReason, IdentityRefused, nearest_reason


class Place(Enum):
    """Where the words are shown."""

    LOGIN = "login"  # the callback's error page (status: the page's HTTP status)
    DISCONNECT = "disconnect"  # the disconnect page
    ADMIN_REFRESH = "admin_refresh"  # the admin's "Refresh now" (one message per token)
    ADMIN_REVOKE = "admin_revoke"  # the admin's "Revoke" (one message per token)
    COMMAND_REFRESH = "command_refresh"  # pagero_refresh_tokens' line per failed token


@dataclass(frozen=True)
class Words:
    """What to say: ``text`` (a ``gettext_noop`` string, or an ``ngettext_lazy`` pair counted
    by a placeholder), how loud, for pages the status."""

    text: str | Promise
    status: int = 503
    warning: bool = False  # transient (try again later), rather than an error


WORDS: dict[Place, dict[FailureReason, Words]] = {
    Place.LOGIN: {
        "identity_refused": Words("", status=403),  # the text: IDENTITY_REFUSALS
        "id_token": Words(
            gettext_noop(
                "Pagero's proof of who you are could not be verified. Nothing was stored."
            ),
            status=400,
        ),
        "configuration": Words(
            gettext_noop("This site's connection to Pagero is misconfigured."), status=503
        ),
        "invalid_response": Words(
            gettext_noop("Pagero sent an answer that cannot be used."), status=502
        ),
        "unavailable": Words(
            gettext_noop("Pagero is not reachable right now. Please try again."), status=503
        ),
        "refused": Words(
            gettext_noop("Pagero did not accept this login. Please start again."), status=400
        ),
    },
    Place.DISCONNECT: {
        "undecryptable": Words(
            gettext_noop(
                "The stored connection cannot be read (an encryption key is missing), so "
                "Pagero could not be told. The connection was kept."
            )
        ),
        "error": Words(
            gettext_noop("Pagero could not confirm the disconnection, so the connection was kept.")
        ),
    },
    Place.ADMIN_REFRESH: {
        "undecryptable": Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): not refreshed, the token cannot be "
                "decrypted with the configured keys."
            )
        ),
        "reauthorization_required": Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): not refreshed, the connection needs "
                "re-authorization (the user must log in at Pagero again)."
            )
        ),
        "gone": Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): not refreshed, the token was deleted meanwhile "
                "(the user disconnected, or it was revoked)."
            ),
            warning=True,
        ),
        "configuration": Words(
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
        "unavailable": Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): not refreshed, Pagero is unavailable"
                "%(http)s; the token was kept. Try again later."
            ),
            warning=True,
        ),
    },
    Place.ADMIN_REVOKE: {
        "configuration": Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): kept, Pagero rejected this site's client "
                "credentials (check CLIENT_ID and CLIENT_SECRET)."
            )
        ),
        "unavailable": Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): kept, Pagero could not confirm the "
                "revocation%(http)s. Try again later."
            ),
            warning=True,
        ),
        "refused": Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): kept, Pagero refused the revocation (%(error)s)."
            )
        ),
        "undecryptable": Words(
            gettext_noop(
                "%(user)s (%(fingerprint)s): kept, the token cannot be decrypted with "
                "the configured keys, so Pagero cannot be told."
            )
        ),
    },
    Place.COMMAND_REFRESH: {
        "reauthorization_required": Words(
            gettext_noop("the connection needs re-authorization (invalid_grant)")
        ),
        "gone": Words(gettext_noop("the token was deleted during the run")),
        "unavailable": Words(
            gettext_noop("Pagero is unavailable%(http)s; the token was kept"), warning=True
        ),
        "undecryptable": Words(
            gettext_noop("the token cannot be decrypted with the configured keys")
        ),
        "error": Words(gettext_noop("unexpected error: %(type)s")),
        "configuration": Words(
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


def words_for(place: Place, exc: BaseException) -> Words:
    """The :class:`Words` for ``exc`` at ``place``: those of the nearest of its reasons the place
    has words for (``KeyError`` when it has none, not even for ``error``)."""
    table = WORDS[place]
    return table[nearest_reason(exc, table)]


def explain(place: Place, exc: BaseException, **params: Any) -> str:
    """What to tell a person at ``place`` about ``exc``, translated now.

    ``params`` fill the text's placeholders (``user``, ``fingerprint``, ``skipped``); ``http``
    (`` (HTTP 503)`` or empty), ``error`` (the OAuth error code, if a known one) and ``type``
    (the exception's class name) come from ``exc``.
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
