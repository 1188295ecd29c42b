"""No request object the async client hands back keeps the bearer token.

httpx builds a new ``httpx.Request`` for each redirect hop (and for ``response.next_request``),
copying ``Authorization`` on the same origin; whatever serialises them (an error tracker's
request data, a debug log of ``dict(response.request.headers)``) would hold a live token. What
this proves, over a real socket:

- after a followed redirect inside the API, neither ``response.request``, nor any
  ``response.history[i].request``, nor the ``request`` of ``raise_for_status()``'s
  ``HTTPStatusError`` carries the token;
- nor does ``next_request`` of a redirect that was not followed, nor the request and response
  of an ``HTTPStatusError`` that a response hook raises.
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


def test_no_token_on_an_unfollowed_redirect_or_a_hooks_status_error(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    """``response.next_request`` of a redirect not followed (httpx copies the header into it
    for the same origin) and the ``HTTPStatusError`` that a response hook raises carry no
    token either."""
    token = pagero_token_factory(user)

    async def raise_on_redirect(response: httpx.Response) -> None:
        if response.url.path.endswith("/hooked"):
            response.raise_for_status()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(404 if self.path.endswith("/hooked") else 302)
            self.send_header("Location", "/api/new")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]

    async def call() -> list[httpx.Request]:
        async with aget_client(
            user, base_url=f"http://127.0.0.1:{port}/api/", token=token
        ) as client:
            response = await client.get("old")  # not followed
            assert response.next_request is not None
            client.event_hooks = {"response": [raise_on_redirect]}
            try:
                await client.get("hooked")
            except httpx.HTTPStatusError as exc:
                return [response.next_request, exc.request, exc.response.request]
            raise AssertionError("the hook raised nothing")

    try:
        requests = async_to_sync(call)()
    finally:
        server.shutdown()
        server.server_close()
    assert [r for r in requests if token.access_token in r.headers.get("Authorization", "")] == []
