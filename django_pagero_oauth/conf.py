"""Settings of django-pagero-oauth.

Everything lives in ONE dict, ``settings.PAGERO_OAUTH``. Each key is declared once, here: a
:class:`~django_pagero_oauth.kinds.Setting` attribute of the class of its section of the
settings reference, holding its type, default and description (the reference is generated
from them), how the app reads it and the rule its value must follow (the system checks apply
it). :data:`app_settings` inherits every section: it reads the dict on every attribute access
(never caches, never writes defaults back onto ``django.conf.settings``), so
``override_settings``, pytest-django's ``settings`` fixture and a dict changed in place just
work."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings

from .kinds import (
    Flag,
    Setting,
    Text,
    Url,
    Whole,
    dotted_path,
    number,
    one_of,
    optional_text,
    optional_url,
    readable,
    regular_expressions,
    text_or_texts,
    texts,
)

#: The most seconds (one day) a duration setting may hold: more is surely a mistake, and a
#: huge one overflows a cache timeout or a date.
MAX_SECONDS = 24 * 60 * 60
#: The longest ``TIMEOUT``: a request to Pagero must never wait (nearly) forever.
MAX_TIMEOUT = 300
#: The longest ``REFRESH_TOKEN_LIFETIME_DAYS`` (ten years); the expiry date is computed with
#: at most this, so that no value can make storing a rotated refresh token fail.
MAX_REFRESH_TOKEN_LIFETIME_DAYS = 3650
#: Pagero's access tokens live ten minutes ("expires_in": 600).
ACCESS_TOKEN_LIFETIME = 600
#: More API retries than this hold a caller for minutes: surely a mistake.
MOST_API_RETRIES = 10
#: A refresh token that dies within this many days is flagged (admin, ``pagero_refresh_tokens``,
#: the Celery keep-alive); also importable from :mod:`django_pagero_oauth.models`.
REFRESH_TOKEN_WARNING_DAYS = 30

CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
DEFAULT_USER_FACTORY = "django_pagero_oauth.signin.create_user_from_claims"

_RETRIES_HINT = "Each retry holds the caller while it waits; 0 turns retries off, 2 or 3 is plenty."


class ClientSettings:
    """URLs and the client"""

    CLIENT_ID = Text("", "The client id Pagero registered for your site. Required (``E001``).")
    CLIENT_SECRET = Text("", "Its secret. Required (``E001``). Never logged.")
    CLIENT_AUTH_METHOD = Text(
        "client_secret_basic",
        "How the client authenticates at the token and revocation endpoints (RFC 6749 2.3.1): "
        '``"client_secret_basic"`` (HTTP Basic, Pagero\'s documented example) or '
        '``"client_secret_post"`` (``client_id`` and ``client_secret`` in the form). '
        "Anything else is ``E006``.",
        rule=one_of(CLIENT_AUTH_METHODS),
        check="E006",
    )
    AUTHORIZE_URL = Url(
        "https://sso.pageroonline.com/oauth/v2/oauth-authorize",
        "Pagero's login page (the authorization endpoint). Query parameters already in the "
        "URL are kept.",
    )
    TOKEN_URL = Url(
        "https://sso.pageroonline.com/oauth/v2/oauth-token",
        "The token endpoint: code exchange and refresh.",
    )
    REVOKE_URL = Url(
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
        optional=True,
    )
    API_BASE_URL = Url(
        "https://api.pageroonline.com",
        "What ``get_client`` resolves relative URLs against, and the only place its bearer "
        "token goes (see :ref:`the URL rule <url-rule>`).",
    )
    REDIRECT_URI = Text(
        "",
        "The ``redirect_uri`` sent to Pagero; it must be exactly the one registered for the "
        "client. Empty: the absolute URL of ``pagero_oauth:callback`` built from the request "
        "(scheme and host as Django sees them; behind a proxy set this explicitly).",
        rule=optional_url,
    )
    SCOPE = Setting(
        "str or list of str",
        "all",
        'The ``scope`` requested; a list is joined with spaces. ``"openid"`` in it makes '
        "Pagero add an ``id_token``. Empty: no ``scope`` parameter is sent.",
        read=lambda value: " ".join(texts(value)),
        rule=text_or_texts,
    )
    ISSUER = Text(
        "",
        "When set, the callback requires Pagero's ``iss`` parameter to be exactly this string "
        "(RFC 9207; a missing ``iss`` is refused too). Empty: ``iss`` is not checked. Required "
        "for OpenID Connect (``E014``): an ``id_token``'s ``iss`` must equal it, and the key "
        "set is discovered from it. Setting it does not enable sign-in (``SIGN_IN_ENABLED`` "
        "does).",
        rule=optional_url,
    )
    PKCE = Flag(
        True,
        "Use PKCE with ``S256`` (RFC 7636): RFC 9700 requires it of every client and Pagero "
        "recommends it. ``False`` gives Pagero's documented flow without PKCE, for a client "
        "that cannot use it; system check ``W004`` warns about it.",
    )
    TIMEOUT = Setting(
        "float, seconds",
        10.0,
        "The timeout of every HTTP call to Pagero (token, revocation, and ``get_client`` "
        "requests that do not pass their own). ``None`` means the default; it must be a "
        "positive number of at most 300 seconds (``E011``).",
        read=float,
        rule=readable(
            float,
            lambda s: 0 < s <= MAX_TIMEOUT,
            f"a positive number of seconds, at most {MAX_TIMEOUT}",
        ),
        check="E011",
        hint="A request to Pagero must never wait forever.",
    )
    API_RETRIES = Whole(
        0,
        "How many times ``get_client`` and ``aget_client`` retry an idempotent API request "
        "(``GET``, ``HEAD``, ``OPTIONS``, ``PUT``, ``DELETE``) that Pagero answered with 429, "
        "502, 503 or 504, waiting for its ``Retry-After``. ``0``: never (``E017`` checks it is "
        "a whole number from 0 to 10). Token and revocation requests are never retried.",
        minimum=0,
        maximum=MOST_API_RETRIES,
        unit="",
        rule=readable(
            number,
            lambda n: n == int(n) and 0 <= n <= MOST_API_RETRIES,
            f"a whole number from 0 to {MOST_API_RETRIES}",
        ),
        check="E017",
        hint=_RETRIES_HINT,
    )
    API_RETRY_AFTER_MAX = Setting(
        "float, seconds",
        10.0,
        "The longest ``Retry-After`` a retry waits for; a longer one ends the retries and that "
        "answer goes to the caller.",
        read=lambda value: max(0.0, float(value)),
        rule=readable(number, lambda s: 0 <= s < math.inf, "a number of seconds, at least 0"),
        check="E017",
        hint=_RETRIES_HINT,
    )


class TokenSettings:
    """Tokens"""

    ENCRYPTION_KEYS = Setting(
        "list of str",
        [],
        "Fernet keys that encrypt the stored tokens, newest first: the first encrypts, all "
        "decrypt. A single string is accepted too. Empty: keys are derived (HKDF-SHA256) from "
        "``SECRET_KEY`` and then each of ``SECRET_KEY_FALLBACKS``. Keys that are not Fernet "
        "keys are ``E009``. See :ref:`key-rotation`.",
        read=texts,
        rule=None,
        check="E009",
    )
    REFRESH_LEEWAY = Whole(
        60,
        "Refresh when the access token is valid for less than this (capped at half the "
        "token's lifetime, so very short-lived tokens are not refreshed on every use). Must be "
        "at least 0 and below 600, Pagero's access-token lifetime (``E005``).",
        minimum=0,
        maximum=ACCESS_TOKEN_LIFETIME - 1,
        rule=readable(
            int,
            lambda s: 0 <= s < ACCESS_TOKEN_LIFETIME,
            "a number of seconds from 0 to below the access token lifetime "
            f"({ACCESS_TOKEN_LIFETIME})",
        ),
        check="E005",
        hint=f"Pagero access tokens live {ACCESS_TOKEN_LIFETIME} seconds.",
    )
    REFRESH_FAILURE_BACKOFF = Whole(
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
        minimum=0,
        maximum=MAX_SECONDS,
    )
    REFRESH_TOKEN_LIFETIME_DAYS = Whole(
        3 * 365,
        "The refresh token's rolling lifetime (Pagero: three years from the last refresh). A "
        "token past it is treated as dead without asking Pagero. A whole number from 1 to "
        "3650 (``E013``).",
        minimum=1,
        maximum=MAX_REFRESH_TOKEN_LIFETIME_DAYS,
        unit="days",
        check="E013",
        hint="Pagero's refresh tokens live three years from their last use.",
    )


class LoginSettings:
    """The login flow"""

    LOGIN_REDIRECT_URL = Text(
        "",
        "Where the callback lands when there is no (acceptable) ``next``. Empty: Django's "
        "``settings.LOGIN_REDIRECT_URL``. A URL name works too.",
        rule=optional_text,
        read=lambda value: str(value or settings.LOGIN_REDIRECT_URL),
    )
    REVOKE_REPLACED_TOKEN = Flag(
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
    )
    STATE_MAX_AGE = Whole(
        600,
        "How long a started login may take before its callback is refused.",
        minimum=1,
        maximum=MAX_SECONDS,
    )
    MAX_PENDING_FLOWS = Whole(
        5,
        "How many logins one browser session may have in progress (e.g. in several tabs); "
        "the oldest is dropped first. At least 1.",
        minimum=1,
        maximum=100,
        unit="",
    )


class ProtectionSettings:
    """Protecting views"""

    PROTECTED_PATHS = Setting(
        "list of str",
        [],
        "Regular expressions; with the middleware installed, requests whose ``path_info`` "
        "matches one (``re.match``) need a valid token. A single string is accepted too "
        "(``W002`` when the middleware is missing).",
        read=texts,
        rule=regular_expressions,
    )
    UNAVAILABLE_RETRY_AFTER = Whole(
        30,
        "The ``Retry-After`` of the 503 answer when Pagero did not send one.",
        minimum=0,
        maximum=MAX_SECONDS,
    )
    RESPONSE_HANDLER = Text(
        "",
        "Dotted path to a callable ``(request, exc) -> HttpResponse`` that replaces the "
        "built-in answer of the decorator, mixin and middleware. ``exc`` is ``None`` for an "
        "anonymous user, else a ``PageroAuthorizationRequired`` (log in at Pagero), a "
        "``PageroUnavailable`` or a ``PageroConfigurationError`` (both in "
        "``exceptions.SERVICE_ERRORS``: answer 503, not a login).",
        rule=dotted_path,
    )


class SignInSettings:
    """Sign in with Pagero (OpenID Connect)"""

    JWKS_URL = Url(
        "",
        "The issuer's key set (RFC 7517). Empty: the ``jwks_uri`` of ``ISSUER + "
        '"/.well-known/openid-configuration"``, whose ``issuer`` must equal ``ISSUER``. Must '
        "be https with ``DEBUG`` off (``E002``; a loopback host is allowed).",
        optional=True,
    )
    JWKS_CACHE_SECONDS = Whole(
        3600,
        "How long the key set (and the discovery result) stay in Django's default cache.",
        minimum=0,
        maximum=MAX_SECONDS,
    )
    JWKS_REFETCH_INTERVAL = Whole(
        60,
        "An ``id_token`` signed with an unknown ``kid`` fetches the key set again (a key "
        "rotation at Pagero), at most once per this interval; within it such a login is a 503 "
        '("try again").',
        minimum=0,
        maximum=MAX_SECONDS,
    )
    ID_TOKEN_LEEWAY = Whole(
        60,
        "Clock skew allowed when checking an ``id_token``'s ``exp`` and ``iat``.",
        minimum=0,
        maximum=3600,
    )
    SIGN_IN_ENABLED = Flag(
        False,
        '"Sign in with Pagero" is a second way to log in, so it is off unless the site asks for '
        "it. Off: ``pagero_oauth:sign_in`` answers 404, a sign-in flow started before it was "
        "switched off is refused, and a connect with ``openid`` in ``SCOPE`` verifies the "
        "``id_token`` but links no identity. On: needs ``ISSUER`` (``E014``) and a backend that "
        "can load signed-in users (``E015``); a new identity is linked to a logged-in user only "
        "after they confirm it on ``pagero_oauth:link_identity`` (a CSRF-protected POST).",
    )
    SIGN_IN_CREATE_USERS = Flag(
        False,
        "Whether signing in with a Pagero identity that no user is linked to creates a user. "
        "Off: the visitor is told to log in and then sign in with Pagero, which links the "
        "identity.",
    )
    SIGN_IN_USER_FACTORY = Text(
        DEFAULT_USER_FACTORY,
        "Dotted path to ``factory(claims, request) -> user`` (a saved user), called inside the "
        "sign-in's transaction. ``claims`` is an ``IdTokenClaims`` (``issuer``, ``subject``, "
        "``claims``). The default creates ``pagero-<hash of issuer and sub>`` (a random suffix "
        "when that name is taken) with an unusable password, and uses no other claim. "
        "``E016`` when it cannot be imported.",
        rule=optional_text,
        read=lambda value: str(value) or DEFAULT_USER_FACTORY,
    )


class DevelopmentSettings:
    """Development"""

    ALLOW_MOCK_SERVER = Flag(
        False,
        "Lets the mock server mounted with ``django_pagero_oauth.testing.urls`` answer while "
        "``DEBUG`` is off (it answers 404 otherwise). ``E007`` when set with ``DEBUG`` off: "
        "never in production.",
    )


class PageroOAuthSettings(
    ClientSettings,
    TokenSettings,
    LoginSettings,
    ProtectionSettings,
    SignInSettings,
    DevelopmentSettings,
):
    """Typed, lazy view of ``settings.PAGERO_OAUTH``: ``app_settings.NAME`` is the setting
    ``NAME`` as the app uses it."""

    @property
    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, "PAGERO_OAUTH", None)
        return value if isinstance(value, dict) else {}

    @property
    def openid_requested(self) -> bool:
        """``openid`` is one of the ``SCOPE`` values: every connect flow is an OIDC flow."""
        return "openid" in self.SCOPE.split()


#: The sections of the settings reference, in the order it shows them, and their titles.
SECTIONS: tuple[type, ...] = PageroOAuthSettings.__bases__
GROUPS = tuple(str(section.__doc__) for section in SECTIONS)
#: Every setting, in the order of the settings reference.
SETTINGS: tuple[Setting[Any], ...] = tuple(
    value for section in SECTIONS for value in vars(section).values() if isinstance(value, Setting)
)
#: Every setting, with its default.
DEFAULTS: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}

#: The settings, read from ``settings.PAGERO_OAUTH`` on every access: ``app_settings.TIMEOUT``.
app_settings = PageroOAuthSettings()
