"""The token and revocation endpoints (RFC 6749 4.1.3 and 6, RFC 7009), client authentication.

Client authentication is RFC 6749 2.3.1 to the letter (form-urlencoded before base64 in HTTP
Basic, one method per request, constant-time comparison). An authorization code is spent by
any attempt, and a second use revokes what it issued (4.1.2); a refresh token's
check-and-consume is atomic, so of two concurrent refreshes with one token exactly one wins.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from urllib.parse import unquote_plus

from .faults import Fault
from .http import (
    _NO_STORE,
    FORM_CONTENT_TYPE,
    MockRequest,
    MockResponse,
    _invalid_client,
    _json_response,
    _media_type,
    _oauth_error,
    _single,
)
from .oidc import _b64url
from .state import MockPageroState

# RFC 7636 4.1: a code_verifier is 43 to 128 unreserved characters.
_VERIFIER_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


class TokenEndpoints(MockPageroState):
    """:data:`~.http.TOKEN_PATH` and :data:`~.http.REVOKE_PATH`; mixed into :class:`.app.MockPagero`."""

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

    # --- revocation endpoint (RFC 7009) ------------------------------------------------

    def _revoke(self, request: MockRequest, fault: Fault | None = None) -> MockResponse:
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
                if record.kind == "refresh" and fault is not None and fault.revoke_grant:
                    # RFC 7009 2.1 lets a server revoke the whole grant, later logins included.
                    self._revoke_grant_locked(record.client_id, record.publicid)
                elif record.kind == "refresh":
                    # RFC 7009 2.1: revoking a refresh token ends the grant's access tokens.
                    self._revoke_family_locked(record.family)
                else:
                    record.revoked = True
        return MockResponse(200, list(_NO_STORE), b"")
