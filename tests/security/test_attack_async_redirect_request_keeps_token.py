"""Attack: after a followed redirect inside the API, the hop's request keeps the bearer token.

SECURITY.rst item 36: "The header is set by an ``httpx.Auth`` and is off the request once
sent". ``AsyncPageroClient._send_once`` takes ``Authorization`` off the request it was given
only; with ``follow_redirects=True`` httpx builds a new ``httpx.Request`` for each hop, copying
the header (same origin), and those objects (``response.request``, ``response.history[i]
.request``, and ``exc.request`` of ``response.raise_for_status()``'s ``HTTPStatusError``) keep
the live access token after the call. Whatever serialises them (an error tracker's request
data, a debug log of ``dict(response.request.headers)``, a cache of responses) holds the token.

Severity: low (a bearer token valid for up to ten minutes in objects the package says are
clean; needs a followed redirect and a consumer of the request object).
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


def test_no_request_object_keeps_the_token_after_a_followed_redirect(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/api/old":
                self.send_response(301)
                self.send_header("Location", "/api/new")  # a move inside the API
            else:
                self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    async def call() -> tuple[list[httpx.Request], httpx.HTTPStatusError | None]:
        async with aget_client(
            user, base_url=f"http://127.0.0.1:{port}/api/", token=token
        ) as client:
            response = await client.get("old", follow_redirects=True)
            requests = [response.request, *(hop.request for hop in response.history)]
            try:
                response.raise_for_status()
            except httpx.HTTPStatusError as exc:
                return requests, exc
            return requests, None

    try:
        requests, error = async_to_sync(call)()
    finally:
        server.shutdown()
        server.server_close()
    assert error is not None and len(requests) == 2
    holding = [
        str(request.url)
        for request in [*requests, error.request]
        if token.access_token in request.headers.get("Authorization", "")
    ]
    assert holding == [], f"request objects still carry the bearer token: {holding}"
