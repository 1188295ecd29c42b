"""Settings of the example project, read from the environment with django-environ.

A ``.env`` file in ``example_project/`` is read when present (the environment wins over it;
``DEMO_ENV_FILE`` names another file, or ``""`` for none). See ``.env.example`` there.

Without ``PAGERO_CLIENT_ID`` the project talks to the mock Pagero server that it serves itself
at ``/mock-pagero/`` (``django_pagero_oauth.testing.urls``): no credentials, no network. With
``PAGERO_CLIENT_ID`` and ``PAGERO_CLIENT_SECRET`` it talks to Pagero Online.

Every key of ``PAGERO_OAUTH`` can be set as ``PAGERO_<KEY>`` (``PAGERO_PKCE=true``,
``PAGERO_ENCRYPTION_KEYS=key1,key2``, ``PAGERO_REDIRECT_URI=...``); a key that is not set keeps
the app's default (or, with the mock, the value pointing at the mock).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from django_pagero_oauth.conf import DEFAULTS
from django_pagero_oauth.testing import mock_settings

BASE_DIR = Path(__file__).resolve().parent.parent  # example_project/

env = environ.Env()
_env_file = os.environ.get("DEMO_ENV_FILE", str(BASE_DIR / ".env"))
if _env_file and Path(_env_file).is_file():
    environ.Env.read_env(_env_file)  # does not override variables already set

# --- the demo server ------------------------------------------------------------------------

#: The port ``manage.py demo`` (and the mock URLs below) use; ``demo --port`` changes it.
DEMO_PORT = env.int("DEMO_PORT", default=8000)
#: Only with no Pagero credentials at all is the bundled mock server used.
USE_MOCK_PAGERO = not env.str("PAGERO_CLIENT_ID", default="")

DEBUG = env.bool("DEBUG", default=True)
DEV_SECRET_KEY = "django-insecure-example-project-only-never-use-this-key-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured("Set SECRET_KEY in the environment when DEBUG is off.")
if not DEBUG and USE_MOCK_PAGERO:
    raise ImproperlyConfigured(
        "The bundled mock Pagero server runs only with DEBUG on: set PAGERO_CLIENT_ID and "
        "PAGERO_CLIENT_SECRET to use Pagero Online, or leave DEBUG on."
    )
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[])  # with DEBUG: localhost, 127.0.0.1, [::1]

# --- Django ---------------------------------------------------------------------------------

INSTALLED_APPS = [
    # First, so that its templates override the library's (django_pagero_oauth/base.html).
    "demo_app",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_pagero_oauth",
]

# Django's ModelBackend, except that the user's Pagero token comes in the same query: a
# protected page makes no query of its own for it.
AUTHENTICATION_BACKENDS = ["django_pagero_oauth.backends.PageroModelBackend"]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After AuthenticationMiddleware: it needs request.user (system check E003).
    "django_pagero_oauth.middleware.PageroTokenMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "demo_app.context_processors.demo",
            ]
        },
    }
]

DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_pagero_oauth": {"handlers": ["console"], "level": "INFO"}},
}

# --- django-pagero-oauth --------------------------------------------------------------------


def pagero_settings_from_env() -> dict[str, Any]:
    """``PAGERO_<KEY>`` for every key the app knows, typed like the key's default."""
    found: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        name = f"PAGERO_{key}"
        if name not in os.environ:
            continue
        if isinstance(default, bool):
            found[key] = env.bool(name)
        elif isinstance(default, int):
            found[key] = env.int(name)
        elif isinstance(default, float):
            found[key] = env.float(name)
        elif isinstance(default, list):
            found[key] = env.list(name)
        else:
            found[key] = env.str(name)
    return found


def mock_pagero_settings(port: int) -> dict[str, Any]:
    """``PAGERO_OAUTH`` pointing at the mock that this project serves at ``/mock-pagero/``.

    ``ISSUER`` is fixed, and the mounted mock uses it as its ``iss`` (RFC 9207), so the callback
    checks ``iss`` whatever host name the browser used (127.0.0.1 or localhost). The offline
    demo opts in to "Sign in with Pagero" (``SIGN_IN_ENABLED``, off by default); with real
    credentials, ``PAGERO_SIGN_IN_ENABLED=true`` (and ``PAGERO_ISSUER``) does.
    """
    return {
        **mock_settings(
            f"http://127.0.0.1:{port}/mock-pagero",
            client_id="demo-client-id",
            client_secret="demo-client-secret",
        ),
        "SIGN_IN_ENABLED": True,
    }


PAGERO_OAUTH: dict[str, Any] = {
    **(mock_pagero_settings(DEMO_PORT) if USE_MOCK_PAGERO else {}),
    **pagero_settings_from_env(),
}

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite has no row locks: a refresh holds the database write lock for as long as Pagero
    # takes to answer, so other writers must be willing to wait longer than that.
    pagero_timeout = float(PAGERO_OAUTH.get("TIMEOUT", DEFAULTS["TIMEOUT"]))
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", pagero_timeout + 10)
