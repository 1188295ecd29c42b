"""The async client spends no refresh token on another server's 401 after a redirect.

Only a 401 of the API to a request that carried the token counts (SECURITY.rst item 22). What
this proves: with ``follow_redirects=True``, an API answer that redirects to another origin
answering 401 comes back to the caller as it is; the token did not follow the redirect, and no
forced refresh (which would rotate the user's single-use refresh token and send the request
again) reaches the token endpoint.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from django_pagero_oauth import aget_client

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_401_from_another_origin_after_a_redirect_forces_no_refresh(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)
    seen: list[tuple[int, str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            port = self.server.server_address[1]
            seen.append((port, self.path, self.headers.get("Authorization", "")))
            if self.path == "/api/away":
                self.send_response(302)
                self.send_header("Location", f"http://127.0.0.1:{other_port}/api/x")
            else:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Bearer error="invalid_token"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    api_port, other_port = (server.server_address[1] for server in servers)

    async def call() -> int:
        async with aget_client(
            user, base_url=f"http://127.0.0.1:{api_port}/api/", token=token
        ) as client:
            response = await client.get("away", follow_redirects=True)
            return response.status_code

    try:
        assert async_to_sync(call)() == 401
        assert seen[-1] == (other_port, "/api/x", "")  # the header did not follow
        assert pagero_mock.mock.counts["refresh_token"] == 0
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
