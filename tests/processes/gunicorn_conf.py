"""gunicorn configuration (``-c python:tests.processes.gunicorn_conf``).

Each worker, once it has loaded the Django application, writes its pid and a newline to the
pipe whose file descriptor is in ``PAGERO_TEST_READY_FD``: the test reads one line per worker
instead of polling the server.
"""

from __future__ import annotations

import os
from typing import Any


def post_worker_init(worker: Any) -> None:
    fd = os.environ.get("PAGERO_TEST_READY_FD")
    if fd:
        os.write(int(fd), f"{os.getpid()}\n".encode())
