"""The ASGI application uvicorn serves in the ``asgi`` benchmark.

``BENCH_ASYNC_REFRESH=shared-thread`` puts back, in this process only, what async code did
before a refresh moved to a worker thread of its own: the refresh runs in Django's
thread-sensitive executor (``sync_to_async(thread_sensitive=True)``), as the ORM calls do. The
benchmark compares both on the same server setup.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.settings")

application = get_asgi_application()

if os.environ.get("BENCH_ASYNC_REFRESH") == "shared-thread":
    from django_pagero_oauth import tokens

    _own_thread_refresh = tokens._arefresh

    async def _shared_thread_refresh(token: Any, *, force: bool, in_transaction: bool) -> Any:
        return await _own_thread_refresh(token, force=force, in_transaction=True)

    tokens._arefresh = _shared_thread_refresh
