"""The Celery app of ``tests/contrib/test_celery_worker.py``: ``celery -A tests.processes.celery_app``.

Its worker runs with :mod:`tests.processes.settings` (the test run's database and mock server,
from the environment); the broker and result backend are the Redis database in
``PAGERO_TEST_REDIS_URL``, every key under ``PAGERO_TEST_REDIS_PREFIX``, so a test run owns its
keys and deletes them. The tasks come from ``django_pagero_oauth.contrib.celery``.
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.processes.settings")

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/13"


def make_app(redis_url: str, prefix: str) -> Celery:
    app = Celery("pagero_tests", set_as_current=False)
    app.conf.update(
        broker_url=redis_url,
        result_backend=redis_url,
        broker_transport_options={"global_keyprefix": prefix},
        result_backend_transport_options={"global_keyprefix": prefix},
        imports=["django_pagero_oauth.contrib.celery"],
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        result_expires=600,
    )
    return app


app = make_app(
    os.environ.get("PAGERO_TEST_REDIS_URL", DEFAULT_REDIS_URL),
    os.environ.get("PAGERO_TEST_REDIS_PREFIX", "pagero-test:"),
)
