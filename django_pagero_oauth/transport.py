"""The one HTTP path to Pagero's own endpoints (token, revocation, discovery, JWKS, the probes
of ``pagero_check``): one session per thread; ``TIMEOUT``, verified TLS, no redirects, no
``~/.netrc``, answers read up to 1 MiB, a form post bounded by a wall-clock deadline as a whole.
Also the one ``Retry-After`` parser and the loopback rule. Nothing about a request is logged but
the endpoint and the outcome.

The deadline: ``requests``' ``timeout`` bounds each socket operation, not the request, so an
answer trickling in a byte at a time, each within ``TIMEOUT``, keeps a request alive for as long
as the server (or a proxy) likes. A :class:`Cutoff` armed around a request (:func:`armed`) shuts
down the sockets of the connections that request uses when :meth:`Cutoff.cut` is called (from a
:class:`threading.Timer`); the blocked read then fails at once. The connections come from
:class:`CutoffAdapter`, mounted on the sessions.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import math
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from .conf import app_settings
from .exceptions import InvalidTokenResponse, PageroUnavailable

logger = logging.getLogger("django_pagero_oauth")

#: The largest answer read; a bigger one is refused (a token is a few KiB).
MAX_RESPONSE_BYTES = 1024 * 1024

_local = threading.local()


def is_loopback(host: str | None) -> bool:
    """``localhost`` or a loopback IP: traffic that never leaves the machine."""
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def fetchable(url: str) -> bool:
    """https, or http to a loopback address (a local mock) or under DEBUG, as check E002 says."""
    split = urlsplit(url)
    if split.scheme == "https" and split.hostname:
        return True
    return (
        split.scheme == "http"
        and bool(split.hostname)
        and (settings.DEBUG or is_loopback(split.hostname))
    )


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` (RFC 9110 10.2.3: delay-seconds or an HTTP-date) in seconds, or None.

    The one parser of the header, for the token endpoint's busy answers and the API clients'
    retries alike: anything else (``"soon"``, ``"-1"``, ``"1.5"``, ``"²"``) counts as no header.
    """
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # not "²" or other digits float() refuses
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


class Cutoff:
    """The connections of one request, and whether they were cut."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._connections: list[HTTPConnection] = []
        self._disarmed = False
        self.cut_off = False

    def add(self, connection: HTTPConnection) -> None:
        """A connection of the request, before it sends and again once it is connected: a cut
        that came while it was connecting shuts the new socket down at once."""
        with self._lock:
            if self._disarmed:
                return
            if not any(known is connection for known in self._connections):
                self._connections.append(connection)
            if self.cut_off:
                _shut_down(connection)

    def cut(self) -> None:
        """Shut down every socket of the request, now and any it opens later."""
        with self._lock:
            if self._disarmed:
                return
            self.cut_off = True
            for connection in self._connections:
                _shut_down(connection)

    def disarm(self) -> bool:
        """The request is over: a later :meth:`cut` (its timer firing as it ended) does nothing,
        so it never shuts a pooled connection another request uses. Returns ``cut_off``:
        if True, the caller drops its pooled connections (one may be shut down)."""
        with self._lock:
            self._disarmed = True
            self._connections.clear()
            return self.cut_off


def _shut_down(connection: HTTPConnection) -> None:
    sock = getattr(connection, "sock", None)
    # Behind an HTTPS proxy it is urllib3's SSLTransport (TLS in TLS), whose ``socket`` is the
    # one underneath.
    while sock is not None and not isinstance(sock, socket.socket):
        sock = getattr(sock, "socket", None)
    if sock is not None:
        with contextlib.suppress(OSError):
            # The plain socket's shutdown, also for TLS: the reading thread keeps its state.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


@contextlib.contextmanager
def armed(cutoff: Cutoff) -> Iterator[Cutoff]:
    """Within the block, this thread's requests through :class:`CutoffAdapter` obey
    ``cutoff``."""
    previous = getattr(_local, "cutoff", None)
    _local.cutoff = cutoff
    try:
        yield cutoff
    finally:
        _local.cutoff = previous


def _register(connection: HTTPConnection) -> None:
    cutoff: Cutoff | None = getattr(_local, "cutoff", None)
    if cutoff is not None:
        cutoff.add(connection)


class _HTTPConnection(HTTPConnection):
    """Registers itself with the armed cutoff when it connects and when it sends a request.
    Also the base of :class:`_HTTPSConnection`, whose method resolution puts it before
    ``HTTPSConnection``."""

    def connect(self) -> None:
        super().connect()
        _register(self)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _register(self)
        super().request(*args, **kwargs)


class _HTTPSConnection(_HTTPConnection, HTTPSConnection):
    pass


class _HTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


class CutoffAdapter(HTTPAdapter):
    """An adapter whose connections a :class:`Cutoff` armed in the thread can shut down."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _HTTPConnectionPool,
            "https": _HTTPSConnectionPool,
        }


def session() -> requests.Session:
    """One connection-pooling session per thread (``requests.Session`` is not thread-safe)."""
    current: requests.Session | None = getattr(_local, "session", None)
    if current is None:
        current = requests.Session()
        current.headers["User-Agent"] = "django-pagero-oauth"
        adapter = CutoffAdapter()  # a deadline can shut its sockets down
        current.mount("https://", adapter)
        current.mount("http://", adapter)
        _local.session = current
    return current


def _no_netrc(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """An explicit, no-op ``auth``: without one, requests adds ``~/.netrc`` credentials for the
    host, replacing the Basic header or adding a second method to ``client_secret_post``
    (RFC 6749 2.3: a client uses one authentication method per request)."""
    return request


def _send(method: str, url: str, **kwargs: Any) -> requests.Response:
    """The request, with the rules every request to Pagero follows; the body is not read."""
    return session().request(
        method,
        url,
        auth=_no_netrc,
        timeout=app_settings.TIMEOUT,
        allow_redirects=False,
        stream=True,
        verify=True,
        **kwargs,
    )


def status_of(url: str) -> int:
    """The status of a GET of ``url``, body unread; nothing is sent but the request line.
    Raises ``requests.RequestException``."""
    response = _send("GET", url)
    response.close()
    return response.status_code


@sensitive_variables()
def read_capped(response: requests.Response, *, within_timeout: bool = True) -> bytes:
    """The body, at most :data:`MAX_RESPONSE_BYTES`; with ``within_timeout``, read within
    ``TIMEOUT`` (a server that trickles it is cut off). A form post reads without it: its
    deadline bounds the whole request, and an answer read in full, which may hold a rotated
    single-use refresh token, is never thrown away for being slow."""
    body = b""
    deadline = time.monotonic() + app_settings.TIMEOUT
    try:
        for chunk in response.iter_content(chunk_size=65536):
            if within_timeout and time.monotonic() > deadline:
                raise requests.Timeout("the body came too slowly")
            body += chunk
            if len(body) > MAX_RESPONSE_BYTES:
                raise InvalidTokenResponse(
                    "the response is larger than 1 MiB", status_code=response.status_code
                )
    finally:
        response.close()
    return body


def _parsed(body: bytes) -> Any:
    """The JSON value of ``body``, or None."""
    try:
        return json.loads(body) if body else None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None


@dataclass(frozen=True)
class Reply:
    """An answer read in full: its status, its JSON (None when it is not JSON), its headers."""

    status: int
    data: Any
    headers: Mapping[str, str]

    @property
    def retry_after(self) -> int | None:
        """Whole seconds (rounded up) of ``Retry-After``, or None."""
        seconds = retry_after_seconds(self.headers.get("Retry-After"))
        return None if seconds is None else math.ceil(seconds)


@sensitive_variables()
def post_form(
    url: str, form: dict[str, str], *, headers: dict[str, str], what: str, deadline: float
) -> Reply:
    """POST ``form``; the answer, read in full.

    Transport failures raise :class:`PageroUnavailable` (the ``requests`` error stays its
    ``__context__``); so does a request still running after ``deadline`` seconds, wall clock
    (its sockets are shut down).
    """
    cutoff = Cutoff()
    timer = threading.Timer(deadline, cutoff.cut)
    timer.daemon = True
    timer.start()
    try:
        with armed(cutoff):
            return _post(url, form, headers=headers, what=what)
    except PageroUnavailable:
        if not cutoff.cut_off:
            raise
        logger.warning("Pagero %s: cut off after %ss", what, deadline)
        raise PageroUnavailable(f"{what}: Pagero did not answer in time") from None
    finally:
        timer.cancel()
        if cutoff.disarm():  # a cut socket may have gone back to the pool: never reuse it
            session().close()


@sensitive_variables()
def _post(url: str, form: dict[str, str], *, headers: dict[str, str], what: str) -> Reply:
    """:func:`post_form`, without its deadline."""
    try:
        response = _send("POST", url, data=form, headers=headers)
    except requests.Timeout:
        logger.warning("Pagero %s: timed out after %ss", what, app_settings.TIMEOUT)
        raise PageroUnavailable(f"{what}: Pagero did not answer in time") from None
    except requests.RequestException as exc:
        logger.warning("Pagero %s: connection failed (%s)", what, type(exc).__name__)
        raise PageroUnavailable(f"{what}: Pagero could not be reached") from None
    try:
        body = read_capped(response, within_timeout=False)
    except requests.RequestException:
        raise PageroUnavailable(f"{what}: the connection broke while reading") from None
    return Reply(response.status_code, _parsed(body), response.headers)


def get_json(url: str, what: str) -> dict[str, Any]:
    """GET a JSON object. Nothing secret is sent; every failure is :class:`PageroUnavailable`."""
    if not fetchable(url):
        logger.error("Pagero %s: refused to fetch a URL that is not https: %s", what, url)
        raise PageroUnavailable(f"{what}: the URL is not https")
    try:
        response = _send("GET", url, headers={"Accept": "application/json"})
        body = read_capped(response)
    except InvalidTokenResponse:  # a discovery or key set answer, not a token: retry later
        raise PageroUnavailable(f"{what}: the answer is larger than 1 MiB") from None
    except requests.RequestException as exc:
        logger.warning("Pagero %s: fetching %s failed (%s)", what, url, type(exc).__name__)
        raise PageroUnavailable(f"{what}: Pagero could not be reached") from None
    if response.status_code != 200:
        logger.warning("Pagero %s: HTTP %s from %s", what, response.status_code, url)
        raise PageroUnavailable(
            f"{what}: Pagero answered HTTP {response.status_code}",
            status_code=response.status_code,
        )
    data = _parsed(body)
    if not isinstance(data, dict):
        logger.warning("Pagero %s: the answer from %s is not a JSON object", what, url)
        raise PageroUnavailable(f"{what}: the answer is not a JSON object")
    return data
