"""``python -m django_pagero_oauth.testing.mock``: serve a mock until Ctrl-C (or SIGTERM).

The first line of stdout is ``Mock Pagero listening on <url>`` (scripts and the benchmarks read
it); the lines for a site's ``settings.py`` that point it at the server follow, ready to paste
(:func:`settings_block`).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Sequence

from .app import MockPagero
from .server import MockPageroServer
from .state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m django_pagero_oauth.testing.mock",
        description="Serve a strict mock Pagero OAuth 2.0 server until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--expires-in", type=int, default=600, help="access token lifetime (s)")
    parser.add_argument("--code-lifetime", type=int, default=60)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--issuer", default=None, help="default: the server's URL")
    parser.add_argument(
        "--require-pkce", action="store_true", help="refuse logins without a code_challenge"
    )
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return parser


def _literal(value: str) -> str:
    """A Python string literal of ``value`` (``repr``: ``json.dumps`` would write a character
    outside the BMP as a surrogate pair, which Python reads as two lone surrogates), in
    double quotes, as the formatter writes them, when no quote is in it."""
    literal = repr(value)
    if literal.startswith("'") and "'" not in value and '"' not in value:
        literal = f'"{literal[1:-1]}"'
    return literal


def settings_block(
    url: str,
    *,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    issuer: str | None = None,
    redirect_uri: str = "http://127.0.0.1:8000/pagero/callback/",
) -> str:
    """The end of a site's ``settings.py`` that points ``PAGERO_OAUTH`` at the mock at ``url``.

    The same lines as ``docs/examples/quickstart/settings_mock.py``, with this server's URL
    (and its client credentials and issuer when they are not the defaults).
    """
    options = [_literal(url)]
    if client_id != DEFAULT_CLIENT_ID:
        options.append(f"client_id={_literal(client_id)}")
    if client_secret != DEFAULT_CLIENT_SECRET:
        options.append(f"client_secret={_literal(client_secret)}")
    if issuer is not None:
        options.append(f"issuer={_literal(issuer)}")
    return (
        "from django_pagero_oauth.testing import mock_settings\n"
        "\n"
        f"PAGERO_OAUTH |= mock_settings({', '.join(options)})\n"
        f'PAGERO_OAUTH["REDIRECT_URI"] = {_literal(redirect_uri)}\n'
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; prints the URL (first line of stdout) and serves."""
    args = _parser().parse_args(argv)
    # The options other than the server's are named like MockPagero's arguments.
    server_options = ("host", "port", "verbose")
    mock = MockPagero(**{k: v for k, v in vars(args).items() if k not in server_options})
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # KeyboardInterrupt
    server = MockPageroServer(mock, host=args.host, port=args.port, verbose=args.verbose)
    with contextlib.suppress(KeyboardInterrupt), server:
        print(f"Mock Pagero listening on {server.url}", flush=True)
        block = settings_block(
            server.url,
            client_id=mock.client_id,
            client_secret=mock.client_secret,
            issuer=mock.issuer,
        )
        print(
            "\nAt the end of your settings.py (development only; REDIRECT_URI is your site's):\n\n"
            + "".join(f"    {line}\n" if line else "\n" for line in block.splitlines()),
            flush=True,
        )
        print("These PAGERO_OAUTH values:", flush=True)
        for name, value in server.settings().items():
            print(f"  {name} = {value}", flush=True)
        server.wait()
    return 0
