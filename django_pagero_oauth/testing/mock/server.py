"""The threaded HTTP server: :class:`MockPageroServer` serves a mock on a real local socket.

``http.server`` adapted to :meth:`.app.MockPagero.handle` (HTTP/1.1 keep-alive, chunked
bodies), in a daemon thread; it carries out a fault's ``delay`` and ``drop`` on the socket.
The WSGI app is :meth:`.app.MockPagero.wsgi_app`; the Django view is
:mod:`django_pagero_oauth.testing.views`.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .app import MockPagero
from .http import MockRequest, MockResponse, _json_response


class _Handler(BaseHTTPRequestHandler):
    """Adapts ``http.server`` to :meth:`MockPagero.handle` (HTTP/1.1, keep-alive)."""

    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without TCP_NODELAY, Nagle's algorithm and
    # delayed ACKs add ~40 ms to every keep-alive request.
    disable_nagle_algorithm = True
    server: _Server

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            return
        request = MockRequest.build(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            base_url=self.server.base_url,
        )
        try:
            response = self.server.mock.handle(request)
        except Exception as exc:  # a mock bug must not hang the client
            traceback.print_exc()
            response = _json_response(500, {"error": "server_error", "detail": repr(exc)})
        if response.delay > 0 and self.server.stopping.wait(response.delay):
            response = MockResponse(0, [], b"", drop_connection=True)
        if response.drop_connection:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():  # trailers
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "bad Content-Length")
            return None
        return self.rfile.read(length) if length > 0 else b""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        self.server.log(format % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], mock: MockPagero, verbose: bool) -> None:
        super().__init__(address, _Handler)
        self.mock = mock
        self.verbose = verbose
        self.stopping = threading.Event()
        host = f"[{address[0]}]" if ":" in address[0] else address[0]
        self.base_url = f"http://{host}:{self.server_port}"

    def log(self, message: str) -> None:
        if self.verbose:
            sys.stderr.write(f"[mock-pagero] {message}\n")

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that time out or hang up are part of the game: stay quiet about them."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class MockPageroServer:
    """Serves a :class:`MockPagero` on ``host:port`` (0: a free port) in a daemon thread."""

    def __init__(
        self,
        mock: MockPagero | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        verbose: bool = False,
    ) -> None:
        self.mock = mock if mock is not None else MockPagero()
        self.host = host
        self.port = port
        self.verbose = verbose
        self.url = ""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> MockPageroServer:
        """Bind and start serving; ``url`` is set afterwards."""
        if self._server is not None:
            raise RuntimeError("the mock server is already running")
        server = _Server((self.host, self.port), self.mock, self.verbose)
        self._server = server
        self.port = server.server_address[1]
        self.url = server.base_url
        with self.mock.lock:  # issue_tokens() before any request uses this URL as ``iss``
            self.mock._last_base_url = self.mock._last_base_url or self.url
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.01},
            daemon=True,
            name=f"mock-pagero-{self.port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; delayed answers are dropped."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stopping.set()
        self.mock.release_held()
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def wait(self) -> None:
        """Block while the server runs (in short joins, so Ctrl-C is handled promptly)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def __enter__(self) -> MockPageroServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def settings(self) -> dict[str, str]:
        """A ``PAGERO_OAUTH`` fragment pointing at this server."""
        if not self.url:
            raise RuntimeError("start() the mock server first")
        return self.mock.settings_for(self.url)
