"""``python -m django_pagero_oauth.testing.mock``: serve a mock until Ctrl-C (or SIGTERM).

The first line of stdout is ``Mock Pagero listening on <url>`` (scripts and the benchmarks read
it); the ``PAGERO_OAUTH`` settings that point at the server follow.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Sequence

from .app import MockPagero
from .server import MockPageroServer


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m django_pagero_oauth.testing.mock",
        description="Serve a strict mock Pagero OAuth 2.0 server until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--expires-in", type=int, default=600, help="access token lifetime (s)")
    parser.add_argument("--code-lifetime", type=int, default=60)
    parser.add_argument("--client-id", default="mock-client-id")
    parser.add_argument("--client-secret", default="mock-client-secret")
    parser.add_argument("--issuer", default=None, help="default: the server's URL")
    parser.add_argument(
        "--require-pkce", action="store_true", help="refuse logins without a code_challenge"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; prints the URL (first line of stdout) and serves."""
    args = _parser().parse_args(argv)
    mock = MockPagero(
        client_id=args.client_id,
        client_secret=args.client_secret,
        issuer=args.issuer,
        expires_in=args.expires_in,
        code_lifetime=args.code_lifetime,
        require_pkce=args.require_pkce,
    )
    server = MockPageroServer(mock, host=args.host, port=args.port, verbose=args.verbose)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    server.start()
    print(f"Mock Pagero listening on {server.url}", flush=True)
    for name, value in server.settings().items():
        print(f"  {name} = {value}", flush=True)
    try:
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
