"""Django settings of the benchmarks: the driver process and the gunicorn workers share them.

Environment:

- ``DATABASE_URL``: the database server (default: an SQLite file in the temp directory); the
  driver creates a throw-away database on it (``pagero_bench_<pid>``) and drops it afterwards;
- ``BENCH_DB_NAME``: set by the driver for the workers, the name of that database;
- ``BENCH_PAGERO_OAUTH``: JSON merged into ``PAGERO_OAUTH`` (the mock server's URLs);
- ``BENCH_AUTH_BACKEND``: ``model`` to log users in through Django's ``ModelBackend`` instead
  of ``PageroModelBackend``, which the README's installation uses (the token comes with the
  user's query);
- ``BENCH_MIDDLEWARE``: ``off`` leaves ``PageroTokenMiddleware`` out (``run.py middleware``
  compares a server with it against one without);
- ``BENCH_CONN_MAX_AGE``: persistent database connections, in seconds (default 60, as most
  production sites run; 0 opens a connection per request and hides the app's own cost).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import environ

env = environ.Env()
TMP = Path(tempfile.gettempdir())

SECRET_KEY = "benchmarks-only-secret-key-not-for-production"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{TMP / 'pagero-bench.sqlite3'}")
}
_db = DATABASES["default"]
_db["CONN_MAX_AGE"] = env.int("BENCH_CONN_MAX_AGE", default=60)
_sqlite = _db["ENGINE"] == "django.db.backends.sqlite3"
if os.environ.get("BENCH_DB_NAME"):
    _db["NAME"] = os.environ["BENCH_DB_NAME"]
_db["TEST"] = {
    "NAME": str(TMP / f"pagero-bench-{os.getpid()}.sqlite3")
    if _sqlite
    else f"pagero_bench_{os.getpid()}"
}
if _sqlite:
    _db["OPTIONS"] = {"timeout": 30}

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django_pagero_oauth",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_pagero_oauth.middleware.PageroTokenMiddleware",
]
if os.environ.get("BENCH_MIDDLEWARE") == "off":
    MIDDLEWARE.remove("django_pagero_oauth.middleware.PageroTokenMiddleware")
ROOT_URLCONF = "benchmarks.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "/accounts/login/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The README's installation: PageroModelBackend loads the token with the user (same query).
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend"
    if os.environ.get("BENCH_AUTH_BACKEND") == "model"
    else "django_pagero_oauth.backends.PageroModelBackend"
]

PAGERO_OAUTH = {
    "TIMEOUT": 10.0,
    # As a site would have it: the middleware enforces a token on these paths only; none of
    # the benchmarked paths is among them (``run.py middleware`` measures that cost).
    "PROTECTED_PATHS": [r"^/invoices/"],
    **json.loads(os.environ.get("BENCH_PAGERO_OAUTH") or "{}"),
}

# Quiet: the Authlib storm answers 502 on purpose; gunicorn's log file keeps the rest.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {
        "django.request": {"level": "CRITICAL"},
        "django_pagero_oauth": {"level": "WARNING"},
    },
}
