"""The OAuth 2.0 protocol as Pagero speaks it: one function per message, nothing stored here.

- :func:`build_authorization_url`: step 1, the login page URL (RFC 6749 4.1.1, RFC 7636 4.3).
- :func:`exchange_code`: step 3, code for tokens (RFC 6749 4.1.3).
- :func:`refresh_access_token`: RFC 6749 section 6 (Pagero: the refresh token is single-use).
- :func:`revoke_token`: RFC 7009.

The requests go through :mod:`.transport` (timeout, TLS, no redirects, the size cap, a
wall-clock deadline); nothing logs a token, a code or the secret.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import logging
import math
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit, urlunsplit

from django.views.decorators.debug import sensitive_variables

from . import transport
from .conf import CLIENT_AUTH_METHODS, app_settings
from .exceptions import (
    InvalidTokenResponse,
    OAuthErrorResponse,
    PageroConfigurationError,
    PageroOAuthError,
    PageroUnavailable,
)

logger = logging.getLogger("django_pagero_oauth")

#: Access-token lifetime assumed when a response has no ``expires_in`` (Pagero's documented 600 s).
DEFAULT_EXPIRES_IN = 600

#: The longest access-token lifetime believed (a day); a longer ``expires_in`` is cut to it.
MAX_EXPIRES_IN = 24 * 3600

#: Form fields whose values are secret: never repeated from a server's error answer.
SECRET_FIELDS = ("code", "code_verifier", "refresh_token", "token", "client_secret")

# RFC 6749 5.2: the characters of error_description; error has no space.
_DESCRIPTION_CHAR_RE = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]")
_ERROR_RE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,64}")

#: RFC 6750 2.1: ``b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="``,
#: the only characters an access token may have in an ``Authorization: Bearer`` header.
_B64TOKEN_RE = re.compile(r"[A-Za-z0-9\-._~+/]+=*")

#: What no database column can hold: NUL (PostgreSQL text) and lone surrogates (not UTF-8).
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
_LONE_SURROGATE_RE = re.compile("[\ud800-\udfff]")


@sensitive_variables()
def is_bearer_token(value: str) -> bool:
    """Can ``value`` be sent as ``Authorization: Bearer <value>`` (RFC 6750 2.1)?"""
    return _B64TOKEN_RE.fullmatch(value) is not None


def is_storable_text(value: str) -> bool:
    """Can ``value`` be written to a text column of any supported database (and encrypted)?"""
    return _UNSTORABLE_RE.search(value) is None


def generate_state() -> str:
    """An unguessable ``state`` value: 256 random bits (RFC 6749 10.12)."""
    return secrets.token_urlsafe(32)


def generate_code_verifier() -> str:
    """A PKCE verifier: 64 characters from 48 random bytes (RFC 7636 4.1 asks 43-128 chars)."""
    return secrets.token_urlsafe(48)


def code_challenge(verifier: str) -> str:
    """``BASE64URL(SHA256(verifier))`` without padding: the S256 method (RFC 7636 4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def build_authorization_url(
    *,
    redirect_uri: str,
    state: str,
    code_verifier: str | None = None,
    prompt: str | None = None,
    nonce: str | None = None,
    scope: str | None = None,
) -> str:
    """The URL of Pagero's login page for one flow (RFC 6749 4.1.1).

    ``scope`` defaults to ``SCOPE``; ``nonce`` is OpenID Connect's (Core 3.1.2.1).
    """
    params = {
        "response_type": "code",
        "client_id": app_settings.CLIENT_ID,
        "redirect_uri": redirect_uri,
        "state": state,
    }
    scope = app_settings.SCOPE if scope is None else scope
    if scope:
        params["scope"] = scope
    if nonce is not None:
        params["nonce"] = nonce
    if prompt:
        params["prompt"] = prompt
    if code_verifier is not None:
        params["code_challenge"] = code_challenge(code_verifier)
        params["code_challenge_method"] = "S256"
    base = urlsplit(app_settings.AUTHORIZE_URL)
    query = f"{base.query}&{urlencode(params)}" if base.query else urlencode(params)
    return urlunsplit((base.scheme, base.netloc, base.path, query, ""))


@dataclass(frozen=True)
class TokenResponse:
    """A validated successful token response (RFC 6749 5.1). ``repr`` shows no token."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str | None = None
    scope: str = ""
    claims: str = ""
    id_token: str = ""

    def __repr__(self) -> str:
        return (
            f"TokenResponse(token_type={self.token_type!r}, expires_in={self.expires_in}, "
            f"has_refresh_token={self.refresh_token is not None}, scope={self.scope!r})"
        )

    @classmethod
    @sensitive_variables()
    def from_json(cls, data: Any, *, what: str = "token request") -> TokenResponse:
        """Validate a parsed 200 body (RFC 6749 5.1). Two things refuse it
        (:class:`InvalidTokenResponse`):

        - it holds no token that can be stored and used: it is not a JSON object;
          ``access_token`` is missing, empty or not a string; ``refresh_token`` is present but
          empty, not a string, or not UTF-8 (a lone surrogate); or the access token cannot be
          sent as ``Authorization: Bearer`` (outside RFC 6750's ``b64token``: a control
          character, a blank, non-ASCII) and no new refresh token comes with it;
        - ``token_type`` is a string naming another type (``mac``, ``DPoP``, ...): RFC 6749
          7.1 forbids using a token of a type the client does not understand, and this client
          sends bearer tokens only.

        Everything else is repaired, with a warning that names the field (never its value):
        once an answer carries a new refresh token Pagero has spent the old single-use one, and
        refusing the answer would lose the user's connection. An access token that cannot be
        sent is dropped (``access_token`` is empty, the stored token then needs a refresh at
        once) and the new refresh token kept. ``expires_in`` as a numeric string or a float is
        read as a number; missing, ``null``, not a number, zero or negative, it is Pagero's
        600 s (:data:`DEFAULT_EXPIRES_IN`); above :data:`MAX_EXPIRES_IN` it is cut to it (a
        far-future expiry could not even be stored as a date). A ``token_type`` that is missing,
        empty or not a string is taken as bearer (Pagero documents ``"bearer"``), in any case
        and with surrounding blanks. ``scope``, ``claims`` and ``id_token`` are informational
        and default to empty; one that no database column can hold (NUL, a lone surrogate) is
        emptied, and so is an ``id_token`` that is not a JWT's characters.
        """
        if not isinstance(data, dict):
            raise InvalidTokenResponse("the token response is not a JSON object")
        access_token, refresh_token = _usable_tokens(data, what)
        _check_bearer(data.get("token_type"), what)
        return cls(
            access_token=access_token,
            token_type="bearer",
            expires_in=_expires_in(data.get("expires_in"), what),
            refresh_token=refresh_token,
            scope=_informational(data, "scope", what),
            claims=_informational(data, "claims", what),
            id_token=_informational(data, "id_token", what),
        )

    @property
    def has_access_token(self) -> bool:
        """False when the answer's access token was dropped (see :meth:`from_json`)."""
        return bool(self.access_token)


@sensitive_variables()
def _usable_tokens(data: dict[str, Any], what: str) -> tuple[str, str | None]:
    """The access token (empty when it cannot be sent) and the refresh token of an answer."""
    access_token = data.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        # Not a token response at all (RFC 6749 5.1 requires one; more likely a proxy's or a
        # broken server's JSON), so a refresh_token in it is not trusted either.
        raise InvalidTokenResponse("the token response has no access_token")
    refresh_token = data.get("refresh_token")
    if refresh_token is not None and (
        not isinstance(refresh_token, str)
        or not refresh_token
        or _LONE_SURROGATE_RE.search(refresh_token)
    ):
        # (A NUL is stored encrypted and sent percent-encoded; a lone surrogate is neither.)
        raise InvalidTokenResponse("the token response has an invalid refresh_token")
    if is_bearer_token(access_token):
        return access_token, refresh_token
    if refresh_token is None:
        raise InvalidTokenResponse("the access_token is not a bearer token")
    logger.warning(
        "Pagero %s: the access_token is not a bearer token (RFC 6750 2.1); dropped, "
        "the new refresh token is kept",
        what,
    )
    return "", refresh_token


def _check_bearer(token_type: Any, what: str) -> None:
    """Refuse a ``token_type`` string naming another type than bearer (RFC 6749 5.1, 7.1)."""
    if token_type is None or token_type == "":
        logger.warning("Pagero %s: the token response has no token_type; taken as bearer", what)
    elif not isinstance(token_type, str):
        logger.warning(
            "Pagero %s: the token response's token_type is not a string; taken as bearer", what
        )
    elif token_type.strip().lower() != "bearer":
        raise InvalidTokenResponse("the token response is not a bearer token")


def _expires_in(value: Any, what: str) -> int:
    """``expires_in`` as seconds from 1 to :data:`MAX_EXPIRES_IN`, or Pagero's 600 s."""
    number: float | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        # Clamped first: math.isfinite(10**400) raises OverflowError.
        number = max(-1, min(value, MAX_EXPIRES_IN + 1))
    elif isinstance(value, float):
        number = value
    elif isinstance(value, str):
        with contextlib.suppress(ValueError):
            number = float(value.strip())
    if number is None or not math.isfinite(number) or number < 1:
        state = "missing" if value is None else "unusable"
        logger.warning(
            "Pagero %s: expires_in is %s; assuming Pagero's %s s", what, state, DEFAULT_EXPIRES_IN
        )
        return DEFAULT_EXPIRES_IN
    if not isinstance(number, int) or isinstance(value, str):
        logger.warning("Pagero %s: expires_in is not an integer; read as a number", what)
    if number > MAX_EXPIRES_IN:
        logger.warning("Pagero %s: expires_in is over %s s; cut to it", what, MAX_EXPIRES_IN)
        return MAX_EXPIRES_IN
    return int(number)


#: The characters of a JWT in compact serialisation (RFC 7515 7.1): base64url and dots.
_JWT_CHARS_RE = re.compile(r"[A-Za-z0-9\-_.=]*")


def _informational(data: dict[str, Any], name: str, what: str) -> str:
    """``scope``, ``claims`` or ``id_token`` as text; empty when it could not be stored."""
    value = data.get(name)
    parts = value if isinstance(value, list) else [] if value is None else [value]
    try:
        text = " ".join(map(str, parts))
    except (ValueError, RecursionError):  # str() of a 5,000-digit int, or of a deep list
        text = "\x00"
    unusable = (
        not _JWT_CHARS_RE.fullmatch(text) if name == "id_token" else not is_storable_text(text)
    )
    if unusable:
        logger.warning("Pagero %s: %s cannot be stored; left empty", what, name)
        return ""
    return text


@sensitive_variables()
def client_auth(data: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Add client authentication to a token/revocation request (RFC 6749 2.3.1).

    Returns ``(form, headers)``. For HTTP Basic, client id and secret are form-urlencoded
    *before* base64, so a secret with ``:``, ``%``, ``+``, a space or non-ASCII survives.
    """
    method = app_settings.CLIENT_AUTH_METHOD
    if method not in CLIENT_AUTH_METHODS:
        raise PageroConfigurationError(
            f"CLIENT_AUTH_METHOD must be one of {', '.join(CLIENT_AUTH_METHODS)}"
        )
    client_id, client_secret = app_settings.CLIENT_ID, app_settings.CLIENT_SECRET
    if method == "client_secret_post":
        return {**data, "client_id": client_id, "client_secret": client_secret}, {}
    userpass = f"{quote_plus(client_id)}:{quote_plus(client_secret)}"
    encoded = base64.b64encode(userpass.encode("utf-8")).decode("ascii")
    return dict(data), {"Authorization": f"Basic {encoded}"}


def request_deadline() -> float:
    """Seconds a whole token or revocation request may take, wall clock (``TIMEOUT`` bounds each
    socket operation only, and an answer may trickle in a byte at a time). A refresh extends its
    lease meanwhile (``lease.kept``); this is longer than any caller waits for the lease
    (``lease.Waiter``), so those give up first and an answer that is merely slow is stored."""
    return 2 * (app_settings.TIMEOUT * 3 + 10) + 10


@sensitive_variables()
def post(url: str, data: dict[str, str], *, what: str) -> transport.Reply:
    """POST a client-authenticated form (:func:`client_auth`) through :mod:`.transport`, within
    :func:`request_deadline`; the answer, whatever its status."""
    form, headers = client_auth(data)
    headers["Accept"] = "application/json"
    return transport.post_form(url, form, headers=headers, what=what, deadline=request_deadline())


@sensitive_variables()
def _scrub(value: Any, sent: dict[str, str], *, limit: int) -> str:
    """A server's ``error``/``error_description``, safe to log and to put in an exception.

    Servers echo what they reject ("invalid refresh token _1XB..."): every secret this request
    sent is blanked out, and so is anything outside RFC 6749 5.2's character set.
    """
    if not isinstance(value, str) or not value:
        return ""
    text: str = value
    secrets_sent = [sent.get(name, "") for name in SECRET_FIELDS] + [app_settings.CLIENT_SECRET]
    for secret in sorted(filter(None, secrets_sent), key=len, reverse=True):
        for form in {secret, quote_plus(secret)}:
            text = text.replace(form, "[redacted]")
    return "".join(char if _DESCRIPTION_CHAR_RE.fullmatch(char) else "?" for char in text)[:limit]


@sensitive_variables()
def error_for(reply: transport.Reply, what: str, sent: dict[str, str]) -> PageroOAuthError:
    """The exception a non-200 answer means (RFC 6749 5.2), logged; ``sent`` is the form whose
    secrets an echo of the server must not repeat."""
    status = reply.status
    fields = reply.data if isinstance(reply.data, dict) else {}
    raw_error = fields.get("error")
    # Not an RFC 6749 error code (e.g. a space in it): an unexpected answer, not an OAuth error.
    is_code = isinstance(raw_error, str) and _ERROR_RE.fullmatch(raw_error)
    error = _scrub(raw_error, sent, limit=64) if is_code else None
    description = _scrub(fields.get("error_description"), sent, limit=200)
    if status == 429 or status >= 500:
        logger.warning("Pagero %s: HTTP %s", what, status)
        return PageroUnavailable(
            f"{what}: Pagero answered HTTP {status}",
            error=error,
            status_code=status,
            retry_after=reply.retry_after,
        )
    if error == "invalid_client":
        logger.error(
            "Pagero %s: the client credentials were rejected (invalid_client). Check "
            "PAGERO_OAUTH CLIENT_ID, CLIENT_SECRET and CLIENT_AUTH_METHOD.",
            what,
        )
        return PageroConfigurationError(description, status_code=status)
    if error:
        logger.info("Pagero %s: OAuth error %s (HTTP %s)", what, error, status)
        return OAuthErrorResponse(description, error=error, status_code=status)
    if status == 401:
        logger.error("Pagero %s: HTTP 401, the client credentials were rejected", what)
        return PageroConfigurationError("HTTP 401 without an OAuth error", status_code=status)
    logger.warning("Pagero %s: unexpected HTTP %s", what, status)
    return PageroUnavailable(f"{what}: unexpected answer from Pagero", status_code=status)


@sensitive_variables()
def _token_request(data: dict[str, str], what: str) -> TokenResponse:
    reply = post(app_settings.TOKEN_URL, data, what=what)
    if reply.status != 200:
        raise error_for(reply, what, data)
    if reply.data is None:
        raise InvalidTokenResponse(f"{what}: the answer is not JSON", status_code=reply.status)
    try:
        return TokenResponse.from_json(reply.data, what=what)
    except InvalidTokenResponse as exc:
        logger.warning("Pagero %s: unusable token response (%s)", what, exc.description)
        raise


@sensitive_variables()
def exchange_code(
    code: str, *, redirect_uri: str, code_verifier: str | None = None
) -> TokenResponse:
    """Step 3: trade an authorization code for tokens (RFC 6749 4.1.3, RFC 7636 4.5)."""
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
    if code_verifier is not None:
        data["code_verifier"] = code_verifier
    return _token_request(data, "code exchange")


@sensitive_variables()
def refresh_access_token(refresh_token: str) -> TokenResponse:
    """Use a (single-use) refresh token once (RFC 6749 section 6).

    Call this only through :func:`django_pagero_oauth.tokens.refresh`, which makes it
    single-flight; calling it twice with the same token loses the user's connection.
    """
    return _token_request(
        {"grant_type": "refresh_token", "refresh_token": refresh_token}, "refresh"
    )


@sensitive_variables()
def revoke_token(token: str, *, token_type_hint: str = "refresh_token") -> None:
    """Revoke a token at ``REVOKE_URL`` (RFC 7009 2.1). Success is HTTP 200 (2.2).

    Raises :class:`PageroUnavailable` (transient; 503 per RFC 7009 2.2.1) or
    :class:`OAuthErrorResponse`. The caller checks that ``REVOKE_URL`` is set.
    """
    data = {"token": token, "token_type_hint": token_type_hint}
    reply = post(app_settings.REVOKE_URL, data, what="revocation")
    if reply.status != 200:
        raise error_for(reply, "revocation", data)


@sensitive_variables()
def decode_jwt_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Header and payload of a JWT, NOT verified; ``None`` when the token is not a JWT.

    Only for display and for reading ``publicid``: nothing may depend on this succeeding.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header, payload = (
            json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
            for part in parts[:2]
        )
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    if not isinstance(header, dict) or not isinstance(payload, dict):
        return None
    return header, payload
