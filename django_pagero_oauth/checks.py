"""System checks (``manage.py check``), ids ``django_pagero_oauth.E0xx`` / ``W0xx``.

One function per concern; each message has a hint. Listed in the README.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning
from django.core.checks import register as register_check
from django.db import DatabaseError

from .conf import CLIENT_AUTH_METHODS, DEFAULTS, app_settings

APP = "django_pagero_oauth"
ACCESS_TOKEN_LIFETIME = 600
URL_SETTINGS = ("AUTHORIZE_URL", "TOKEN_URL", "REVOKE_URL", "API_BASE_URL")


class Messages:
    CREDENTIALS_MISSING = "PAGERO_OAUTH['{key}'] is not set."
    NOT_HTTPS = "PAGERO_OAUTH['{key}'] is not an https URL: {url!r}."
    MIDDLEWARE_MISSING = "'{middleware}' must be in MIDDLEWARE."
    MIDDLEWARE_ORDER = (
        "'django_pagero_oauth.middleware.PageroTokenMiddleware' is listed before "
        "'django.contrib.auth.middleware.AuthenticationMiddleware'."
    )
    LEEWAY = "PAGERO_OAUTH['REFRESH_LEEWAY'] ({value}) is not below the access token lifetime."
    UNKNOWN_KEYS = "Unknown PAGERO_OAUTH keys: {keys}."
    AUTH_METHOD = "PAGERO_OAUTH['CLIENT_AUTH_METHOD'] is {value!r}."
    MOCK_WITHOUT_DEBUG = "The mock Pagero server is allowed to run while DEBUG is False."
    NOT_A_DICT = "PAGERO_OAUTH must be a dict."
    KEYS_INVALID = "PAGERO_OAUTH['ENCRYPTION_KEYS'] does not hold valid Fernet keys."
    CANNOT_DECRYPT = "Stored Pagero tokens cannot be decrypted with the configured keys."
    TIMEOUT = "PAGERO_OAUTH['TIMEOUT'] must be a positive number of seconds, not {value!r}."


class Hints:
    CREDENTIALS_MISSING = (
        "Set it from the client registered with Pagero (e.g. from the environment)."
    )
    NOT_HTTPS = (
        "Tokens and the client secret would travel unencrypted. Use https (only DEBUG allows http)."
    )
    MIDDLEWARE_MISSING = "Pagero logins are bound to the Django session and user."
    MIDDLEWARE_ORDER = (
        "Move PageroTokenMiddleware after AuthenticationMiddleware: it needs request.user."
    )
    LEEWAY = "Pagero access tokens live 600 seconds; a leeway of 60 is the default."
    UNKNOWN_KEYS = "Check the spelling against the settings listed in the README."
    AUTH_METHOD = f"Use one of: {', '.join(CLIENT_AUTH_METHODS)}."
    MOCK_WITHOUT_DEBUG = (
        "The mock hands out tokens to anyone. Remove 'django_pagero_oauth.testing.urls' and "
        "ALLOW_MOCK_SERVER from production settings."
    )
    NOT_A_DICT = "PAGERO_OAUTH = {'CLIENT_ID': ..., 'CLIENT_SECRET': ...}"
    KEYS_INVALID = "Generate keys with cryptography.fernet.Fernet.generate_key(), newest first."
    CANNOT_DECRYPT = (
        "Put the key (or SECRET_KEY) the tokens were written with back into ENCRYPTION_KEYS "
        "(or SECRET_KEY_FALLBACKS), after the new one."
    )
    TIMEOUT = "A request to Pagero must never wait forever; 10 is the default."


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
    CANNOT_DECRYPT = f"{APP}.E010"
    TIMEOUT = f"{APP}.E011"
    UNKNOWN_KEYS = f"{APP}.W001"


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
        if not getattr(app_settings, key)
    ]


def check_https(**kwargs: Any) -> list[CheckMessage]:
    if settings.DEBUG:
        return []
    errors: list[CheckMessage] = []
    for key in URL_SETTINGS:
        url = getattr(app_settings, key)
        if url and urlsplit(url).scheme != "https":
            errors.append(
                Error(
                    Messages.NOT_HTTPS.format(key=key, url=url),
                    hint=Hints.NOT_HTTPS,
                    id=Codes.NOT_HTTPS,
                )
            )
    return errors


def _middleware_index(middleware: Sequence[str], name: str) -> int | None:
    return middleware.index(name) if name in middleware else None


def check_middleware(**kwargs: Any) -> list[CheckMessage]:
    middleware = list(getattr(settings, "MIDDLEWARE", []) or [])
    errors: list[CheckMessage] = []
    for required in (
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ):
        if required not in middleware:
            errors.append(
                Error(
                    Messages.MIDDLEWARE_MISSING.format(middleware=required),
                    hint=Hints.MIDDLEWARE_MISSING,
                    id=Codes.MIDDLEWARE_MISSING,
                )
            )
    ours = _middleware_index(middleware, "django_pagero_oauth.middleware.PageroTokenMiddleware")
    auth = _middleware_index(middleware, "django.contrib.auth.middleware.AuthenticationMiddleware")
    if ours is not None and (auth is None or ours < auth):
        errors.append(
            Error(Messages.MIDDLEWARE_ORDER, hint=Hints.MIDDLEWARE_ORDER, id=Codes.MIDDLEWARE_ORDER)
        )
    return errors


def check_values(**kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    user_settings = app_settings.user_settings
    try:
        leeway = app_settings.REFRESH_LEEWAY
    except (TypeError, ValueError):
        leeway = ACCESS_TOKEN_LIFETIME
    if leeway >= ACCESS_TOKEN_LIFETIME or leeway < 0:
        messages.append(
            Error(Messages.LEEWAY.format(value=leeway), hint=Hints.LEEWAY, id=Codes.LEEWAY)
        )
    if app_settings.CLIENT_AUTH_METHOD not in CLIENT_AUTH_METHODS:
        messages.append(
            Error(
                Messages.AUTH_METHOD.format(value=app_settings.CLIENT_AUTH_METHOD),
                hint=Hints.AUTH_METHOD,
                id=Codes.AUTH_METHOD,
            )
        )
    timeout = user_settings.get("TIMEOUT", DEFAULTS["TIMEOUT"])
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
        messages.append(
            Error(Messages.TIMEOUT.format(value=timeout), hint=Hints.TIMEOUT, id=Codes.TIMEOUT)
        )
    unknown = sorted(set(user_settings) - set(DEFAULTS))
    if unknown:
        messages.append(
            Warning(
                Messages.UNKNOWN_KEYS.format(keys=", ".join(unknown)),
                hint=Hints.UNKNOWN_KEYS,
                id=Codes.UNKNOWN_KEYS,
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


def check_encryption_keys(**kwargs: Any) -> list[CheckMessage]:
    from .crypto import get_fernet
    from .exceptions import TokenDecryptionError

    if not app_settings.ENCRYPTION_KEYS:
        return []
    try:
        get_fernet()
    except TokenDecryptionError:
        return [Error(Messages.KEYS_INVALID, hint=Hints.KEYS_INVALID, id=Codes.KEYS_INVALID)]
    return []


def check_stored_tokens_decrypt(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[CheckMessage]:
    """Decrypt the newest stored token (one row: cheap). Runs only with ``--database``."""
    from .exceptions import TokenDecryptionError
    from .models import PageroToken

    errors: list[CheckMessage] = []
    for alias in databases or []:
        try:
            PageroToken.objects.using(alias).only("pk", "refresh_token").order_by(
                "-updated"
            ).first()
        except TokenDecryptionError:
            errors.append(
                Error(Messages.CANNOT_DECRYPT, hint=Hints.CANNOT_DECRYPT, id=Codes.CANNOT_DECRYPT)
            )
        except DatabaseError:
            continue  # not migrated yet: nothing stored to check
    return errors


def register() -> None:
    for check in (
        check_settings_type,
        check_credentials,
        check_https,
        check_middleware,
        check_values,
        check_mock_server,
        check_encryption_keys,
    ):
        register_check(check, Tags.security if check is check_https else "django_pagero_oauth")
    register_check(check_stored_tokens_decrypt, Tags.database)
