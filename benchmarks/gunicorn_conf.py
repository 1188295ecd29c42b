"""gunicorn configuration (``-c python:benchmarks.gunicorn_conf``).

Each worker, once it has loaded the Django application, writes its pid and a newline to the pipe
whose file descriptor is in ``BENCH_READY_FD``: the driver waits for every worker that way.
"""

from __future__ import annotations

import os
from typing import Any


def post_worker_init(worker: Any) -> None:
    fd = os.environ.get("BENCH_READY_FD")
    if fd:
        os.write(int(fd), f"{os.getpid()}\n".encode())
