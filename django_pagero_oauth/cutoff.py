"""A wall-clock limit on a whole HTTP request to Pagero: :class:`Cutoff`.

``requests``' ``timeout`` bounds each socket operation, not the request: an answer trickling in
a byte at a time, each within ``TIMEOUT``, keeps a request alive for as long as the server (or a
proxy) likes. A :class:`Cutoff` armed around a request (:func:`armed`) shuts down the sockets of
the connections that request uses when :meth:`Cutoff.cut` is called (from another thread, e.g.
a :class:`threading.Timer`); the blocked read then fails at once. The connections come from
:class:`CutoffAdapter`, which ``transport`` mounts on its sessions.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_local = threading.local()


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
        so it never shuts a pooled connection another request uses. Returns :attr:`cut_off`:
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


__all__ = ["Cutoff", "CutoffAdapter", "armed"]
