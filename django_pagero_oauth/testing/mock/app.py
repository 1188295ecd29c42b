"""A strict, in-memory mock of Pagero Online's OAuth 2.0 server and a tiny API.

Standard library only (no Django), so it serves the project's tests, users' test suites, the
example project (through a Django adapter calling :meth:`MockPagero.handle`) and benchmarks
(``python -m django_pagero_oauth.testing.mock --port 8765``).

It is deliberately *stricter* than a lenient server, so that a protocol slip or a client race
fails a test instead of passing silently:

- authorization codes are single-use; a second use revokes every token issued from the code
  (RFC 6749 4.1.2) and they are bound to the client and the exact ``redirect_uri`` (4.1.3);
- refresh tokens are single-use (Pagero's rule): check-and-consume is atomic, so of two
  concurrent refreshes with one token exactly one wins, the other gets ``invalid_grant``;
- client authentication is RFC 6749 2.3.1 to the letter (form-urlencoded *before* base64 in
  HTTP Basic, one method per request, constant-time comparison);
- PKCE is S256 only (RFC 7636 4.2), every parameter may appear at most once (RFC 6749 3.1, 3.2);
- faults (:class:`Fault`) inject errors, slowness and dropped connections;
- with ``openid`` in the scope, the authorization request must carry a ``nonce``, and the code
  exchange returns a really signed ``id_token`` carrying it back; JWKS and discovery are served
  (:mod:`.oidc`: keys, signing, and the ``id_token`` faults).

All time comes from the ``clock`` callable, so tests move time instead of sleeping.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import unquote_plus, urlsplit

from .faults import OMIT, Fault, _fault_from_form, _with_fields
from .http import (
    _NO_STORE,
    API_PREFIX,
    AUTHORIZE_PATH,
    FORM_CONTENT_TYPE,
    REVOKE_PATH,
    TOKEN_PATH,
    MockRequest,
    MockResponse,
    _html_error,
    _html_page,
    _invalid_client,
    _json_response,
    _media_type,
    _method_not_allowed,
    _oauth_405,
    _oauth_error,
    _reason,
    _redirect,
    _single,
)
from .oidc import (
    DISCOVERY_PATH,
    JWKS_PATH,
    KeySet,
    discovery_document,
    make_id_token,
)

REFRESH_TOKEN_PREFIX = "_1XBPWQQ_"
JWT_KID = "mock-key-1"
#: The certificate thumbprint in every JWT header: 20 bytes that look random but never change.
JWT_X5T = (
    base64.urlsafe_b64encode(hashlib.sha1(b"mock-pagero-key-1", usedforsecurity=False).digest())
    .rstrip(b"=")
    .decode()
)

# RFC 7636 4.1 (verifier) and 4.2 (an S256 challenge is 32 bytes, base64url: 43 characters).
_VERIFIER_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
_S256_CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43}")
# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by single spaces.
_SCOPE_RE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")

COUNT_KEYS = (
    "authorize",
    "authorization_code",
    "refresh_token",
    "refresh_token_failed",
    "revoke",
    "api",
    "jwks",
    "discovery",
)

_DOCUMENTS: tuple[dict[str, str], ...] = (
    {"number": "INV-1001", "amount": "1250.00", "currency": "SEK", "status": "delivered"},
    {"number": "INV-1002", "amount": "99.90", "currency": "EUR", "status": "pending"},
    {"number": "INV-1003", "amount": "18400.00", "currency": "SEK", "status": "paid"},
)


def _b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 2, RFC 7636 Appendix A)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --- state --------------------------------------------------------------------------------


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scope: str
    publicid: str
    code_challenge: str | None
    nonce: str | None
    expires_at: float
    family: str
    used: bool = False


@dataclass
class _Token:
    kind: Literal["access", "refresh"]
    client_id: str
    publicid: str
    scope: str
    family: str
    expires_at: float
    revoked: bool = False
    consumed: bool = False


@dataclass
class _AuthorizeParams:
    client_id: str
    redirect_uri: str
    state: str | None
    scope: str
    code_challenge: str | None
    nonce: str | None


class _AuthorizeError(Exception):
    """An authorization request error that is redirected back (RFC 6749 4.1.2.1)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class MockPagero:
    """The in-memory server. Thread-safe: all state is guarded by :attr:`lock`.

    Tests read (and may write) :attr:`counts` (a :class:`collections.Counter`):

    - ``"authorize"``: login form submissions (approve or deny);
    - ``"authorization_code"`` / ``"refresh_token"``: every token request of that grant type,
      successful or not, faulted or not;
    - ``"refresh_token_failed"``: refresh requests that got no 2xx answer (rejected, faulted
      or dropped);
    - ``"revoke"``: revocation requests; ``"api"``: API requests.

    :attr:`issued_refresh_tokens` lists every refresh token ever issued, in order;
    :attr:`expires_in` (the access token lifetime) may be changed at any time.
    """

    def __init__(
        self,
        *,
        client_id: str = "mock-client-id",
        client_secret: str = "mock-client-secret",
        issuer: str | None = None,
        expires_in: int = 600,
        code_lifetime: int = 60,
        refresh_token_lifetime: int = 3 * 365 * 24 * 3600,
        clock: Callable[[], float] = time.time,
        redirect_uris: Iterable[str] | None = None,
        require_pkce: bool = False,
    ) -> None:
        """``issuer=None`` uses each request's ``base_url``; ``redirect_uris=None`` accepts any
        absolute http(s) URI, a list accepts exactly those (Pagero's registered URIs).
        ``require_pkce`` refuses an authorization request without a ``code_challenge`` (as
        RFC 9700 2.1.1 lets a server do); by default PKCE is accepted, not required (Pagero)."""
        self.client_id = client_id
        self.client_secret = client_secret
        self.issuer = issuer
        self.expires_in = expires_in
        self.code_lifetime = code_lifetime
        self.refresh_token_lifetime = refresh_token_lifetime
        self.clock = clock
        self.redirect_uris = None if redirect_uris is None else list(redirect_uris)
        self.require_pkce = require_pkce
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

    # --- public helpers ---------------------------------------------------------------

    def reset(self) -> None:
        """Forget all codes, tokens, counters and faults (configuration stays)."""
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
            return self._issue_locked(
                client_id=self.client_id,
                publicid=publicid,
                scope=scope,
                family=uuid.uuid4().hex,
                issuer=issuer,
                expires_in=expires_in,
            )

    def rotate_keys(self, *, keep_old: bool = True) -> None:
        """Sign id_tokens with new keys (new ``kid`` s); the old ones stay in the JWKS while
        ``keep_old``, as a real rotation does."""
        with self.lock:
            self.signing_keys = self.signing_keys.rotated(keep_old=keep_old)

    def is_refresh_token_valid(self, token: str) -> bool:
        """Known, unused, unrevoked and unexpired."""
        with self.lock:
            record = self._tokens.get(token)
            return (
                record is not None and record.kind == "refresh" and self._live(record, self.clock())
            )

    def is_access_token_valid(self, token: str) -> bool:
        """Known, unrevoked and unexpired."""
        with self.lock:
            record = self._tokens.get(token)
            return (
                record is not None and record.kind == "access" and self._live(record, self.clock())
            )

    def stats(self) -> dict[str, Any]:
        """What ``GET /_mock/stats`` answers."""
        with self.lock:
            counts = {key: self.counts[key] for key in COUNT_KEYS}
            counts.update(self.counts)
            return {
                "counts": counts,
                "issued_refresh_tokens": len(self.issued_refresh_tokens),
                "last_refresh_token": (
                    self.issued_refresh_tokens[-1] if self.issued_refresh_tokens else None
                ),
                "pending_faults": len(self.faults),
                "expires_in": self.expires_in,
            }

    def settings_for(self, base_url: str) -> dict[str, str]:
        """A ``PAGERO_OAUTH`` settings fragment for the mock mounted at ``base_url``."""
        base_url = base_url.rstrip("/")
        return {
            "CLIENT_ID": self.client_id,
            "CLIENT_SECRET": self.client_secret,
            "AUTHORIZE_URL": base_url + AUTHORIZE_PATH,
            "TOKEN_URL": base_url + TOKEN_PATH,
            "REVOKE_URL": base_url + REVOKE_PATH,
            "API_BASE_URL": base_url + API_PREFIX,
            "ISSUER": self.issuer or base_url,
        }

    # --- dispatch ---------------------------------------------------------------------

    def handle(self, request: MockRequest) -> MockResponse:
        """Answer one request (thread-safe)."""
        endpoint = self._fault_endpoint(request)
        grant_type = _single(request.form, "grant_type") if endpoint == "token" else None
        with self.lock:
            self._last_base_url = request.base_url
            count_key = self._count_key(request, grant_type)
            if count_key is not None:
                self.counts[count_key] += 1
            fault = self._take_fault(endpoint, grant_type)
        if fault is not None and fault.short_circuits and not fault.process:
            response = fault.response(endpoint or "")
        else:
            response = self._dispatch(request, fault)
            if fault is not None and fault.short_circuits:
                replacement = fault.response(endpoint or "")
                if fault.status is not None or fault.body is not None or fault.drop:
                    response = replacement
                else:
                    response.headers.extend(fault.headers)
                    response.delay = fault.delay
        if fault is not None and fault.fields is not None and response.status == 200:
            response = _with_fields(response, fault.fields)
        if count_key == "refresh_token" and (
            response.drop_connection or not 200 <= response.status < 300
        ):
            with self.lock:
                self.counts["refresh_token_failed"] += 1
        return response

    def _fault_endpoint(self, request: MockRequest) -> str | None:
        if request.path == TOKEN_PATH:
            return "token"
        if request.path == REVOKE_PATH:
            return "revoke"
        if request.path == AUTHORIZE_PATH and request.method == "POST":
            return "authorize"
        if request.path == API_PREFIX or request.path.startswith(API_PREFIX + "/"):
            return "api"
        if request.path == JWKS_PATH:
            return "jwks"
        if request.path == DISCOVERY_PATH:
            return "discovery"
        return None

    def _count_key(self, request: MockRequest, grant_type: str | None) -> str | None:
        endpoint = self._fault_endpoint(request)
        if endpoint == "token":
            return grant_type if grant_type in ("authorization_code", "refresh_token") else None
        return endpoint

    def _take_fault(self, endpoint: str | None, grant_type: str | None) -> Fault | None:
        """Find, count down and (at zero) remove the first matching fault. Lock held."""
        for index, fault in enumerate(self.faults):
            if fault.matches(endpoint, grant_type):
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[index]
                return fault
        return None

    def _dispatch(self, request: MockRequest, fault: Fault | None) -> MockResponse:
        path, method = request.path, request.method
        if path == AUTHORIZE_PATH:
            if method in ("GET", "HEAD"):
                return self._authorize_page(request)
            if method == "POST":
                return self._authorize_submit(request, fault)
            return _method_not_allowed("GET, POST")
        if path == TOKEN_PATH:
            return self._token(request, fault) if method == "POST" else _oauth_405()
        if path == REVOKE_PATH:
            return self._revoke(request) if method == "POST" else _oauth_405()
        if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
            return self._api(request)
        if path in (JWKS_PATH, DISCOVERY_PATH):
            return self._openid_document(request)
        if path == "/_mock/stats" and method == "GET":
            return _json_response(200, self.stats(), _NO_STORE)
        if path == "/_mock/reset" and method == "POST":
            self.reset()
            return _json_response(200, {"ok": True})
        if path == "/_mock/config" and method == "POST":
            return self._config(request)
        if path == "/_mock/fault" and method == "POST":
            return self._fault_from_form(request)
        return _json_response(404, {"error": "not_found", "path": path})

    # --- authorization endpoint (RFC 6749 4.1.1, 4.1.2) -------------------------------

    def _issuer(self, request: MockRequest) -> str:
        return self.issuer or request.base_url

    def _validate_client_and_redirect(self, params: dict[str, list[str]]) -> str | None:
        """The errors that must NOT be redirected (RFC 6749 4.1.2.1); ``None`` when fine."""
        for name in ("client_id", "redirect_uri"):
            if len(params.get(name, [])) > 1:
                return f"The {name} parameter is repeated."
        client_id = _single(params, "client_id")
        if not client_id:
            return "The client_id parameter is missing."
        if not hmac.compare_digest(client_id.encode(), self.client_id.encode()):
            return "Unknown client_id."
        redirect_uri = _single(params, "redirect_uri")
        if not redirect_uri:
            return "The redirect_uri parameter is missing."
        split = urlsplit(redirect_uri)
        if split.scheme not in ("http", "https") or not split.netloc or not split.hostname:
            return "The redirect_uri must be an absolute http or https URL."
        if "#" in redirect_uri:
            return "The redirect_uri must not contain a fragment (RFC 6749 3.1.2)."
        if self.redirect_uris is not None and redirect_uri not in self.redirect_uris:
            return "The redirect_uri is not registered for this client."
        return None

    def _validate_authorize(self, params: dict[str, list[str]]) -> _AuthorizeParams:
        """Validate the rest of an authorization request; raises :class:`_AuthorizeError`."""
        repeated = sorted(name for name, values in params.items() if len(values) > 1)
        if repeated:
            raise _AuthorizeError("invalid_request", f"Repeated parameter: {repeated[0]}.")
        response_type = _single(params, "response_type")
        if response_type is None:
            raise _AuthorizeError("invalid_request", "The response_type parameter is missing.")
        if response_type != "code":
            raise _AuthorizeError(
                "unsupported_response_type", "Only response_type=code is supported."
            )
        scope = _single(params, "scope")
        if scope is None:
            scope = "all"
        elif not _SCOPE_RE.fullmatch(scope):
            raise _AuthorizeError("invalid_scope", "The scope is empty or malformed.")
        if "openid" in scope.split(" ") and not _single(params, "nonce"):
            # Optional in OpenID Connect's code flow, but this client always sends one.
            raise _AuthorizeError("invalid_request", "openid needs a nonce (replay protection).")
        prompt = _single(params, "prompt")
        if prompt is not None and prompt != "login":
            raise _AuthorizeError("invalid_request", "Only prompt=login is supported.")
        challenge = _single(params, "code_challenge")
        method = _single(params, "code_challenge_method")
        if challenge is None and method is not None:
            raise _AuthorizeError("invalid_request", "code_challenge_method without a challenge.")
        if challenge is None and self.require_pkce:
            raise _AuthorizeError("invalid_request", "code_challenge is required (PKCE).")
        if challenge is not None:
            if method is None:
                raise _AuthorizeError(
                    "invalid_request", "code_challenge_method is required (plain is refused)."
                )
            if method != "S256":
                raise _AuthorizeError(
                    "invalid_request", "Only code_challenge_method=S256 is supported."
                )
            if not _S256_CHALLENGE_RE.fullmatch(challenge):
                raise _AuthorizeError(
                    "invalid_request", "An S256 code_challenge is 43 base64url characters."
                )
        return _AuthorizeParams(
            client_id=_single(params, "client_id") or "",
            redirect_uri=_single(params, "redirect_uri") or "",
            state=_single(params, "state"),
            scope=scope,
            code_challenge=challenge,
            nonce=_single(params, "nonce"),
        )

    def _error_redirect(
        self, request: MockRequest, params: dict[str, list[str]], error: _AuthorizeError
    ) -> MockResponse:
        out = {"error": error.error, "error_description": error.description}
        state = params.get("state")
        if state and len(state) == 1:
            out["state"] = state[0]
        out["iss"] = self._issuer(request)
        return _redirect(_single(params, "redirect_uri") or "", out)

    def _checked_authorize(
        self, request: MockRequest, params: dict[str, list[str]]
    ) -> _AuthorizeParams | MockResponse:
        """The validated authorization request, or the answer to an invalid one.

        A bad client or redirect URI gets an error page: never redirect to an unvalidated URI
        (RFC 6749 4.1.2.1); any other problem goes back to the client as an OAuth error.
        """
        problem = self._validate_client_and_redirect(params)
        if problem is not None:
            return _html_error(problem)
        try:
            return self._validate_authorize(params)
        except _AuthorizeError as exc:
            return self._error_redirect(request, params, exc)

    def _authorize_page(self, request: MockRequest) -> MockResponse:
        """GET: validate, then show the login/consent form (RFC 6749 4.1.1)."""
        params = request.query
        valid = self._checked_authorize(request, params)
        if isinstance(valid, MockResponse):
            return valid
        hidden = "\n".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
            for name, values in params.items()
            if name not in ("action", "publicid")
            for value in values
        )
        action = urlsplit(request.base_url).path + AUTHORIZE_PATH
        body = (
            f"<p>Application <code>{html.escape(valid.client_id)}</code> asks for access "
            f"(scope <code>{html.escape(valid.scope)}</code>) and will return to "
            f"<code>{html.escape(valid.redirect_uri)}</code>.</p>\n"
            f'<form method="post" action="{html.escape(action)}">\n{hidden}\n'
            '<label>Company public id <input type="text" name="publicid" '
            'value="demo-company"></label>\n'
            '<button type="submit" name="action" value="approve">Approve</button>\n'
            '<button type="submit" name="action" value="deny">Deny</button>\n</form>'
        )
        return _html_page(200, "Mock Pagero login", body)

    def _authorize_submit(self, request: MockRequest, fault: Fault | None) -> MockResponse:
        """POST of the login form: redirect back with a code or an error (RFC 6749 4.1.2)."""
        if _media_type(request.headers.get("content-type")) != FORM_CONTENT_TYPE:
            return _html_error("The login form must be posted as a form.")
        params = {k: v for k, v in request.form.items() if k not in ("action", "publicid")}
        valid = self._checked_authorize(request, params)
        if isinstance(valid, MockResponse):
            return valid
        action = _single(request.form, "action")
        publicid = _single(request.form, "publicid") or "demo-company"
        out: dict[str, str] = {}
        if action == "approve":
            code = secrets.token_urlsafe(32)
            with self.lock:
                self._codes[code] = _Code(
                    client_id=valid.client_id,
                    redirect_uri=valid.redirect_uri,
                    scope=valid.scope,
                    publicid=publicid,
                    code_challenge=valid.code_challenge,
                    nonce=valid.nonce,
                    expires_at=self.clock() + self.code_lifetime,
                    family=uuid.uuid4().hex,
                )
            out["code"] = code
        elif action == "deny":
            out["error"] = "access_denied"
            out["error_description"] = "The user denied the request."
        else:
            return _html_error("The action must be approve or deny.")
        if valid.state is not None:
            out["state"] = valid.state
        iss: str | None = self._issuer(request)
        if fault is not None and (fault.iss is OMIT or fault.iss is None):
            iss = None
        elif fault is not None and isinstance(fault.iss, str):
            iss = fault.iss
        if iss is not None:
            out["iss"] = iss  # RFC 9207 2
        return _redirect(valid.redirect_uri, out)

    # --- client authentication (RFC 6749 2.3.1) ----------------------------------------

    def _authenticate(self, request: MockRequest) -> MockResponse | None:
        """``None`` when the client authenticated, else the error response."""
        form = request.form
        authorization = request.headers.get("authorization")
        form_id = _single(form, "client_id")
        form_secret = _single(form, "client_secret")
        if authorization is not None:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() != "basic":
                return _invalid_client("Only HTTP Basic client authentication is supported.")
            if form_secret is not None:
                return _oauth_error(
                    "invalid_request",
                    "More than one client authentication method (RFC 6749 2.3).",
                )
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return _invalid_client("Malformed Basic credentials.")
            user, colon, password = decoded.partition(":")
            if not colon:
                return _invalid_client("Malformed Basic credentials.")
            client_id, secret = unquote_plus(user), unquote_plus(password)
            if form_id is not None and form_id != client_id:
                return _oauth_error("invalid_request", "client_id differs from the Basic user.")
        elif form_id is not None or form_secret is not None:
            if form_id is None or form_secret is None:
                return _invalid_client("Both client_id and client_secret are required.")
            client_id, secret = form_id, form_secret
        else:
            return _invalid_client("Client authentication is required.")
        id_ok = hmac.compare_digest(client_id.encode(), self.client_id.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self.client_secret.encode())
        if not (id_ok and secret_ok):
            return _invalid_client("Unknown client or wrong secret.")
        return None

    def _check_form_request(self, request: MockRequest) -> MockResponse | None:
        """Shared checks of the token and revocation endpoints (RFC 6749 3.2, 2.3.1)."""
        if _media_type(request.headers.get("content-type")) != FORM_CONTENT_TYPE:
            return _oauth_error("invalid_request", f"The request body must be {FORM_CONTENT_TYPE}.")
        if request.query:
            return _oauth_error(
                "invalid_request", "Parameters belong in the body, not in the URL (RFC 6749 3.2)."
            )
        repeated = sorted(name for name, values in request.form.items() if len(values) > 1)
        if repeated:
            return _oauth_error("invalid_request", f"Repeated parameter: {repeated[0]}.")
        return self._authenticate(request)

    # --- token endpoint (RFC 6749 4.1.3, 6) --------------------------------------------

    def _token(self, request: MockRequest, fault: Fault | None) -> MockResponse:
        error = self._check_form_request(request)
        if error is not None:
            return error
        grant_type = _single(request.form, "grant_type")
        if grant_type is None:
            return _oauth_error("invalid_request", "The grant_type parameter is missing.")
        omit_refresh = fault is not None and fault.omit_refresh_token
        if grant_type == "authorization_code":
            id_token_fault = fault.id_token if fault is not None else None
            return self._authorization_code_grant(request, omit_refresh, id_token_fault)
        if grant_type == "refresh_token":
            return self._refresh_token_grant(request, omit_refresh)
        return _oauth_error("unsupported_grant_type", f"Unsupported grant_type {grant_type!r}.")

    def _authorization_code_grant(
        self, request: MockRequest, omit_refresh: bool, id_token_fault: str | None = None
    ) -> MockResponse:
        form = request.form
        code = _single(form, "code")
        if not code:
            return _oauth_error("invalid_request", "The code parameter is missing.")
        redirect_uri = _single(form, "redirect_uri")
        verifier = _single(form, "code_verifier")
        with self.lock:
            record = self._codes.get(code)
            if record is None or record.client_id != self.client_id:
                return _oauth_error("invalid_grant", "Unknown authorization code.")
            if record.used:
                # RFC 6749 4.1.2: a reused code revokes what was issued from it.
                self._revoke_family_locked(record.family)
                return _oauth_error(
                    "invalid_grant", "The authorization code was already used; tokens revoked."
                )
            record.used = True  # any attempt spends the code
            if self.clock() >= record.expires_at:
                return _oauth_error("invalid_grant", "The authorization code has expired.")
            if redirect_uri is None or redirect_uri != record.redirect_uri:
                return _oauth_error(
                    "invalid_grant", "redirect_uri is missing or differs from the authorization."
                )
            if record.code_challenge is None:
                if verifier is not None:
                    return _oauth_error(
                        "invalid_grant", "code_verifier sent but no code_challenge was."
                    )
            else:
                if verifier is None:
                    return _oauth_error("invalid_grant", "code_verifier is required (PKCE).")
                if not _VERIFIER_RE.fullmatch(verifier):
                    return _oauth_error(
                        "invalid_grant", "code_verifier must be 43-128 unreserved characters."
                    )
                computed = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
                if not hmac.compare_digest(computed, record.code_challenge):
                    return _oauth_error("invalid_grant", "code_verifier does not match.")
            data = self._issue_locked(
                client_id=record.client_id,
                publicid=record.publicid,
                scope=record.scope,
                family=record.family,
                issuer=self._issuer(request),
                nonce=record.nonce,
                with_refresh_token=not omit_refresh,
                id_token_fault=id_token_fault,
            )
            if record.nonce is not None:
                self._previous_nonce = record.nonce
        return _json_response(200, data, _NO_STORE)

    def _refresh_token_grant(self, request: MockRequest, omit_refresh: bool) -> MockResponse:
        form = request.form
        token = _single(form, "refresh_token")
        if not token:
            return _oauth_error("invalid_request", "The refresh_token parameter is missing.")
        requested_scope = _single(form, "scope")
        with self.lock:  # check-and-consume is atomic: one of two concurrent uses wins
            record = self._tokens.get(token)
            now = self.clock()
            if record is None or record.kind != "refresh" or record.client_id != self.client_id:
                return _oauth_error("invalid_grant", "Unknown refresh token.")
            if record.consumed:
                return _oauth_error("invalid_grant", "The refresh token was already used.")
            if record.revoked:
                return _oauth_error("invalid_grant", "The refresh token was revoked.")
            if now >= record.expires_at:
                return _oauth_error("invalid_grant", "The refresh token has expired.")
            scope = record.scope
            if requested_scope is not None:
                if not set(requested_scope.split(" ")) <= set(record.scope.split(" ")):
                    return _oauth_error("invalid_scope", "The scope exceeds the original grant.")
                scope = requested_scope
            if not omit_refresh:
                record.consumed = True
            data = self._issue_locked(
                client_id=record.client_id,
                publicid=record.publicid,
                scope=scope,
                family=record.family,
                issuer=self._issuer(request),
                with_refresh_token=not omit_refresh,
            )
        return _json_response(200, data, _NO_STORE)

    def _issue_locked(
        self,
        *,
        client_id: str,
        publicid: str,
        scope: str,
        family: str,
        issuer: str,
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
            "sub": publicid,
            "publicid": publicid,
            "aud": client_id,
            "iat": iat,
            "exp": iat + lifetime,
        }
        access_token = _jwt({**claims, "jti": uuid.uuid4().hex, "scope": scope})
        self._tokens[access_token] = _Token(
            "access", client_id, publicid, scope, family, now + lifetime
        )
        data: dict[str, Any] = {"token_type": "bearer", "access_token": access_token}
        if with_refresh_token:
            refresh_token = f"{REFRESH_TOKEN_PREFIX}{uuid.uuid4()}"
            self._tokens[refresh_token] = _Token(
                "refresh", client_id, publicid, scope, family, now + self.refresh_token_lifetime
            )
            self.issued_refresh_tokens.append(refresh_token)
            data["refresh_token"] = refresh_token
        data.update({"scope": "", "claims": "publicid", "expires_in": lifetime})
        if "openid" in scope.split(" "):
            id_claims = {**claims, "auth_time": iat}
            if nonce is not None:
                id_claims["nonce"] = nonce
            id_token = make_id_token(
                id_claims,
                keys=self.signing_keys,
                alg=self.id_token_alg,
                access_token=access_token,
                fault=id_token_fault,
                previous_nonce=self._previous_nonce,
            )
            if id_token is not None:
                data["id_token"] = id_token
        return data

    @staticmethod
    def _live(record: _Token, now: float) -> bool:
        return not record.revoked and not record.consumed and now < record.expires_at

    def _revoke_family_locked(self, family: str) -> None:
        for record in self._tokens.values():
            if record.family == family:
                record.revoked = True

    # --- revocation endpoint (RFC 7009) ------------------------------------------------

    def _revoke(self, request: MockRequest) -> MockResponse:
        error = self._check_form_request(request)
        if error is not None:
            return error
        token = _single(request.form, "token")
        if not token:
            return _oauth_error("invalid_request", "The token parameter is missing.")
        hint = _single(request.form, "token_type_hint")
        if hint is not None and hint not in ("access_token", "refresh_token"):
            return _oauth_error("unsupported_token_type", f"Unknown token_type_hint {hint!r}.")
        with self.lock:
            record = self._tokens.get(token)
            # RFC 7009 2.2: an unknown or already invalid token is still a 200.
            if record is not None and self._live(record, self.clock()):
                if record.kind == "refresh":
                    # RFC 7009 2.1: revoking a refresh token ends the grant's access tokens.
                    self._revoke_family_locked(record.family)
                else:
                    record.revoked = True
        return MockResponse(200, list(_NO_STORE), b"")

    # --- API (RFC 6750) ----------------------------------------------------------------

    def _api(self, request: MockRequest) -> MockResponse:
        route = request.path[len(API_PREFIX) :]
        if route not in ("/v1/me", "/v1/documents"):
            return _json_response(404, {"error": "not_found", "path": request.path})
        if request.method not in ("GET", "HEAD"):
            return _method_not_allowed("GET")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        with self.lock:
            record = self._tokens.get(token) if scheme.lower() == "bearer" else None
            valid = (
                record is not None and record.kind == "access" and self._live(record, self.clock())
            )
        if record is None or not valid:
            return _json_response(
                401,
                {"error": "invalid_token", "error_description": "Missing or invalid token."},
                [("WWW-Authenticate", 'Bearer realm="mock-pagero", error="invalid_token"')],
            )
        if route == "/v1/me":
            data: Any = {
                "publicid": record.publicid,
                "name": "Demo Company AB",
                "client_id": record.client_id,
            }
        else:
            data = {
                "publicid": record.publicid,
                "documents": [
                    {"id": f"{record.publicid}-{index}", **document}
                    for index, document in enumerate(_DOCUMENTS, start=1)
                ],
            }
        return _json_response(200, data)

    # --- OpenID Connect: JWKS and discovery (see oidc) -----------------------------

    def _openid_document(self, request: MockRequest) -> MockResponse:
        if request.method not in ("GET", "HEAD"):
            return _method_not_allowed("GET")
        if request.path == JWKS_PATH:
            with self.lock:
                return _json_response(200, self.signing_keys.jwks())
        document = discovery_document(
            self._issuer(request), request.base_url, AUTHORIZE_PATH, TOKEN_PATH
        )
        return _json_response(200, document)

    # --- /_mock control endpoints ------------------------------------------------------

    def _config(self, request: MockRequest) -> MockResponse:
        """``POST /_mock/config``: set ``expires_in``, ``code_lifetime`` and/or
        ``refresh_token_lifetime`` (positive integers, seconds)."""
        names = ("expires_in", "code_lifetime", "refresh_token_lifetime")
        values: dict[str, int] = {}
        for name in names:
            value = _single(request.form, name)
            if value is None:
                continue
            if not value.isdigit() or int(value) < 1:
                return _json_response(400, {"error": f"{name} must be a positive integer"})
            values[name] = int(value)
        if not values:
            return _json_response(400, {"error": f"set one of {', '.join(names)}"})
        with self.lock:
            for name, number in values.items():
                setattr(self, name, number)
            return _json_response(200, {"ok": True, **{n: getattr(self, n) for n in names}})

    def _fault_from_form(self, request: MockRequest) -> MockResponse:
        """``POST /_mock/fault`` with form fields named like :class:`Fault`'s."""
        try:
            fault = _fault_from_form(request.form)
        except ValueError as exc:
            return _json_response(400, {"error": str(exc)})
        self.add_fault(fault)
        return _json_response(200, {"ok": True})

    # --- WSGI ---------------------------------------------------------------------------

    def wsgi_app(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """A WSGI application. ``delay`` blocks; ``drop`` cannot be expressed in WSGI, so it
        raises :class:`ConnectionAbortedError` (the WSGI server then drops or answers 500)."""
        response = self.handle(MockRequest.from_wsgi(environ))
        if response.delay:
            time.sleep(response.delay)
        if response.drop_connection:
            raise ConnectionAbortedError("mock fault: drop the connection")
        headers = [*response.headers, ("Content-Length", str(len(response.body)))]
        start_response(f"{response.status} {_reason(response.status)}", headers)
        return [response.body]


def _jwt(payload: dict[str, Any]) -> str:
    """A JWT-shaped token (RFC 7519) whose signature is random bytes: never verify it."""
    header = {"alg": "RS256", "typ": "JWT", "kid": JWT_KID, "x5t": JWT_X5T}
    parts = (json.dumps(part, separators=(",", ":")).encode() for part in (header, payload))
    return ".".join([*(_b64url(part) for part in parts), _b64url(secrets.token_bytes(32))])
