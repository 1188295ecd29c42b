"""The authorization server's state: its configuration, the codes and tokens it issued.

:class:`MockPageroState` holds what the endpoints read and change, all under :attr:`lock`,
the helpers tests call directly, and the one place tokens are minted (``_issue_locked``). The
endpoints are :mod:`.endpoints` (a mixin over it) and :mod:`.app`.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from .faults import Fault
from .http import API_PREFIX, AUTHORIZE_PATH, REVOKE_PATH, TOKEN_PATH, MockRequest
from .oidc import KeySet, _b64url, _encode, make_id_token

REFRESH_TOKEN_PREFIX = "_1XBPWQQ_"
JWT_KID = "mock-key-1"
#: The certificate thumbprint in every JWT header: 20 bytes that look random but never change.
JWT_X5T = (
    base64.urlsafe_b64encode(hashlib.sha1(b"mock-pagero-key-1", usedforsecurity=False).digest())
    .rstrip(b"=")
    .decode()
)

#: The most seconds a ``Fault(hold=True)`` holds a request when nobody releases it.
HOLD_LIMIT = 60.0

COUNT_KEYS = (
    "authorize",
    "authorization_code",
    "refresh_token",
    "refresh_token_failed",
    "revoke",
    "api",
    "jwks",
    "discovery",
    "held",
)


@dataclass(frozen=True)
class _Grant:
    """What a user let a client do; its code and every token issued from it share ``family``."""

    client_id: str
    publicid: str
    scope: str
    family: str = field(default_factory=lambda: uuid.uuid4().hex)


@dataclass
class _Code:
    grant: _Grant
    redirect_uri: str
    code_challenge: str | None
    nonce: str | None
    expires_at: float
    used: bool = False


@dataclass
class _Token:
    kind: Literal["access", "refresh"]
    grant: _Grant
    expires_at: float
    revoked: bool = False
    consumed: bool = False


#: The client credentials a mock accepts unless told otherwise (``--client-id``, ...).
DEFAULT_CLIENT_ID = "mock-client-id"
DEFAULT_CLIENT_SECRET = "mock-client-secret"


def mock_settings(
    base_url: str,
    *,
    client_id: str = DEFAULT_CLIENT_ID,
    client_secret: str = DEFAULT_CLIENT_SECRET,
    issuer: str | None = None,
) -> dict[str, str]:
    """The ``PAGERO_OAUTH`` keys that point a site at a mock served at ``base_url``.

    ``CLIENT_ID``, ``CLIENT_SECRET``, the four endpoint URLs and ``ISSUER`` (the mock's
    ``iss``: ``base_url`` unless it was started with ``--issuer``). ``REDIRECT_URI`` and every
    other key are the site's own::

        PAGERO_OAUTH |= mock_settings("http://127.0.0.1:8765")
    """
    base_url = base_url.rstrip("/")
    return {
        "CLIENT_ID": client_id,
        "CLIENT_SECRET": client_secret,
        "AUTHORIZE_URL": base_url + AUTHORIZE_PATH,
        "TOKEN_URL": base_url + TOKEN_PATH,
        "REVOKE_URL": base_url + REVOKE_PATH,
        "API_BASE_URL": base_url + API_PREFIX,
        "ISSUER": issuer or base_url,
    }


@dataclass(kw_only=True, eq=False)
class MockPageroState:
    """The in-memory state of one mock server. Thread-safe: all of it is guarded by :attr:`lock`.

    ``issuer=None`` uses each request's ``base_url``; ``redirect_uris=None`` accepts any
    absolute http(s) URI, a list accepts exactly those (Pagero's registered URIs).
    ``require_pkce`` refuses an authorization request without a ``code_challenge`` (as
    RFC 9700 2.1.1 lets a server do); by default PKCE is accepted, not required (Pagero)."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    issuer: str | None = None
    expires_in: int = 600
    code_lifetime: int = 60
    refresh_token_lifetime: int = 3 * 365 * 24 * 3600
    clock: Callable[[], float] = time.time
    redirect_uris: Iterable[str] | None = None
    require_pkce: bool = False

    def __post_init__(self) -> None:
        self.redirect_uris = None if self.redirect_uris is None else list(self.redirect_uris)
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.issued_refresh_tokens: list[str] = []
        self.faults: list[Fault] = []
        self._codes: dict[str, _Code] = {}
        self._tokens: dict[str, _Token] = {}
        self._last_base_url: str | None = None
        #: OpenID Connect: the keys that sign id_tokens (:meth:`rotate_keys` replaces them),
        #: the algorithm used, and the nonce of the last code exchange ("replayed_nonce").
        self.signing_keys = KeySet()
        self.id_token_alg = "RS256"
        self._previous_nonce: str | None = None
        #: ``Fault(hold=True)``: the requests held so far (``counts["held"]``) are announced
        #: on ``_held_changed``; each waits on the gate that was current when it arrived.
        self._held_changed = threading.Condition(self.lock)
        self._hold_gate = threading.Event()

    def reset(self) -> None:
        """Forget all codes, tokens, counters and faults (configuration stays); release what
        is held."""
        self.release_held()
        with self.lock:
            self.counts.clear()
            self.issued_refresh_tokens.clear()
            self.faults.clear()
            self._codes.clear()
            self._tokens.clear()

    def add_fault(self, fault: Fault) -> None:
        """Queue ``fault``; the first matching fault applies to the next matching request."""
        with self.lock:
            self.faults.append(fault)

    def issue_tokens(
        self, *, publicid: str = "demo-company", scope: str = "all", expires_in: int | None = None
    ) -> dict[str, Any]:
        """Mint a token response directly (a test "token factory"); the tokens are valid."""
        with self.lock:
            issuer = self.issuer or self._last_base_url or "http://mock-pagero.invalid"
            grant = _Grant(self.client_id, publicid, scope)
            return self._issue_locked(grant, issuer, expires_in=expires_in)

    def wait_held(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Wait until ``count`` requests in all were held by ``Fault(hold=True)`` since the last
        :meth:`reset`; False if that did not happen within ``timeout`` seconds."""
        with self._held_changed:
            return self._held_changed.wait_for(lambda: self.counts["held"] >= count, timeout)

    def release_held(self) -> None:
        """Let every request held now go on; a request held later waits for the next call."""
        with self.lock:
            gate, self._hold_gate = self._hold_gate, threading.Event()
        gate.set()

    def _hold(self) -> None:
        """Hold the calling request (a ``Fault(hold=True)``) until :meth:`release_held`."""
        with self._held_changed:
            gate = self._hold_gate
            self.counts["held"] += 1
            self._held_changed.notify_all()
        gate.wait(HOLD_LIMIT)

    def rotate_keys(self, *, keep_old: bool = True) -> None:
        """Sign id_tokens with new keys (new ``kid`` s); the old ones stay in the JWKS while
        ``keep_old``, as a real rotation does."""
        with self.lock:
            self.signing_keys = self.signing_keys.rotated(keep_old=keep_old)

    def revoke_grant(self, publicid: str) -> int:
        """Revoke every token this client holds for ``publicid``, of every authorization: what
        Pagero does when the user withdraws the client's access. Returns how many live tokens
        it revoked; the client finds out at its next API call (401) or refresh
        (``invalid_grant``)."""
        with self.lock:
            return self._revoke_grant_locked(self.client_id, publicid)

    def is_refresh_token_valid(self, token: str) -> bool:
        """Known, unused, unrevoked and unexpired."""
        with self.lock:
            return self._live_token_locked(token, "refresh") is not None

    def is_access_token_valid(self, token: str) -> bool:
        """Known, unrevoked and unexpired."""
        with self.lock:
            return self._live_token_locked(token, "access") is not None

    def stats(self) -> dict[str, Any]:
        """What ``GET /_mock/stats`` answers."""
        with self.lock:
            return {
                "counts": {**dict.fromkeys(COUNT_KEYS, 0), **self.counts},
                "issued_refresh_tokens": len(self.issued_refresh_tokens),
                "last_refresh_token": next(reversed(self.issued_refresh_tokens), None),
                "pending_faults": len(self.faults),
                "expires_in": self.expires_in,
            }

    def settings_for(self, base_url: str) -> dict[str, str]:
        """A ``PAGERO_OAUTH`` settings fragment for the mock mounted at ``base_url``."""
        return mock_settings(
            base_url, client_id=self.client_id, client_secret=self.client_secret, issuer=self.issuer
        )

    def _issuer(self, request: MockRequest) -> str:
        """The ``iss`` of this server: the configured issuer, else where it is mounted."""
        return self.issuer or request.base_url

    def _issue_locked(
        self,
        grant: _Grant,
        issuer: str,
        *,
        expires_in: int | None = None,
        nonce: str | None = None,
        with_refresh_token: bool = True,
        id_token_fault: str | None = None,
    ) -> dict[str, Any]:
        """Create and register tokens; returns Pagero's token response. Lock held."""
        now = self.clock()
        lifetime = self.expires_in if expires_in is None else expires_in
        iat = int(now)
        claims: dict[str, Any] = {
            "iss": issuer,
            "sub": grant.publicid,
            "publicid": grant.publicid,
            "aud": grant.client_id,
            "iat": iat,
            "exp": iat + lifetime,
        }
        access_token = _jwt({**claims, "jti": uuid.uuid4().hex, "scope": grant.scope})
        self._tokens[access_token] = _Token("access", grant, now + lifetime)
        data: dict[str, Any] = {"token_type": "bearer", "access_token": access_token}
        if with_refresh_token:
            refresh_token = f"{REFRESH_TOKEN_PREFIX}{uuid.uuid4()}"
            self._tokens[refresh_token] = _Token(
                "refresh", grant, now + self.refresh_token_lifetime
            )
            self.issued_refresh_tokens.append(refresh_token)
            data["refresh_token"] = refresh_token
        data.update({"scope": "", "claims": "publicid", "expires_in": lifetime})
        if "openid" in grant.scope.split(" "):
            nonce_claim = {} if nonce is None else {"nonce": nonce}
            id_token = make_id_token(
                {**claims, "auth_time": iat, **nonce_claim},
                keys=self.signing_keys,
                alg=self.id_token_alg,
                access_token=access_token,
                fault=id_token_fault,
                previous_nonce=self._previous_nonce,
            )
            if id_token is not None:
                data["id_token"] = id_token
        self._previous_nonce = nonce or self._previous_nonce
        return data

    def _live(self, record: _Token) -> bool:
        return not record.revoked and not record.consumed and self.clock() < record.expires_at

    def _live_token_locked(self, token: str, kind: str) -> _Token | None:
        record = self._tokens.get(token)
        return record if record is not None and record.kind == kind and self._live(record) else None

    def _revoke_family_locked(self, family: str) -> None:
        for record in self._tokens.values():
            if record.grant.family == family:
                record.revoked = True

    def _revoke_grant_locked(self, client_id: str, publicid: str) -> int:
        """Revoke every live token of ``client_id`` for ``publicid``; returns how many."""
        revoked = 0
        for record in self._tokens.values():
            if (record.grant.client_id, record.grant.publicid) == (client_id, publicid):
                revoked += self._live(record)
                record.revoked = True
        return revoked


def _jwt(payload: dict[str, Any]) -> str:
    """A JWT-shaped token (RFC 7519) whose signature is random bytes: never verify it."""
    header = {"alg": "RS256", "typ": "JWT", "kid": JWT_KID, "x5t": JWT_X5T}
    return f"{_encode(header, payload).decode()}.{_b64url(secrets.token_bytes(32))}"
