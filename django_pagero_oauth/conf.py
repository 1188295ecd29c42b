"""Settings of django-pagero-oauth.

Everything lives in ONE dict, ``settings.PAGERO_OAUTH``. :data:`app_settings` reads it on
every attribute access (never caches, never writes defaults back onto ``django.conf.settings``),
so ``override_settings`` and pytest-django's ``settings`` fixture just work.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class Setting:
    """One key of ``PAGERO_OAUTH``: the single source of its name, type, default and meaning.

    The documentation's settings reference is generated from :data:`SETTINGS`, so the docs
    and the code cannot disagree. ``description`` is one reStructuredText paragraph.
    """

    name: str
    type: str
    default: Any
    description: str
    group: str
    #: What a value must be: ``validate(value)`` is None for a good value, else the rule it
    #: breaks ("a whole number, at least 1"). The system checks apply it to every key set
    #: (``E018``), except where ``checked_by`` names the check of its own that validates it.
    validate: Callable[[Any], str | None] | None = None
    checked_by: str = ""


# --- the rules of the values (Setting.validate) -----------------------------------------------


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def whole_number(minimum: int, maximum: int | None = None) -> Callable[[Any], str | None]:
    """A whole number (not a bool, not a string) of at least ``minimum`` (and at most
    ``maximum``: a value beyond it would overflow a date or a cache timeout at run time)."""

    def validate(value: Any) -> str | None:
        if _is_whole(value) and value >= minimum and (maximum is None or value <= maximum):
            return None
        if maximum is None:
            return f"a whole number, at least {minimum}"
        return f"a whole number, at least {minimum} and at most {maximum}"

    return validate


def boolean(value: Any) -> str | None:
    """``True`` or ``False`` (``"false"`` would read as true)."""
    return None if isinstance(value, bool) else "True or False"


def text(value: Any) -> str | None:
    """A string."""
    return None if isinstance(value, str) else "a string"


def optional_text(value: Any) -> str | None:
    """A string, or None (read as empty)."""
    return None if value is None or isinstance(value, str) else "a string (or None)"


def has_blank_or_control(value: str) -> bool:
    """Whether ``value`` holds whitespace or a control character: never in a URL as used (a
    value read from a file or the environment often ends in a newline, and ``urlsplit``
    strips or removes them, so a check reading it that way would pass what the app uses)."""
    return any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in value)


def optional_url(value: Any) -> str | None:
    """A string (or None) without whitespace or control characters."""
    if optional_text(value) is not None or (value and has_blank_or_control(value)):
        return "a URL without whitespace or control characters (or empty)"
    return None


def text_or_texts(value: Any) -> str | None:
    """A string or a list (or tuple) of strings."""
    if isinstance(value, str) or (
        isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value)
    ):
        return None
    return "a string or a list of strings"


def regular_expressions(value: Any) -> str | None:
    """A regular expression, or a list of them, that all compile."""
    if text_or_texts(value) is not None:
        return "a regular expression or a list of them"
    for pattern in [value] if isinstance(value, str) else value:
        try:
            re.compile(pattern)
        except re.error:
            return f"a list of valid regular expressions ({pattern!r} is not one)"
    return None


def dotted_path(value: Any) -> str | None:
    """Empty, or the dotted path of something that can be imported."""
    if value is None or value == "":
        return None
    from django.utils.module_loading import import_string

    try:
        if isinstance(value, str):
            import_string(value)
            return None
    except ImportError:
        pass
    return "empty or the dotted path of a callable that can be imported"


#: The most seconds (one day) a duration setting may hold: more is surely a mistake, and a
#: huge one overflows a cache timeout or a date.
MAX_SECONDS = 24 * 60 * 60
#: The longest ``TIMEOUT``: a request to Pagero must never wait (nearly) forever.
MAX_TIMEOUT = 300
#: The longest ``REFRESH_TOKEN_LIFETIME_DAYS`` (ten years); the expiry date is computed with
#: at most this, so that no value can make storing a rotated refresh token fail.
MAX_REFRESH_TOKEN_LIFETIME_DAYS = 3650

#: The groups of the settings reference, in the order it shows them.
GROUPS: tuple[str, ...] = (
    "URLs and the client",
    "Tokens",
    "The login flow",
    "Protecting views",
    "Sign in with Pagero (OpenID Connect)",
    "Development",
)

_CLIENT, _TOKENS, _LOGIN, _PROTECT, _OIDC, _DEV = GROUPS

#: Every setting, in the order of the settings reference.
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "CLIENT_ID",
        "str",
        "",
        "The client id Pagero registered for your site. Required (``E001``).",
        _CLIENT,
        validate=text,
    ),
    Setting(
        "CLIENT_SECRET",
        "str",
        "",
        "Its secret. Required (``E001``). Never logged.",
        _CLIENT,
        validate=text,
    ),
    Setting(
        "CLIENT_AUTH_METHOD",
        "str",
        "client_secret_basic",
        "How the client authenticates at the token and revocation endpoints (RFC 6749 2.3.1): "
        '``"client_secret_basic"`` (HTTP Basic, Pagero\'s documented example) or '
        '``"client_secret_post"`` (``client_id`` and ``client_secret`` in the form). '
        "Anything else is ``E006``.",
        _CLIENT,
        checked_by="E006",
    ),
    Setting(
        "AUTHORIZE_URL",
        "str",
        "https://sso.pageroonline.com/oauth/v2/oauth-authorize",
        "Pagero's login page (the authorization endpoint). Query parameters already in the "
        "URL are kept.",
        _CLIENT,
        checked_by="E012",
    ),
    Setting(
        "TOKEN_URL",
        "str",
        "https://sso.pageroonline.com/oauth/v2/oauth-token",
        "The token endpoint: code exchange and refresh.",
        _CLIENT,
        checked_by="E012",
    ),
    Setting(
        "REVOKE_URL",
        "str",
        # Pagero documents no RFC 7009 endpoint: empty means "revoke" only deletes locally.
        "",
        "An RFC 7009 revocation endpoint. Pagero documents none, so by default disconnecting "
        "only deletes the token here (and says so to the user). When set, it is also used, "
        "after the transaction commits, for the refresh token a reconnect replaces (unless "
        "``REVOKE_REPLACED_TOKEN`` is off) and for the "
        "token of a deleted user (``pre_delete`` of the user model, also for queryset deletes; "
        "one request per token), and, once the answer is sent, for the tokens of a sign-in that "
        "was refused (an unknown or taken identity, an ``id_token`` that failed, a link waiting "
        "for confirmation). Those revocations are best effort: a failure is logged "
        "(fingerprint and error code, never the token) and never fails or undoes the login or "
        "the delete; a token that cannot be decrypted any more is not revoked. Disconnecting "
        "revokes once, by itself.",
        _CLIENT,
        checked_by="E012",
    ),
    Setting(
        "API_BASE_URL",
        "str",
        "https://api.pageroonline.com",
        "What ``get_client`` resolves relative URLs against, and the only place its bearer "
        "token goes (see :ref:`the URL rule <url-rule>`).",
        _CLIENT,
        checked_by="E012",
    ),
    Setting(
        "REDIRECT_URI",
        "str",
        "",
        "The ``redirect_uri`` sent to Pagero; it must be exactly the one registered for the "
        "client. Empty: the absolute URL of ``pagero_oauth:callback`` built from the request "
        "(scheme and host as Django sees them; behind a proxy set this explicitly).",
        _CLIENT,
        validate=optional_url,
    ),
    Setting(
        "SCOPE",
        "str or list of str",
        "all",
        'The ``scope`` requested; a list is joined with spaces. ``"openid"`` in it makes '
        "Pagero add an ``id_token``. Empty: no ``scope`` parameter is sent.",
        _CLIENT,
        validate=text_or_texts,
    ),
    Setting(
        "ISSUER",
        "str",
        "",
        "When set, the callback requires Pagero's ``iss`` parameter to be exactly this string "
        "(RFC 9207; a missing ``iss`` is refused too). Empty: ``iss`` is not checked. Required "
        "for OpenID Connect (``E014``): an ``id_token``'s ``iss`` must equal it, and the key "
        "set is discovered from it. Setting it does not enable sign-in (``SIGN_IN_ENABLED`` "
        "does).",
        _CLIENT,
        validate=optional_url,
    ),
    Setting(
        "PKCE",
        "bool",
        # RFC 9700 2.1.1 requires PKCE of every client; Pagero recommends it.
        True,
        "Use PKCE with ``S256`` (RFC 7636): RFC 9700 requires it of every client and Pagero "
        "recommends it. ``False`` gives Pagero's documented flow without PKCE, for a client "
        "that cannot use it; system check ``W004`` warns about it.",
        _CLIENT,
        validate=boolean,
    ),
    Setting(
        "TIMEOUT",
        "float, seconds",
        10.0,
        "The timeout of every HTTP call to Pagero (token, revocation, and ``get_client`` "
        "requests that do not pass their own). ``None`` means the default; it must be a "
        "positive number of at most 300 seconds (``E011``).",
        _CLIENT,
        checked_by="E011",
    ),
    Setting(
        "API_RETRIES",
        "int",
        0,
        "How many times ``get_client`` and ``aget_client`` retry an idempotent API request "
        "(``GET``, ``HEAD``, ``OPTIONS``, ``PUT``, ``DELETE``) that Pagero answered with 429, "
        "502, 503 or 504, waiting for its ``Retry-After``. ``0``: never (``E017`` checks it is "
        "a whole number from 0 to 10). Token and revocation requests are never retried.",
        _CLIENT,
        checked_by="E017",
    ),
    Setting(
        "API_RETRY_AFTER_MAX",
        "float, seconds",
        10.0,
        "The longest ``Retry-After`` a retry waits for; a longer one ends the retries and that "
        "answer goes to the caller.",
        _CLIENT,
        checked_by="E017",
    ),
    Setting(
        "ENCRYPTION_KEYS",
        "list of str",
        [],
        "Fernet keys that encrypt the stored tokens, newest first: the first encrypts, all "
        "decrypt. A single string is accepted too. Empty: keys are derived (HKDF-SHA256) from "
        "``SECRET_KEY`` and then each of ``SECRET_KEY_FALLBACKS``. Keys that are not Fernet "
        "keys are ``E009``. See :ref:`key-rotation`.",
        _TOKENS,
        checked_by="E009",
    ),
    Setting(
        "REFRESH_LEEWAY",
        "int, seconds",
        60,
        "Refresh when the access token is valid for less than this (capped at half the "
        "token's lifetime, so very short-lived tokens are not refreshed on every use). Must be "
        "at least 0 and below 600, Pagero's access-token lifetime (``E005``).",
        _TOKENS,
        checked_by="E005",
    ),
    Setting(
        "REFRESH_FAILURE_BACKOFF",
        "int, seconds",
        5,
        "After a transient refresh failure (timeout, 5xx, 429, malformed answer), how long "
        "other callers fail at once with ``PageroUnavailable`` instead of queueing on the row "
        "lock to try again one by one; a longer ``Retry-After`` from Pagero wins (up to "
        "300 s). Kept in Django's default cache: with a shared cache (Redis, Memcached) it "
        "holds across processes and hosts, with the default per-process cache each process "
        "tries at most once per back-off. ``0`` turns it off. A forced refresh "
        '(``force_refresh=True``, the admin\'s "Refresh now") ignores it. Whatever the '
        "back-off, a refresh that fails while the access token has not actually expired (it "
        "is only inside the leeway) returns that still-working token.",
        _TOKENS,
        validate=whole_number(0, MAX_SECONDS),
    ),
    Setting(
        "REFRESH_TOKEN_LIFETIME_DAYS",
        "int, days",
        3 * 365,
        "The refresh token's rolling lifetime (Pagero: three years from the last refresh). A "
        "token past it is treated as dead without asking Pagero. A whole number from 1 to "
        "3650 (``E013``).",
        _TOKENS,
        checked_by="E013",
    ),
    Setting(
        "LOGIN_REDIRECT_URL",
        "str",
        "",
        "Where the callback lands when there is no (acceptable) ``next``. Empty: Django's "
        "``settings.LOGIN_REDIRECT_URL``. A URL name works too.",
        _LOGIN,
        validate=optional_text,
    ),
    Setting(
        "REVOKE_REPLACED_TOKEN",
        "bool",
        True,
        "Whether a reconnect revokes, at ``REVOKE_URL`` once the new token is committed, the "
        "live refresh token it replaces, so that no second valid refresh token is left behind. "
        "Turn it off for an authorization server that revokes the whole grant (every token of "
        "the user and the client, the new one too) when one refresh token is revoked, as "
        "RFC 7009 2.1 allows: there it would end the connection just made. Off, the replaced "
        "token stays valid at the server until it expires or is used, and the callback revokes "
        "no other token either: those of a sign-in it does not store (a link to confirm, a "
        "refused identity, a failed login) are left valid too, stored nowhere, for revoking "
        "them would end every stored connection of the same Pagero account (see "
        ":ref:`reconnect-revocation`). Without ``REVOKE_URL`` nothing is revoked either way.",
        _LOGIN,
        validate=boolean,
    ),
    Setting(
        "STATE_MAX_AGE",
        "int, seconds",
        600,
        "How long a started login may take before its callback is refused.",
        _LOGIN,
        validate=whole_number(1, MAX_SECONDS),
    ),
    Setting(
        "MAX_PENDING_FLOWS",
        "int",
        5,
        "How many logins one browser session may have in progress (e.g. in several tabs); "
        "the oldest is dropped first. At least 1.",
        _LOGIN,
        validate=whole_number(1, 100),
    ),
    Setting(
        "PROTECTED_PATHS",
        "list of str",
        [],
        "Regular expressions; with the middleware installed, requests whose ``path_info`` "
        "matches one (``re.match``) need a valid token. A single string is accepted too "
        "(``W002`` when the middleware is missing).",
        _PROTECT,
        validate=regular_expressions,
    ),
    Setting(
        "UNAVAILABLE_RETRY_AFTER",
        "int, seconds",
        30,
        "The ``Retry-After`` of the 503 answer when Pagero did not send one.",
        _PROTECT,
        validate=whole_number(0, MAX_SECONDS),
    ),
    Setting(
        "RESPONSE_HANDLER",
        "str",
        "",
        "Dotted path to a callable ``(request, exc) -> HttpResponse`` that replaces the "
        "built-in answer of the decorator, mixin and middleware. ``exc`` is ``None`` for an "
        "anonymous user, else a ``PageroAuthorizationRequired`` (log in at Pagero), a "
        "``PageroUnavailable`` or a ``PageroConfigurationError`` (both in "
        "``exceptions.SERVICE_ERRORS``: answer 503, not a login).",
        _PROTECT,
        validate=dotted_path,
    ),
    Setting(
        "JWKS_URL",
        "str",
        # Empty: discovered from ISSUER.
        "",
        "The issuer's key set (RFC 7517). Empty: the ``jwks_uri`` of ``ISSUER + "
        '"/.well-known/openid-configuration"``, whose ``issuer`` must equal ``ISSUER``. Must '
        "be https with ``DEBUG`` off (``E002``; a loopback host is allowed).",
        _OIDC,
        checked_by="E012",
    ),
    Setting(
        "JWKS_CACHE_SECONDS",
        "int, seconds",
        3600,
        "How long the key set (and the discovery result) stay in Django's default cache.",
        _OIDC,
        validate=whole_number(0, MAX_SECONDS),
    ),
    Setting(
        "JWKS_REFETCH_INTERVAL",
        "int, seconds",
        60,
        "An ``id_token`` signed with an unknown ``kid`` fetches the key set again (a key "
        "rotation at Pagero), at most once per this interval; within it such a login is a 503 "
        '("try again").',
        _OIDC,
        validate=whole_number(0, MAX_SECONDS),
    ),
    Setting(
        "ID_TOKEN_LEEWAY",
        "int, seconds",
        60,
        "Clock skew allowed when checking an ``id_token``'s ``exp`` and ``iat``.",
        _OIDC,
        validate=whole_number(0, 3600),
    ),
    Setting(
        "SIGN_IN_ENABLED",
        "bool",
        False,
        '"Sign in with Pagero" is a second way to log in, so it is off unless the site asks for '
        "it. Off: ``pagero_oauth:sign_in`` answers 404, a sign-in flow started before it was "
        "switched off is refused, and a connect with ``openid`` in ``SCOPE`` verifies the "
        "``id_token`` but links no identity. On: needs ``ISSUER`` (``E014``) and a backend that "
        "can load signed-in users (``E015``); a new identity is linked to a logged-in user only "
        "after they confirm it on ``pagero_oauth:link_identity`` (a CSRF-protected POST).",
        _OIDC,
        validate=boolean,
    ),
    Setting(
        "SIGN_IN_CREATE_USERS",
        "bool",
        False,
        "Whether signing in with a Pagero identity that no user is linked to creates a user. "
        "Off: the visitor is told to log in and then sign in with Pagero, which links the "
        "identity.",
        _OIDC,
        validate=boolean,
    ),
    Setting(
        "SIGN_IN_USER_FACTORY",
        "str",
        "django_pagero_oauth.signin.create_user_from_claims",
        "Dotted path to ``factory(claims, request) -> user`` (a saved user), called inside the "
        "sign-in's transaction. ``claims`` is an ``IdTokenClaims`` (``issuer``, ``subject``, "
        "``claims``). The default creates ``pagero-<hash of issuer and sub>`` (a random suffix "
        "when that name is taken) with an unusable password, and uses no other claim. "
        "``E016`` when it cannot be imported.",
        _OIDC,
        validate=optional_text,
    ),
    Setting(
        "ALLOW_MOCK_SERVER",
        "bool",
        False,
        "Lets the mock server mounted with ``django_pagero_oauth.testing.urls`` answer while "
        "``DEBUG`` is off (it answers 404 otherwise). ``E007`` when set with ``DEBUG`` off: "
        "never in production.",
        _DEV,
        validate=boolean,
    ),
)

#: Every setting, with its default (made from :data:`SETTINGS`).
DEFAULTS: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}

#: A refresh token that dies within this many days is flagged (admin, ``pagero_refresh_tokens``,
#: the Celery keep-alive); also importable from :mod:`django_pagero_oauth.models`.
REFRESH_TOKEN_WARNING_DAYS = 30

CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


class PageroOAuthSettings:
    """Typed, lazy view of ``settings.PAGERO_OAUTH``."""

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, "PAGERO_OAUTH", None)
        return value if isinstance(value, dict) else {}

    def _get(self, name: str) -> Any:
        return self.user_settings.get(name, DEFAULTS[name])

    @property
    def CLIENT_ID(self) -> str:
        return str(self._get("CLIENT_ID"))

    @property
    def CLIENT_SECRET(self) -> str:
        return str(self._get("CLIENT_SECRET"))

    @property
    def AUTHORIZE_URL(self) -> str:
        return str(self._get("AUTHORIZE_URL"))

    @property
    def TOKEN_URL(self) -> str:
        return str(self._get("TOKEN_URL"))

    @property
    def REVOKE_URL(self) -> str:
        return str(self._get("REVOKE_URL") or "")

    @property
    def API_BASE_URL(self) -> str:
        return str(self._get("API_BASE_URL"))

    @property
    def SCOPE(self) -> str:
        value = self._get("SCOPE")
        if isinstance(value, (list, tuple)):
            return " ".join(str(part) for part in value)
        return str(value)

    @property
    def REDIRECT_URI(self) -> str:
        return str(self._get("REDIRECT_URI") or "")

    @property
    def CLIENT_AUTH_METHOD(self) -> str:
        return str(self._get("CLIENT_AUTH_METHOD"))

    @property
    def PKCE(self) -> bool:
        return bool(self._get("PKCE"))

    @property
    def ISSUER(self) -> str:
        return str(self._get("ISSUER") or "")

    @property
    def TIMEOUT(self) -> float:
        """Seconds for every HTTP call. ``None`` (wait forever) is never allowed."""
        value = self._get("TIMEOUT")
        return float(value) if value is not None else float(DEFAULTS["TIMEOUT"])

    @property
    def API_RETRIES(self) -> int:
        """Retries of an idempotent API request answered 429, 502, 503 or 504 (0: none)."""
        return max(0, int(self._get("API_RETRIES") or 0))

    @property
    def API_RETRY_AFTER_MAX(self) -> float:
        """The longest ``Retry-After`` (seconds) an API retry waits for; longer: no retry."""
        return max(0.0, float(self._get("API_RETRY_AFTER_MAX")))

    @property
    def LOGIN_REDIRECT_URL(self) -> str:
        """Where the callback lands without a ``next``; falls back to Django's setting."""
        value = self._get("LOGIN_REDIRECT_URL")
        return str(value or settings.LOGIN_REDIRECT_URL)

    @property
    def ENCRYPTION_KEYS(self) -> list[str]:
        value = self._get("ENCRYPTION_KEYS")
        if isinstance(value, (str, bytes)):
            value = [value]
        return [key.decode() if isinstance(key, bytes) else str(key) for key in value or []]

    @property
    def REFRESH_LEEWAY(self) -> int:
        return int(self._get("REFRESH_LEEWAY"))

    @property
    def REFRESH_FAILURE_BACKOFF(self) -> int:
        """Seconds after a transient refresh failure during which nobody tries again."""
        return max(0, int(self._get("REFRESH_FAILURE_BACKOFF")))

    @property
    def REFRESH_TOKEN_LIFETIME_DAYS(self) -> int:
        return int(self._get("REFRESH_TOKEN_LIFETIME_DAYS"))

    @property
    def REVOKE_REPLACED_TOKEN(self) -> bool:
        """Revoke the refresh token a reconnect replaces (with ``REVOKE_URL``)."""
        return bool(self._get("REVOKE_REPLACED_TOKEN"))

    @property
    def STATE_MAX_AGE(self) -> int:
        return int(self._get("STATE_MAX_AGE"))

    @property
    def MAX_PENDING_FLOWS(self) -> int:
        return max(1, int(self._get("MAX_PENDING_FLOWS")))

    @property
    def PROTECTED_PATHS(self) -> Sequence[str]:
        value = self._get("PROTECTED_PATHS")
        return [value] if isinstance(value, str) else list(value or [])

    @property
    def UNAVAILABLE_RETRY_AFTER(self) -> int:
        return int(self._get("UNAVAILABLE_RETRY_AFTER"))

    @property
    def RESPONSE_HANDLER(self) -> str:
        return str(self._get("RESPONSE_HANDLER") or "")

    @property
    def ALLOW_MOCK_SERVER(self) -> bool:
        return bool(self._get("ALLOW_MOCK_SERVER"))

    # --- OpenID Connect and "Sign in with Pagero" -----------------------------------------

    @property
    def JWKS_URL(self) -> str:
        """The issuer's key set; empty: ``jwks_uri`` of ``ISSUER``'s discovery document."""
        return str(self._get("JWKS_URL") or "")

    @property
    def JWKS_CACHE_SECONDS(self) -> int:
        return max(0, int(self._get("JWKS_CACHE_SECONDS")))

    @property
    def JWKS_REFETCH_INTERVAL(self) -> int:
        """At most one key-set fetch for an unknown ``kid`` per this many seconds."""
        return max(0, int(self._get("JWKS_REFETCH_INTERVAL")))

    @property
    def ID_TOKEN_LEEWAY(self) -> int:
        """Seconds of clock skew allowed for ``exp`` and ``iat``."""
        return max(0, int(self._get("ID_TOKEN_LEEWAY")))

    @property
    def SIGN_IN_ENABLED(self) -> bool:
        """Whether ``pagero_oauth:sign_in`` works and identities are linked (else a 404)."""
        return bool(self._get("SIGN_IN_ENABLED"))

    @property
    def SIGN_IN_CREATE_USERS(self) -> bool:
        return bool(self._get("SIGN_IN_CREATE_USERS"))

    @property
    def SIGN_IN_USER_FACTORY(self) -> str:
        return str(self._get("SIGN_IN_USER_FACTORY") or DEFAULTS["SIGN_IN_USER_FACTORY"])

    @property
    def openid_requested(self) -> bool:
        """``openid`` is one of the ``SCOPE`` values: every connect flow is an OIDC flow."""
        return "openid" in self.SCOPE.split()


#: The settings, read from ``settings.PAGERO_OAUTH`` on every access: ``app_settings.TIMEOUT``.
app_settings = PageroOAuthSettings()
