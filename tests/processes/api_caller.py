"""A background job in its own process: ``get_client(user).get("v1/me")``, like a Celery task.

Started by ``multiprocessing`` with the "spawn" context (a fresh interpreter, nothing inherited
from the test process but the arguments), it sets up Django with :mod:`tests.processes.settings`,
waits on ``barrier`` so that it starts together with the test's HTTP requests, and puts
``(pid, [(status, publicid), ...])`` or ``(pid, "error: ...")`` on ``results``.
"""

from __future__ import annotations

import os
from typing import Any


def call_api(env: dict[str, str], user_pk: int, calls: int, barrier: Any, results: Any) -> None:
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.processes.settings"
    try:
        import django

        django.setup()
        from django.contrib.auth import get_user_model
        from django.db import connections

        from django_pagero_oauth import get_client

        user = get_user_model().objects.get(pk=user_pk)
        barrier.wait(timeout=60)
        outcome = []
        for _ in range(calls):
            response = get_client(user).get("v1/me")
            body = response.json() if response.status_code == 200 else {}
            outcome.append((response.status_code, body.get("publicid")))
        connections.close_all()
        results.put((os.getpid(), outcome))
    except BaseException as exc:  # report anything, so the test fails with a reason
        barrier.abort()  # nobody waits for a child that will never arrive
        results.put((os.getpid(), f"error: {exc!r}"))
        raise
