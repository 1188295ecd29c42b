"""Settings for the processes that ``tests/test_concurrency_processes.py`` starts.

The test suite's settings, pointed at what the test process set up:

- ``PAGERO_TEST_DB_NAME``: the pytest-django *test* database (the server and credentials come
  from ``DATABASE_URL``, inherited from the test run);
- ``PAGERO_TEST_OAUTH``: JSON merged into ``PAGERO_OAUTH`` (the running mock server's URLs);
- ``PAGERO_TEST_ROLE``: names the process in PostgreSQL's ``application_name``
  (``<role>-<pid>``), so the test can see in ``pg_stat_activity`` which processes wait on a lock.
"""

from __future__ import annotations

import json
import os

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, PAGERO_OAUTH

if os.environ.get("PAGERO_TEST_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["PAGERO_TEST_DB_NAME"]
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    role = os.environ.get("PAGERO_TEST_ROLE", "process")
    DATABASES["default"].setdefault("OPTIONS", {})["application_name"] = f"{role}-{os.getpid()}"

PAGERO_OAUTH = {**PAGERO_OAUTH, **json.loads(os.environ.get("PAGERO_TEST_OAUTH") or "{}")}

# Worker tracebacks go to gunicorn's stderr, which the test shows when something fails.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_pagero_oauth": {"handlers": ["stderr"], "level": "INFO"},
        "django.request": {"handlers": ["stderr"], "level": "ERROR"},
    },
}
