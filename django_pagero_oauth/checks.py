"""System checks (``manage.py check``), ids ``django_pagero_oauth.E0xx`` / ``W0xx``.

One function per concern; every message has a hint. All are tagged ``django_pagero_oauth``
(``manage.py check --tag django_pagero_oauth``); the https and mock-server checks also
``security``. The stored-token check runs only with ``manage.py check --database <alias>``.
docs/operations.rst ("System checks") lists every id.
"""

from __future__ import annotations

import difflib
import ipaddress
import sys
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Tags, Warning
from django.core.checks import register as register_check
from django.db import DatabaseError, router
from django.utils.module_loading import import_string

from .conf import (
    CLIENT_AUTH_METHODS,
    DEFAULTS,
    MAX_REFRESH_TOKEN_LIFETIME_DAYS,
    MAX_TIMEOUT,
    SETTINGS,
    app_settings,
    has_blank_or_control,
)

APP = "django_pagero_oauth"
#: Pagero's access tokens live ten minutes ("expires_in": 600).
ACCESS_TOKEN_LIFETIME = 600
URL_SETTINGS = ("AUTHORIZE_URL", "TOKEN_URL", "REVOKE_URL", "API_BASE_URL", "JWKS_URL")
#: URL settings that may be empty (Pagero documents no revocation endpoint; an empty
#: ``JWKS_URL`` is discovered from ``ISSUER``).
OPTIONAL_URL_SETTINGS = ("REVOKE_URL", "JWKS_URL")

SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"
OUR_MIDDLEWARE = "django_pagero_oauth.middleware.PageroTokenMiddleware"
PRELOADING_BACKEND = "django_pagero_oauth.backends.PageroModelBackend"


class Messages:
    CREDENTIALS_MISSING = "PAGERO_OAUTH['{key}'] is not set."
    NOT_HTTPS = "PAGERO_OAUTH['{key}'] is not an https URL: {url!r}."
    MIDDLEWARE_MISSING = "'{middleware}' must be in MIDDLEWARE."
    MIDDLEWARE_ORDER = f"'{OUR_MIDDLEWARE}' is listed before '{AUTH_MIDDLEWARE}'."
    LEEWAY = (
        "PAGERO_OAUTH['REFRESH_LEEWAY'] must be a number of seconds from 0 to below the access "
        "token lifetime ({lifetime}), not {value!r}."
    )
    UNKNOWN_KEYS = "Unknown PAGERO_OAUTH keys: {keys}."
    AUTH_METHOD = "PAGERO_OAUTH['CLIENT_AUTH_METHOD'] is {value!r}."
    MOCK_WITHOUT_DEBUG = "The mock Pagero server is allowed to run while DEBUG is False."
    NOT_A_DICT = "PAGERO_OAUTH must be a dict."
    KEYS_INVALID = "PAGERO_OAUTH['ENCRYPTION_KEYS'] does not hold valid Fernet keys."
    UNDECRYPTABLE_TOKENS = (
        "{count} stored Pagero token(s) in database {alias!r} cannot be decrypted with the "
        "configured keys; their users must connect to Pagero again."
    )
    TIMEOUT = (
        f"PAGERO_OAUTH['TIMEOUT'] must be a positive number of seconds, at most {MAX_TIMEOUT}, "
        "not {value!r}."
    )
    URL_INVALID = "PAGERO_OAUTH['{key}'] is not an absolute http(s) URL: {url!r}."
    LIFETIME = (
        "PAGERO_OAUTH['REFRESH_TOKEN_LIFETIME_DAYS'] must be a whole number of days from 1 to "
        f"{MAX_REFRESH_TOKEN_LIFETIME_DAYS}, "
        "not {value!r}."
    )
    PROTECTED_WITHOUT_MIDDLEWARE = (
        f"PAGERO_OAUTH['PROTECTED_PATHS'] is set, but '{OUR_MIDDLEWARE}' is not in MIDDLEWARE."
    )
    PKCE_OFF = "PAGERO_OAUTH['PKCE'] is off: logins do not use PKCE (RFC 7636)."
    NO_PRELOADING_BACKEND = (
        "Pagero tokens are protected by {used}, and no authentication backend loads the token "
        "with the user: each protected request makes one extra SQL query for it."
    )
    OPENID_WITHOUT_ISSUER = "PAGERO_OAUTH['{why}'] asks for OpenID Connect, but ISSUER is not set."
    NO_SIGN_IN_BACKEND = (
        "Sign in with Pagero is enabled (SIGN_IN_ENABLED), but no AUTHENTICATION_BACKENDS entry "
        "can load its users."
    )
    USER_FACTORY = "PAGERO_OAUTH['SIGN_IN_USER_FACTORY'] cannot be imported: {path!r}."
    VALUE = "PAGERO_OAUTH['{key}'] must be {rule}, not {value!r}."
    MOCK_IN_PRODUCTION = (
        "DEBUG is False, but PAGERO_OAUTH looks like a mock Pagero server's: {why}."
    )
    RETRIES = (
        "PAGERO_OAUTH['API_RETRIES'] must be a whole number from 0 to {most} and "
        "PAGERO_OAUTH['API_RETRY_AFTER_MAX'] a number of seconds, at least 0; not {retries!r} "
        "and {cap!r}."
    )


class Hints:
    CREDENTIALS_MISSING = (
        "Set it from the client registered with Pagero (e.g. from the environment)."
    )
    NOT_HTTPS = (
        "Tokens and the client secret would travel unencrypted. Use https (only DEBUG, or a "
        "loopback address such as a local mock server, allows http)."
    )
    MIDDLEWARE_MISSING = "Pagero logins are bound to the Django session and user."
    MIDDLEWARE_ORDER = (
        "Move PageroTokenMiddleware after AuthenticationMiddleware: it needs request.user."
    )
    LEEWAY = (
        f"Pagero access tokens live {ACCESS_TOKEN_LIFETIME} seconds; the default leeway is "
        f"{DEFAULTS['REFRESH_LEEWAY']}."
    )
    UNKNOWN_KEYS = "Check the spelling against the settings reference of the documentation."
    AUTH_METHOD = f"Use one of: {', '.join(CLIENT_AUTH_METHODS)}."
    MOCK_WITHOUT_DEBUG = (
        "The mock hands out tokens to anyone. Remove 'django_pagero_oauth.testing.urls' and "
        "ALLOW_MOCK_SERVER from production settings."
    )
    NOT_A_DICT = "PAGERO_OAUTH = {'CLIENT_ID': ..., 'CLIENT_SECRET': ...}"
    KEYS_INVALID = "Generate keys with cryptography.fernet.Fernet.generate_key(), newest first."
    UNDECRYPTABLE_TOKENS = (
        "Put the key (or SECRET_KEY) they were written with back into ENCRYPTION_KEYS (or "
        "SECRET_KEY_FALLBACKS), after the new one; or delete them with "
        "'manage.py pagero_prune_tokens --undecryptable'."
    )
    TIMEOUT = (
        f"A request to Pagero must never wait forever; {DEFAULTS['TIMEOUT']:g} is the default."
    )
    URL_INVALID = (
        "Use the full URL, starting with https://, without whitespace or control characters "
        "(a value read from a file or the environment may end in a newline)."
    )
    LIFETIME = (
        "Pagero's refresh tokens live three years from their last use "
        f"({DEFAULTS['REFRESH_TOKEN_LIFETIME_DAYS']} days, the default)."
    )
    PROTECTED_WITHOUT_MIDDLEWARE = (
        "Without the middleware those paths are NOT protected. Add it after "
        "AuthenticationMiddleware, or protect the views with the decorator or mixin."
    )
    PKCE_OFF = (
        "RFC 9700 (OAuth 2.0 Security Best Current Practice) requires PKCE of every client and "
        "Pagero recommends it: without it a stolen authorization code can be redeemed. Remove "
        "'PKCE': False unless your Pagero client cannot use PKCE."
    )
    NO_PRELOADING_BACKEND = (
        f"Put '{PRELOADING_BACKEND}' in AUTHENTICATION_BACKENDS in place of Django's "
        "ModelBackend (docs: Protecting views, Zero-query protected requests). Users logged in through the old "
        "backend must log in once more."
    )
    OPENID_WITHOUT_ISSUER = (
        "An id_token is verified against the issuer: set ISSUER to the iss value Pagero sends."
    )
    NO_SIGN_IN_BACKEND = (
        "Use 'django_pagero_oauth.backends.PageroModelBackend' (it also serves password "
        "logins), or another subclass of django.contrib.auth.backends.ModelBackend."
    )
    USER_FACTORY = "A dotted path to a callable(claims, request) that returns a saved user."
    VALUE = "Its default is {default!r}; the settings reference of the documentation says more."
    MOCK_IN_PRODUCTION = (
        "The site would trust whatever listens there as Pagero (any local process can bind a "
        "loopback port): send it the client secret and take its id_tokens as Pagero's. Use "
        "Pagero's https endpoints and your client's own credentials in production, or add "
        "this id to SILENCED_SYSTEM_CHECKS for a local proxy to Pagero that you trust."
    )
    RETRIES = (
        "Each retry holds the caller while it waits; 0 (the default) turns retries off, 2 or 3 "
        "is plenty."
    )


class Codes:
    CREDENTIALS_MISSING = f"{APP}.E001"
    NOT_HTTPS = f"{APP}.E002"
    MIDDLEWARE_ORDER = f"{APP}.E003"
    MIDDLEWARE_MISSING = f"{APP}.E004"
    LEEWAY = f"{APP}.E005"
    AUTH_METHOD = f"{APP}.E006"
    MOCK_WITHOUT_DEBUG = f"{APP}.E007"
    NOT_A_DICT = f"{APP}.E008"
    KEYS_INVALID = f"{APP}.E009"
    TIMEOUT = f"{APP}.E011"
    URL_INVALID = f"{APP}.E012"
    LIFETIME = f"{APP}.E013"
    RETRIES = f"{APP}.E017"
    VALUE = f"{APP}.E018"
    UNKNOWN_KEYS = f"{APP}.W001"
    OPENID_WITHOUT_ISSUER = f"{APP}.E014"
    NO_SIGN_IN_BACKEND = f"{APP}.E015"
    USER_FACTORY = f"{APP}.E016"
    PROTECTED_WITHOUT_MIDDLEWARE = f"{APP}.W002"
    UNDECRYPTABLE_TOKENS = f"{APP}.W003"
    PKCE_OFF = f"{APP}.W004"
    MOCK_IN_PRODUCTION = f"{APP}.W005"
    NO_PRELOADING_BACKEND = f"{APP}.I001"


def _user_settings() -> dict[str, Any]:
    return app_settings.user_settings


def check_settings_type(**kwargs: Any) -> list[CheckMessage]:
    value = getattr(settings, "PAGERO_OAUTH", {})
    if not isinstance(value, dict):
        return [Error(Messages.NOT_A_DICT, hint=Hints.NOT_A_DICT, id=Codes.NOT_A_DICT)]
    return []


def check_credentials(**kwargs: Any) -> list[CheckMessage]:
    return [
        Error(
            Messages.CREDENTIALS_MISSING.format(key=key),
            hint=Hints.CREDENTIALS_MISSING,
            id=Codes.CREDENTIALS_MISSING,
        )
        for key in ("CLIENT_ID", "CLIENT_SECRET")
        if not _user_settings().get(key)
    ]


def is_loopback(host: str | None) -> bool:
    """``localhost`` or a loopback IP: traffic that never leaves the machine."""
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_urls(**kwargs: Any) -> list[CheckMessage]:
    """Every endpoint is an absolute http(s) URL (``REVOKE_URL`` may be empty)."""
    errors: list[CheckMessage] = []
    for key in URL_SETTINGS:
        url = getattr(app_settings, key)
        if not url and key in OPTIONAL_URL_SETTINGS:
            continue
        split = urlsplit(url)
        # urlsplit strips and removes blanks and control characters; the app uses the raw
        # value, so such a URL is refused, not read as the URL it would be without them.
        if split.scheme not in ("http", "https") or not split.hostname or has_blank_or_control(url):
            errors.append(
                Error(
                    Messages.URL_INVALID.format(key=key, url=url),
                    hint=Hints.URL_INVALID,
                    id=Codes.URL_INVALID,
                )
            )
    return errors


def check_https(**kwargs: Any) -> list[CheckMessage]:
    """Without DEBUG, endpoints are https, except on a loopback address (a local mock)."""
    if settings.DEBUG:
        return []
    errors: list[CheckMessage] = []
    # ISSUER too: the OpenID Connect key set is discovered from it, over https only; and
    # REDIRECT_URI, to which Pagero sends the browser with the authorization code.
    for key in (*URL_SETTINGS, "ISSUER", "REDIRECT_URI"):
        url = getattr(app_settings, key)
        split = urlsplit(url)
        if split.scheme == "http" and split.hostname and not is_loopback(split.hostname):
            errors.append(
                Error(
                    Messages.NOT_HTTPS.format(key=key, url=url),
                    hint=Hints.NOT_HTTPS,
                    id=Codes.NOT_HTTPS,
                )
            )
    return errors


#: The credentials of the mock Pagero server (``testing.mock``), published in its docs.
MOCK_CREDENTIALS = {"CLIENT_ID": "mock-client-id", "CLIENT_SECRET": "mock-client-secret"}


def check_mock_in_production(**kwargs: Any) -> list[CheckMessage]:
    """Without DEBUG, Pagero's endpoints on a loopback address (``mock_settings`` of a local
    mock pasted into production settings) or the mock's published credentials (``W005``)."""
    if settings.DEBUG:
        return []
    reasons = [
        f"{key} is on a loopback address"
        for key in (*URL_SETTINGS, "ISSUER")
        if is_loopback(urlsplit(getattr(app_settings, key)).hostname)
    ]
    reasons += [
        f"{key} is the mock's"
        for key, value in MOCK_CREDENTIALS.items()
        if _user_settings().get(key) == value
    ]
    if not reasons:
        return []
    return [
        Warning(
            Messages.MOCK_IN_PRODUCTION.format(why=", ".join(reasons)),
            hint=Hints.MOCK_IN_PRODUCTION,
            id=Codes.MOCK_IN_PRODUCTION,
        )
    ]


def _middleware_index(middleware: Sequence[str], path: str) -> int | None:
    """Index of ``path`` or of a subclass of it in ``middleware`` (like the admin's checks)."""
    try:
        wanted = import_string(path)
    except ImportError:  # pragma: no cover - Django's and our own middleware always import
        wanted = None
    for index, candidate in enumerate(middleware):
        if candidate == path:
            return index
        try:
            cls = import_string(candidate)
        except ImportError:
            continue  # Django reports an unimportable middleware itself
        if wanted is not None and isinstance(cls, type) and issubclass(cls, wanted):
            return index
    return None


def check_middleware(**kwargs: Any) -> list[CheckMessage]:
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    errors: list[CheckMessage] = []
    for required in (SESSION_MIDDLEWARE, AUTH_MIDDLEWARE):
        if _middleware_index(middleware, required) is None:
            errors.append(
                Error(
                    Messages.MIDDLEWARE_MISSING.format(middleware=required),
                    hint=Hints.MIDDLEWARE_MISSING,
                    id=Codes.MIDDLEWARE_MISSING,
                )
            )
    ours = _middleware_index(middleware, OUR_MIDDLEWARE)
    auth = _middleware_index(middleware, AUTH_MIDDLEWARE)
    if ours is not None and auth is not None and ours < auth:
        errors.append(
            Error(Messages.MIDDLEWARE_ORDER, hint=Hints.MIDDLEWARE_ORDER, id=Codes.MIDDLEWARE_ORDER)
        )
    if ours is None and _user_settings().get("PROTECTED_PATHS"):
        errors.append(
            Warning(
                Messages.PROTECTED_WITHOUT_MIDDLEWARE,
                hint=Hints.PROTECTED_WITHOUT_MIDDLEWARE,
                id=Codes.PROTECTED_WITHOUT_MIDDLEWARE,
            )
        )
    return errors


def _has_preloading_backend() -> bool:
    from .backends import PageroModelBackend

    for path in getattr(settings, "AUTHENTICATION_BACKENDS", None) or []:
        try:
            backend = import_string(path)
        except ImportError:
            continue  # Django reports it when it authenticates
        if isinstance(backend, type) and issubclass(backend, PageroModelBackend):
            return True
    return False


def _callbacks(patterns: Sequence[Any]) -> Iterator[Any]:
    """Every view callable of a URLconf, included ones too."""
    for pattern in patterns:
        if hasattr(pattern, "url_patterns"):
            yield from _callbacks(pattern.url_patterns)
        elif callable(getattr(pattern, "callback", None)):
            yield pattern.callback


def _is_guarded_view(callback: Any) -> bool:
    """Behind ``@pagero_token_required``, ``PageroTokenRequiredMixin`` or DRF's
    ``HasPageroToken``."""
    from .mixins import PageroTokenRequiredMixin

    if getattr(callback, "pagero_token_required", False):
        return True
    view_class = getattr(callback, "view_class", None)
    if isinstance(view_class, type) and issubclass(view_class, PageroTokenRequiredMixin):
        return True
    # Loaded only where a view module imported it (so only where DRF is installed).
    drf = sys.modules.get("django_pagero_oauth.contrib.rest_framework")
    permissions = getattr(getattr(callback, "cls", None), "permission_classes", None) or ()
    return drf is not None and any(
        isinstance(permission, type) and issubclass(permission, drf.HasPageroToken)
        for permission in permissions
    )


def _guards_in_use() -> list[str]:
    used = []
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if _middleware_index(middleware, OUR_MIDDLEWARE) is not None:
        used.append("PageroTokenMiddleware")
    from django.urls import get_resolver

    try:
        callbacks = list(_callbacks(get_resolver().url_patterns))
    except Exception:  # a broken URLconf: Django's own URL checks report it
        callbacks = []
    if any(_is_guarded_view(callback) for callback in callbacks):
        used.append("views (decorator, mixin or HasPageroToken)")
    return used


def check_preloading_backend(**kwargs: Any) -> list[CheckMessage]:
    """Info: the middleware or guarded views run without ``PageroModelBackend``."""
    if _has_preloading_backend():
        return []
    used = _guards_in_use()
    if not used:
        return []
    return [
        Info(
            Messages.NO_PRELOADING_BACKEND.format(used=" and ".join(used)),
            hint=Hints.NO_PRELOADING_BACKEND,
            id=Codes.NO_PRELOADING_BACKEND,
        )
    ]


def _converted(name: str) -> Any:
    """The setting as the app reads it (``conf`` converts it), or ``None`` if it cannot or
    if it is a bool (``True`` is not a number of seconds or days, though ``int`` reads 1)."""
    if isinstance(_user_settings().get(name), bool):
        return None
    try:
        return getattr(app_settings, name)
    except (TypeError, ValueError, OverflowError):  # int(float("inf")) is an OverflowError
        return None


def check_values(**kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    user_settings = _user_settings()
    leeway = _converted("REFRESH_LEEWAY")
    if leeway is None or not 0 <= leeway < ACCESS_TOKEN_LIFETIME:
        messages.append(
            Error(
                Messages.LEEWAY.format(
                    lifetime=ACCESS_TOKEN_LIFETIME, value=user_settings.get("REFRESH_LEEWAY")
                ),
                hint=Hints.LEEWAY,
                id=Codes.LEEWAY,
            )
        )
    if app_settings.CLIENT_AUTH_METHOD not in CLIENT_AUTH_METHODS:
        messages.append(
            Error(
                Messages.AUTH_METHOD.format(value=app_settings.CLIENT_AUTH_METHOD),
                hint=Hints.AUTH_METHOD,
                id=Codes.AUTH_METHOD,
            )
        )
    # conf turns a TIMEOUT of None into the default; an explicit None is still a mistake.
    timeout = _converted("TIMEOUT") if user_settings.get("TIMEOUT", 0) is not None else None
    if timeout is None or not 0 < timeout <= MAX_TIMEOUT:  # "not" also catches NaN
        messages.append(
            Error(
                Messages.TIMEOUT.format(value=user_settings.get("TIMEOUT")),
                hint=Hints.TIMEOUT,
                id=Codes.TIMEOUT,
            )
        )
    raw_days = user_settings.get("REFRESH_TOKEN_LIFETIME_DAYS", 1)
    days = _converted("REFRESH_TOKEN_LIFETIME_DAYS")
    if (
        days is None
        or not 0 < days <= MAX_REFRESH_TOKEN_LIFETIME_DAYS
        or (isinstance(raw_days, float) and raw_days != days)  # 1.5 days would be read as 1
    ):
        messages.append(
            Error(
                Messages.LIFETIME.format(value=user_settings.get("REFRESH_TOKEN_LIFETIME_DAYS")),
                hint=Hints.LIFETIME,
                id=Codes.LIFETIME,
            )
        )
    messages += _check_retries(user_settings)
    return messages


def check_setting_values(**kwargs: Any) -> list[CheckMessage]:
    """Every key that is set has a value of its kind and range (``Setting.validate`` in
    ``conf``), so that a wrong one is reported here, not met at a user's first login or
    quietly replaced. Keys with a check of their own (``Setting.checked_by``) are left to it."""
    user_settings = _user_settings()
    messages: list[CheckMessage] = []
    for setting in SETTINGS:
        if setting.name not in user_settings or setting.validate is None:
            continue
        value = user_settings[setting.name]
        rule = setting.validate(value)
        if rule is not None:
            messages.append(
                Error(
                    Messages.VALUE.format(key=setting.name, rule=rule, value=value),
                    hint=Hints.VALUE.format(default=setting.default),
                    id=Codes.VALUE,
                )
            )
    return messages


#: More retries than this hold a caller for minutes: surely a mistake.
MOST_API_RETRIES = 10


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_retries(user_settings: dict[str, Any]) -> list[CheckMessage]:
    retries = user_settings.get("API_RETRIES", DEFAULTS["API_RETRIES"])
    cap = user_settings.get("API_RETRY_AFTER_MAX", DEFAULTS["API_RETRY_AFTER_MAX"])
    retries_ok = (
        _is_number(retries) and retries == int(retries) and 0 <= retries <= MOST_API_RETRIES
    )
    if retries_ok and _is_number(cap) and cap >= 0 and cap != float("inf"):  # NaN fails >=
        return []
    return [
        Error(
            Messages.RETRIES.format(most=MOST_API_RETRIES, retries=retries, cap=cap),
            hint=Hints.RETRIES,
            id=Codes.RETRIES,
        )
    ]


def check_unknown_keys(**kwargs: Any) -> list[CheckMessage]:
    """A misspelt key would silently fall back to its default: say so, and suggest the name."""
    unknown = sorted(str(key) for key in set(_user_settings()) - set(DEFAULTS))
    if not unknown:
        return []
    suggestions = [
        f"{key!r} -> {match[0]!r}"
        for key in unknown
        if (match := difflib.get_close_matches(key.upper(), DEFAULTS, n=1, cutoff=0.6))
    ]
    hint = Hints.UNKNOWN_KEYS
    if suggestions:
        hint = f"Did you mean {', '.join(suggestions)}? {hint}"
    return [
        Warning(
            Messages.UNKNOWN_KEYS.format(keys=", ".join(unknown)),
            hint=hint,
            id=Codes.UNKNOWN_KEYS,
        )
    ]


def check_pkce(**kwargs: Any) -> list[CheckMessage]:
    """PKCE is the default; turning it off is possible (Pagero's flow without it) but flagged."""
    if app_settings.PKCE:
        return []
    return [Warning(Messages.PKCE_OFF, hint=Hints.PKCE_OFF, id=Codes.PKCE_OFF)]


def check_openid(**kwargs: Any) -> list[CheckMessage]:
    """OpenID Connect (``openid`` in ``SCOPE``, or ``SIGN_IN_ENABLED``) needs ``ISSUER``;
    sign-in needs a backend that loads users by id, and a user factory that imports. A site
    that does not enable sign-in is not asked about either."""
    from .signin import login_backend

    messages: list[CheckMessage] = []
    sign_in = app_settings.SIGN_IN_ENABLED
    if (app_settings.openid_requested or sign_in) and not app_settings.ISSUER:
        messages.append(
            Error(
                Messages.OPENID_WITHOUT_ISSUER.format(
                    why="SIGN_IN_ENABLED" if sign_in else "SCOPE"
                ),
                hint=Hints.OPENID_WITHOUT_ISSUER,
                id=Codes.OPENID_WITHOUT_ISSUER,
            )
        )
    if sign_in and login_backend() is None:
        messages.append(
            Error(
                Messages.NO_SIGN_IN_BACKEND,
                hint=Hints.NO_SIGN_IN_BACKEND,
                id=Codes.NO_SIGN_IN_BACKEND,
            )
        )
    if sign_in and app_settings.SIGN_IN_CREATE_USERS:
        path = app_settings.SIGN_IN_USER_FACTORY
        try:
            import_string(path)
        except ImportError:
            messages.append(
                Error(
                    Messages.USER_FACTORY.format(path=path),
                    hint=Hints.USER_FACTORY,
                    id=Codes.USER_FACTORY,
                )
            )
    return messages


def check_mock_server(**kwargs: Any) -> list[CheckMessage]:
    if not settings.DEBUG and app_settings.ALLOW_MOCK_SERVER:
        return [
            Error(
                Messages.MOCK_WITHOUT_DEBUG,
                hint=Hints.MOCK_WITHOUT_DEBUG,
                id=Codes.MOCK_WITHOUT_DEBUG,
            )
        ]
    return []


def _keys_valid() -> bool:
    from .crypto import get_keyring
    from .exceptions import TokenDecryptionError

    try:
        get_keyring()
    except (TokenDecryptionError, TypeError, ValueError, AttributeError):
        return False
    return True


def check_encryption_keys(**kwargs: Any) -> list[CheckMessage]:
    if "ENCRYPTION_KEYS" not in _user_settings() or _keys_valid():
        return []
    return [Error(Messages.KEYS_INVALID, hint=Hints.KEYS_INVALID, id=Codes.KEYS_INVALID)]


def check_stored_tokens_decrypt(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[CheckMessage]:
    """Count the stored tokens that cannot be decrypted with the configured keys (``W003``).

    Cheap: one ``COUNT`` on the key id every value starts with (nothing is decrypted). A warning, not an error: for their users such a token only means
    "connect again". Runs with ``manage.py check --database`` (Django 5.2, 6.0), with every
    ``check`` from Django 6.1 on (which checks all databases by default), and in
    ``pagero_check``.
    """
    from .models import PageroToken

    if not databases or not _keys_valid():
        return []  # E009 reports unusable keys
    messages: list[CheckMessage] = []
    for alias in databases:
        if not router.allow_migrate_model(alias, PageroToken):
            continue
        try:
            count = PageroToken.objects.using(alias).count_undecryptable()
        except DatabaseError:
            continue  # not migrated yet: nothing stored to check
        if count:
            messages.append(
                Warning(
                    Messages.UNDECRYPTABLE_TOKENS.format(count=count, alias=alias),
                    hint=Hints.UNDECRYPTABLE_TOKENS,
                    id=Codes.UNDECRYPTABLE_TOKENS,
                )
            )
    return messages


#: The checks that need no database, in the order ``pagero_check`` reports them.
CONFIGURATION_CHECKS = (
    check_settings_type,
    check_credentials,
    check_urls,
    check_https,
    check_middleware,
    check_values,
    check_setting_values,
    check_unknown_keys,
    check_pkce,
    check_mock_server,
    check_mock_in_production,
    check_encryption_keys,
    check_openid,
)
_SECURITY_CHECKS = (check_https, check_pkce, check_mock_server, check_mock_in_production)


def run_configuration_checks() -> list[CheckMessage]:
    """Every configuration check's messages (what the management commands validate first),
    except those ``SILENCED_SYSTEM_CHECKS`` names, as in ``manage.py check``."""
    return [
        message
        for check in CONFIGURATION_CHECKS
        for message in check()
        if not message.is_silenced()
    ]


def register() -> None:
    for check in CONFIGURATION_CHECKS:
        tags = (APP, Tags.security) if check in _SECURITY_CHECKS else (APP,)
        register_check(check, *tags)
    register_check(check_stored_tokens_decrypt, APP, Tags.database)
    # Not among CONFIGURATION_CHECKS: an Info is advice, not something a command should print.
    register_check(check_preloading_backend, APP, Tags.urls)
