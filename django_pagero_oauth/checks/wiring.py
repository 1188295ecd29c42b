"""The checks of how the app is wired into the site: middleware (``E003``, ``E004``,
``W002``), authentication backends (``I001``, ``E015``) and OpenID Connect (``E014``,
``E016``)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Warning
from django.utils.module_loading import import_string

from ..conf import app_settings

SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"
OUR_MIDDLEWARE = "django_pagero_oauth.middleware.PageroTokenMiddleware"
PRELOADING_BACKEND = "django_pagero_oauth.backends.PageroModelBackend"


def _index_of(wanted: type, paths: Sequence[str]) -> int | None:
    """Index of the first of ``paths`` that is ``wanted`` or a subclass (as the admin checks)."""
    for index, path in enumerate(paths):
        try:
            cls = import_string(path)
        except ImportError:
            continue  # Django reports an unimportable middleware or backend itself
        if isinstance(cls, type) and issubclass(cls, wanted):
            return index
    return None


def _middleware_index(path: str) -> int | None:
    return _index_of(import_string(path), getattr(settings, "MIDDLEWARE", None) or [])


def check_middleware(**kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = [
        Error(
            f"'{required}' must be in MIDDLEWARE.",
            hint="Pagero logins are bound to the Django session and user.",
            id="django_pagero_oauth.E004",
        )
        for required in (SESSION_MIDDLEWARE, AUTH_MIDDLEWARE)
        if _middleware_index(required) is None
    ]
    ours, auth = _middleware_index(OUR_MIDDLEWARE), _middleware_index(AUTH_MIDDLEWARE)
    if ours is not None and auth is not None and ours < auth:
        errors.append(
            Error(
                f"'{OUR_MIDDLEWARE}' is listed before '{AUTH_MIDDLEWARE}'.",
                hint="Move PageroTokenMiddleware after AuthenticationMiddleware: it needs "
                "request.user.",
                id="django_pagero_oauth.E003",
            )
        )
    if ours is None and app_settings.user_settings.get("PROTECTED_PATHS"):
        errors.append(
            Warning(
                f"PAGERO_OAUTH['PROTECTED_PATHS'] is set, but '{OUR_MIDDLEWARE}' is not in "
                "MIDDLEWARE.",
                hint="Without the middleware those paths are NOT protected. Add it after "
                "AuthenticationMiddleware, or protect the views with the decorator or mixin.",
                id="django_pagero_oauth.W002",
            )
        )
    return errors


def _guards_in_use() -> list[str]:
    """The middleware, and the guarded views: the front ends of the guard record themselves
    (:data:`~django_pagero_oauth.guard.GUARDS_APPLIED`) as the URLconf's modules load."""
    from django.urls import get_resolver

    from ..guard import GUARDS_APPLIED

    used = ["PageroTokenMiddleware"] if _middleware_index(OUR_MIDDLEWARE) is not None else []
    with contextlib.suppress(Exception):  # a broken URLconf: Django's URL checks report it
        get_resolver().url_patterns  # noqa: B018 (loads the URLconf and the views it imports)
    if GUARDS_APPLIED:
        used.append("views (decorator, mixin or HasPageroToken)")
    return used


def check_preloading_backend(**kwargs: Any) -> list[CheckMessage]:
    """Info: the middleware or guarded views run without ``PageroModelBackend``."""
    from ..backends import PageroModelBackend

    backends = getattr(settings, "AUTHENTICATION_BACKENDS", None) or []
    used = [] if _index_of(PageroModelBackend, backends) is not None else _guards_in_use()
    if not used:
        return []
    return [
        Info(
            f"Pagero tokens are protected by {' and '.join(used)}, and no authentication "
            "backend loads the token with the user: each protected request makes one extra SQL "
            "query for it.",
            hint=f"Put '{PRELOADING_BACKEND}' in AUTHENTICATION_BACKENDS in place of Django's "
            "ModelBackend (docs: Protecting views, Zero-query protected requests). Users logged "
            "in through the old backend must log in once more.",
            id="django_pagero_oauth.I001",
        )
    ]


def check_openid(**kwargs: Any) -> list[CheckMessage]:
    """OpenID Connect (``openid`` in ``SCOPE``, or ``SIGN_IN_ENABLED``) needs ``ISSUER``;
    sign-in needs a backend that loads users by id, and a user factory that imports. A site
    that does not enable sign-in is not asked about either."""
    from ..signin import login_backend

    messages: list[CheckMessage] = []
    sign_in = app_settings.SIGN_IN_ENABLED
    if (app_settings.openid_requested or sign_in) and not app_settings.ISSUER:
        messages.append(
            Error(
                f"PAGERO_OAUTH['{'SIGN_IN_ENABLED' if sign_in else 'SCOPE'}'] asks for OpenID "
                "Connect, but ISSUER is not set.",
                hint="An id_token is verified against the issuer: set ISSUER to the iss value "
                "Pagero sends.",
                id="django_pagero_oauth.E014",
            )
        )
    if sign_in and login_backend() is None:
        messages.append(
            Error(
                "Sign in with Pagero is enabled (SIGN_IN_ENABLED), but no "
                "AUTHENTICATION_BACKENDS entry can load its users.",
                hint=f"Use '{PRELOADING_BACKEND}' (it also serves password logins), or another "
                "subclass of django.contrib.auth.backends.ModelBackend.",
                id="django_pagero_oauth.E015",
            )
        )
    create_users = sign_in and app_settings.SIGN_IN_CREATE_USERS
    factory = app_settings.SIGN_IN_USER_FACTORY if create_users else None
    try:
        if factory is not None:
            import_string(factory)
    except ImportError:
        messages.append(
            Error(
                f"PAGERO_OAUTH['SIGN_IN_USER_FACTORY'] cannot be imported: {factory!r}.",
                hint="A dotted path to a callable(claims, request) that returns a saved user.",
                id="django_pagero_oauth.E016",
            )
        )
    return messages
