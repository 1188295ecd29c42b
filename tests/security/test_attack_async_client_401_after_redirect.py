"""Attack: with the async client, a 401 from another origin after a followed redirect forces
a refresh (the sync client's fix, ``PageroSession._rejected_by_the_api``, was not carried over).

``AsyncPageroClient.send`` forces a refresh on any final 401. After
``follow_redirects=True`` off the API (a document download redirected to a storage host, or
a redirect an attacker who controls a link target sets up), the bearer header was dropped,
so that server's 401 says nothing about the token, yet it spends a single-use refresh token
(and the rotation, the signals, a Pagero request). An attacker-controlled host that answers
401 makes every such call refresh; the CHANGELOG and ``tests/test_client.py::
test_a_401_from_another_origin_after_a_redirect_forces_no_refresh`` promise the opposite for
the sync client.

Severity: low (no token is lost or leaked; needless refreshes, bounded by the forced-refresh
policy).

Fix: in ``aclient.AsyncPageroClient.send``, force the refresh only when the final response's
request carried the ``Authorization`` header and ``response.url`` is still under the API
(mirror ``client.PageroSession._rejected_by_the_api``; note ``_send_once`` pops the header
from the request after sending, so record whether it was sent).
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from asgiref.sync import async_to_sync

from django_pagero_oauth.aclient import aget_client


def test_a_401_from_another_origin_after_a_redirect_forces_no_refresh_async(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)
    seen: list[tuple[int, str, str]] = []
    other_port = 0

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
        base = f"http://127.0.0.1:{api_port}/api/"
        async with aget_client(user, base_url=base, token=token) as client:
            response = await client.get("away", follow_redirects=True)
            return response.status_code

    try:
        assert async_to_sync(call)() == 401
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert (other_port, "/api/x", "") in seen  # the header did not follow
    assert pagero_mock.mock.counts["refresh_token"] == 0, (
        "another origin's 401 spent a single-use refresh token"
    )
