"""A site as ``django-admin startproject`` makes it, with django-pagero-oauth added as the quick
start says: nothing of the package is overridden (no template, no view, no setting beyond
``PAGERO_OAUTH``). The real-browser tests in ``test_package_pages.py`` serve it with gunicorn.

Its own templates (``templates/``: a home page, the protected page and the login page that
``django.contrib.auth`` needs) are the site's; none has the name of one of the package's.

Read from the environment (set by the test that starts the server):

- ``PLAIN_SITE_DATABASE``: the SQLite file;
- ``PLAIN_SITE_PAGERO``: ``PAGERO_OAUTH`` as JSON (the mock Pagero server's URLs);
- ``PLAIN_SITE_HTTPS``: ``1`` for production over HTTPS: ``SECURE_SSL_REDIRECT``, secure
  session and CSRF cookies, HSTS (gunicorn then serves TLS with ``--certfile``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "plain-site-tests-only-secret-key-0123456789-not-for-production"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_pagero_oauth",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

AUTHENTICATION_BACKENDS = ["django_pagero_oauth.backends.PageroModelBackend"]

ROOT_URLCONF = "tests.browser.plain_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("PLAIN_SITE_DATABASE", ""),
        # A refresh holds SQLite's write lock while Pagero answers: other writers wait.
        "OPTIONS": {"timeout": 30},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

PAGERO_OAUTH = json.loads(os.environ.get("PLAIN_SITE_PAGERO", "{}"))

HTTPS = os.environ.get("PLAIN_SITE_HTTPS") == "1"
if HTTPS:
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 3600
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_pagero_oauth": {"handlers": ["console"], "level": "INFO"},
        # A CSRF refusal names its reason here ("Origin checking failed - null ...").
        "django.security.csrf": {"handlers": ["console"], "level": "WARNING"},
    },
}
