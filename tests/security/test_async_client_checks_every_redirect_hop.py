"""The async client checks every redirect hop, whatever the caller does with ``event_hooks``.

httpx itself keeps ``Authorization`` for a same-origin hop (and an http -> https upgrade).
``AsyncPageroClient`` takes it off a hop that leaves ``API_BASE_URL``'s path in
``_send_single_request``, which httpx calls for each request on the wire, and not in a request
event hook: ``client.event_hooks = {...}`` (the pattern httpx's documentation shows) replaces
all hooks. What this proves: after replacing the hooks, a followed redirect from the API to a
path outside it on the same origin arrives there without the bearer token, while the API hop
had it.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync

from django_pagero_oauth import aget_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_hop_off_the_api_path_never_gets_the_token_even_with_the_hooks_replaced(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization", "")))
            if self.path == "/api/away":
                self.send_response(302)
                self.send_header("Location", "/elsewhere/collect")  # same origin, off the API
            else:
                self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    async def raise_on_server_error(response: httpx.Response) -> None:
        if response.status_code >= 500:
            response.raise_for_status()

    async def call() -> int:
        async with aget_client(
            user, base_url=f"http://127.0.0.1:{port}/api/", token=token
        ) as client:
            client.event_hooks = {"response": [raise_on_server_error]}  # as httpx's docs show
            response = await client.get("away", follow_redirects=True)
            return response.status_code

    try:
        assert async_to_sync(call)() == 200
        assert seen[0][0] == "/api/away" and bool(seen[0][1])  # the API hop had the token
        assert seen[-1][0] == "/elsewhere/collect"
        leaked = bool(seen[-1][1])
        assert not leaked, "the bearer token went to a path outside API_BASE_URL"
    finally:
        server.shutdown()
        server.server_close()
