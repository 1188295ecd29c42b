"""Fixtures of the security suite: a browser that walks the real flow, log and transport spies.

The Django side runs in the test client; Pagero is the strict mock server on a real socket
(``pagero_mock``). The "browser" talks to the mock with :mod:`http.client`, so that the
transport spy (:func:`transport`) sees only the requests django-pagero-oauth itself makes.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from django.core.cache import cache
from django.db import connections
from django.test import Client

from django_pagero_oauth.flows import SESSION_KEY
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import MockPageroServer, MockRequest

from .refresh_helpers import (
    DEADLINE,
    TricklingProxy,
    on_refresh_grant,
    send_token_requests_to,
    token_upstream,
)

LOGIN_PATH = "/pagero/login/"
CALLBACK_PATH = "/pagero/callback/"
DISCONNECT_PATH = "/pagero/disconnect/"


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """The refresh back-off lives in Django's cache: no test sees another's."""
    cache.clear()
    yield
    cache.clear()


def backoff_passed() -> None:
    """Let the refresh back-off after a failure run out (it lives in the default cache)."""
    cache.clear()


# --- the browser ---------------------------------------------------------------------------


@dataclass
class Browser:
    """One browser (one Django session) walking the authorization code flow."""

    client: Client
    server: MockPageroServer
    #: Every URL the browser was sent to (Location headers) or opened, in order.
    urls: list[str] = field(default_factory=list)

    def start_login(self, next_url: str | None = None) -> str:
        """GET the login view; return the authorization URL it redirects to."""
        query = f"?{urlencode({'next': next_url})}" if next_url is not None else ""
        response = self.client.get(LOGIN_PATH + query)
        assert response.status_code == 302, response.content
        location = response["Location"]
        self.urls += [LOGIN_PATH + query, location]
        assert location.startswith(self.server.url), location
        return location

    def pagero_answer(
        self, authorize_url: str, *, action: str = "approve", publicid: str = "acme-ab"
    ) -> str:
        """Submit Pagero's login form (approve or deny); return the callback path and query."""
        params = parse_qsl(urlsplit(authorize_url).query, keep_blank_values=True)
        body = urlencode([*params, ("publicid", publicid), ("action", action)])
        split = urlsplit(self.server.url)
        connection = http.client.HTTPConnection(split.hostname or "", split.port, timeout=5)
        try:
            connection.request(
                "POST",
                urlsplit(authorize_url).path,
                body=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            answer = connection.getresponse()
            answer.read()
        finally:
            connection.close()
        assert answer.status == 302, answer.status
        location = answer.getheader("Location") or ""
        self.urls.append(location)
        target = urlsplit(location)
        assert target.netloc == "testserver" and target.path == CALLBACK_PATH, location
        return f"{target.path}?{target.query}"

    def callback(self, path_and_query: str) -> Any:
        """Open the callback URL (what the browser does after Pagero's redirect)."""
        self.urls.append(path_and_query)
        response = self.client.get(path_and_query)
        if response.has_header("Location"):
            self.urls.append(response["Location"])
        return response

    def login(self, next_url: str | None = None, *, publicid: str = "acme-ab") -> Any:
        """The whole flow; returns the callback's response."""
        return self.callback(self.pagero_answer(self.start_login(next_url), publicid=publicid))

    def pending_states(self) -> list[str]:
        return list(self.client.session.get(SESSION_KEY, {}) or {})

    def pending_flows(self) -> dict[str, dict[str, Any]]:
        return dict(self.client.session.get(SESSION_KEY, {}) or {})


@pytest.fixture
def browser(pagero_mock: MockPageroServer, user_client: Client) -> Browser:
    """The user's browser, logged in to the Django site."""
    return Browser(user_client, pagero_mock)


@pytest.fixture
def make_browser(pagero_mock: MockPageroServer, db: None) -> Any:
    """``make_browser(user)``: a new browser (a new session) logged in as ``user``."""

    def make(user: Any) -> Browser:
        client = Client()
        client.force_login(user)
        return Browser(client, pagero_mock)

    return make


def query_of(path_and_query: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(path_and_query).query, keep_blank_values=True))


def with_query(path_and_query: str, **changes: str | None) -> str:
    """``path_and_query`` with parameters replaced (``None`` removes one)."""
    split = urlsplit(path_and_query)
    params = dict(parse_qsl(split.query, keep_blank_values=True))
    for name, value in changes.items():
        if value is None:
            params.pop(name, None)
        else:
            params[name] = value
    return f"{split.path}?{urlencode(params)}"


def token_count() -> int:
    count: int = PageroToken.objects.count()
    return count


def raw_token_row(pk: Any) -> dict[str, Any]:
    """The token's row as the database holds it (no field conversion, no decryption)."""
    table = PageroToken._meta.db_table
    with connections["default"].cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} WHERE id = %s", [pk])  # noqa: S608
        names = [column[0] for column in cursor.description]
        row = cursor.fetchone()
    assert row is not None
    return dict(zip(names, row, strict=True))


def token_snapshot(pk: Any) -> dict[str, Any]:
    """Everything stored for a token, decrypted, for before/after comparisons."""
    token = PageroToken.objects.get(pk=pk)
    return {
        field.name: getattr(token, field.attname)
        for field in PageroToken._meta.concrete_fields
        if field.name != "updated"
    }


# --- spies -----------------------------------------------------------------------------------


@dataclass
class SentRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    verify: Any
    timeout: Any
    #: The answer's body, only when :attr:`Transport.read_answers` is set.
    answer: bytes = b""


class Transport(list[SentRequest]):
    #: Also record each answer's body (read in the spy; ``requests`` then replays it).
    read_answers: bool = False


@pytest.fixture
def transport(monkeypatch: pytest.MonkeyPatch) -> Transport:
    """Every request that goes through ``requests``' transport adapter, with its TLS and
    timeout arguments as the adapter receives them (after the session merged its defaults)."""
    sent = Transport()
    original = requests.adapters.HTTPAdapter.send

    def spy(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        names = ("stream", "timeout", "verify", "cert", "proxies")
        bound = {**dict(zip(names, args, strict=False)), **kwargs}
        body = request.body or b""
        record = SentRequest(
            method=request.method,
            url=request.url,
            headers=dict(request.headers),
            body=body.encode() if isinstance(body, str) else bytes(body),
            verify=bound.get("verify", True),
            timeout=bound.get("timeout"),
        )
        sent.append(record)
        response = original(self, request, *args, **kwargs)
        if sent.read_answers:
            record.answer = response.content
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", spy)
    return sent


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@dataclass
class LogCapture:
    records: list[logging.LogRecord]

    def texts(self) -> list[str]:
        """Per record: the formatted message, the raw message, every argument and the
        formatted traceback."""
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        out: list[str] = []
        for record in self.records:
            out.append(formatter.format(record))
            out.append(str(record.msg))
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            out.extend(f"{arg!s} {arg!r}" for arg in args if arg is not None)
            if record.exc_info:
                out.append(formatter.formatException(record.exc_info))
        return out

    def names(self) -> set[str]:
        return {record.name for record in self.records}


@pytest.fixture
def all_logs() -> Iterator[LogCapture]:
    """Every log record of every logger, at DEBUG, including ``django.request``,
    ``django.security``, ``django.db.backends`` (SQL with parameters) and ``urllib3``."""
    collector = _Collector()
    root = logging.getLogger()
    saved: list[tuple[logging.Logger, int, bool]] = []
    loggers = [root] + [
        logging.getLogger(name)
        for name in (
            "django",
            "django.request",
            "django.security",
            "django.db.backends",
            "django_pagero_oauth",
            "urllib3",
            "requests",
        )
    ]
    loggers += [
        item
        for item in logging.root.manager.loggerDict.values()
        if isinstance(item, logging.Logger)
    ]
    for logger in dict.fromkeys(loggers):
        saved.append((logger, logger.level, logger.disabled))
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        if logger is not root and not logger.propagate:
            logger.addHandler(collector)
    root.addHandler(collector)
    connection = connections["default"]
    debug_cursor = connection.force_debug_cursor
    connection.force_debug_cursor = True  # SQL and its parameters are logged, too
    try:
        yield LogCapture(collector.records)
    finally:
        connection.force_debug_cursor = debug_cursor
        root.removeHandler(collector)
        for logger, level, disabled in saved:
            logger.setLevel(level)
            logger.disabled = disabled
            if collector in logger.handlers:
                logger.removeHandler(collector)


# --- endpoints that misbehave below HTTP -----------------------------------------------------


@pytest.fixture
def refused_url() -> str:
    """An URL on a local port nobody listens on: connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/oauth/v2/oauth-token"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """An URL whose server accepts the connection (in the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/oauth/v2/oauth-token"
    finally:
        sock.close()


# --- a refresh held at Pagero, an answer that trickles ---------------------------------------


@pytest.fixture
def refresh_answer_held(
    pagero_mock: MockPageroServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[threading.Event, threading.Event]]:
    """The mock processes each refresh grant (the token rotated) and holds its answer until
    ``release`` is set; ``arrived`` is set when one is held."""
    arrived, release = threading.Event(), threading.Event()

    def hold(request: MockRequest) -> None:
        arrived.set()
        release.wait(timeout=DEADLINE)

    on_refresh_grant(pagero_mock, monkeypatch, hold)
    try:
        yield arrived, release
    finally:
        release.set()


@pytest.fixture
def proxy(pagero_mock: MockPageroServer, settings: Any) -> Iterator[TricklingProxy]:
    """Token requests go through a proxy that trickles the first answer, a byte every 0.3 s
    (``TIMEOUT`` 1 s), until its ``release`` is set."""
    trickler = TricklingProxy(token_upstream(settings), interval=0.3)
    send_token_requests_to(settings, trickler.port, timeout=1)
    try:
        yield trickler
    finally:
        trickler.close()
