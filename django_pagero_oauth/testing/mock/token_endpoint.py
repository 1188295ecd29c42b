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
from dataclasses import replace
from typing import Any
from urllib.parse import unquote_plus

from .faults import Fault
from .http import (
    _NO_STORE,
    FORM_CONTENT_TYPE,
    MockRequest,
    MockResponse,
    _invalid_client,
    _invalid_request,
    _json_response,
    _media_type,
    _OAuthError,
    _refuse_repeated,
    _required,
    _single,
)
from .oidc import _b64url
from .state import MockPageroState

# RFC 7636 4.1: a code_verifier is 43 to 128 unreserved characters.
_VERIFIER_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")


def _invalid_grant(description: str) -> _OAuthError:
    return _OAuthError("invalid_grant", description)


def _check_pkce(challenge: str | None, verifier: str | None) -> None:
    """RFC 7636 4.6: the verifier must hash to the code's S256 challenge, and come only with one."""
    if challenge is None:
        if verifier is not None:
            raise _invalid_grant("code_verifier sent but no code_challenge was.")
        return
    if verifier is None:
        raise _invalid_grant("code_verifier is required (PKCE).")
    if not _VERIFIER_RE.fullmatch(verifier):
        raise _invalid_grant("code_verifier must be 43-128 unreserved characters.")
    computed = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
    if not hmac.compare_digest(computed, challenge):
        raise _invalid_grant("code_verifier does not match.")


class TokenEndpoints(MockPageroState):
    """:data:`~.http.TOKEN_PATH` and :data:`~.http.REVOKE_PATH`; mixed into :class:`.app.MockPagero`."""

    def _authenticate(self, request: MockRequest) -> None:
        """RFC 6749 2.3.1; raises unless the client authenticated."""
        authorization = request.headers.get("authorization")
        form_id = _single(request.form, "client_id")
        form_secret = _single(request.form, "client_secret")
        if authorization is not None:
            scheme, _, credentials = authorization.strip().partition(" ")
            if scheme.lower() != "basic":
                raise _invalid_client("Only HTTP Basic client authentication is supported.")
            if form_secret is not None:
                raise _invalid_request("More than one client authentication method (RFC 6749 2.3).")
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                raise _invalid_client("Malformed Basic credentials.") from None
            user, colon, password = decoded.partition(":")
            if not colon:
                raise _invalid_client("Malformed Basic credentials.")
            client_id, secret = unquote_plus(user), unquote_plus(password)
            if form_id is not None and form_id != client_id:
                raise _invalid_request("client_id differs from the Basic user.")
        elif form_id is None and form_secret is None:
            raise _invalid_client("Client authentication is required.")
        elif form_id is None or form_secret is None:
            raise _invalid_client("Both client_id and client_secret are required.")
        else:
            client_id, secret = form_id, form_secret
        id_ok = hmac.compare_digest(client_id.encode(), self.client_id.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self.client_secret.encode())
        if not (id_ok and secret_ok):
            raise _invalid_client("Unknown client or wrong secret.")

    def _check_form_request(self, request: MockRequest) -> None:
        """Shared checks of the token and revocation endpoints (RFC 6749 3.2, 2.3.1)."""
        if request.method != "POST":
            raise _OAuthError("invalid_request", "Use POST.", 405, [("Allow", "POST")])
        if _media_type(request.headers.get("content-type")) != FORM_CONTENT_TYPE:
            raise _invalid_request(f"The request body must be {FORM_CONTENT_TYPE}.")
        if request.query:
            raise _invalid_request("Parameters belong in the body, not in the URL (RFC 6749 3.2).")
        _refuse_repeated(request.form)
        self._authenticate(request)

    def _token(self, request: MockRequest, fault: Fault | None) -> MockResponse:
        self._check_form_request(request)
        grant_type = _single(request.form, "grant_type")
        omit_refresh = fault is not None and fault.omit_refresh_token
        if grant_type == "authorization_code":
            id_token_fault = fault.id_token if fault is not None else None
            data = self._authorization_code_grant(request, omit_refresh, id_token_fault)
        elif grant_type == "refresh_token":
            data = self._refresh_token_grant(request, omit_refresh)
        elif grant_type is None:
            raise _invalid_request("The grant_type parameter is missing.")
        else:
            raise _OAuthError("unsupported_grant_type", f"Unsupported grant_type {grant_type!r}.")
        return _json_response(200, data, _NO_STORE)

    def _authorization_code_grant(
        self, request: MockRequest, omit_refresh: bool, id_token_fault: str | None
    ) -> dict[str, Any]:
        code = _required(request.form, "code")
        redirect_uri = _single(request.form, "redirect_uri")
        with self.lock:
            record = self._codes.get(code)
            if record is None or record.grant.client_id != self.client_id:
                raise _invalid_grant("Unknown authorization code.")
            if record.used:
                # RFC 6749 4.1.2: a reused code revokes what was issued from it.
                self._revoke_family_locked(record.grant.family)
                raise _invalid_grant("The authorization code was already used; tokens revoked.")
            record.used = True  # any attempt spends the code
            if self.clock() >= record.expires_at:
                raise _invalid_grant("The authorization code has expired.")
            if redirect_uri is None or redirect_uri != record.redirect_uri:
                raise _invalid_grant("redirect_uri is missing or differs from the authorization.")
            _check_pkce(record.code_challenge, _single(request.form, "code_verifier"))
            return self._issue_locked(
                record.grant,
                self._issuer(request),
                nonce=record.nonce,
                with_refresh_token=not omit_refresh,
                id_token_fault=id_token_fault,
            )

    def _refresh_token_grant(self, request: MockRequest, omit_refresh: bool) -> dict[str, Any]:
        token = _required(request.form, "refresh_token")
        requested_scope = _single(request.form, "scope")
        with self.lock:  # check-and-consume is atomic: one of two concurrent uses wins
            record = self._tokens.get(token)
            if not record or record.kind != "refresh" or record.grant.client_id != self.client_id:
                raise _invalid_grant("Unknown refresh token.")
            if record.consumed:
                raise _invalid_grant("The refresh token was already used.")
            if record.revoked:
                raise _invalid_grant("The refresh token was revoked.")
            if self.clock() >= record.expires_at:
                raise _invalid_grant("The refresh token has expired.")
            grant = record.grant
            if requested_scope is not None:
                if not set(requested_scope.split(" ")) <= set(grant.scope.split(" ")):
                    raise _OAuthError("invalid_scope", "The scope exceeds the original grant.")
                grant = replace(grant, scope=requested_scope)
            record.consumed = not omit_refresh  # without a new one, the old one stays valid
            return self._issue_locked(
                grant, self._issuer(request), with_refresh_token=not omit_refresh
            )

    def _revoke(self, request: MockRequest, fault: Fault | None) -> MockResponse:
        self._check_form_request(request)
        token = _required(request.form, "token")
        hint = _single(request.form, "token_type_hint")
        if hint is not None and hint not in ("access_token", "refresh_token"):
            raise _OAuthError("unsupported_token_type", f"Unknown token_type_hint {hint!r}.")
        with self.lock:
            record = self._tokens.get(token)
            # RFC 7009 2.2: an unknown or already invalid token is still a 200.
            if record is not None and self._live(record):
                if record.kind == "access":
                    record.revoked = True
                elif fault is not None and fault.revoke_grant:
                    # RFC 7009 2.1 lets a server revoke the whole grant, later logins included.
                    self._revoke_grant_locked(record.grant.client_id, record.grant.publicid)
                else:
                    # RFC 7009 2.1: revoking a refresh token ends the grant's access tokens.
                    self._revoke_family_locked(record.grant.family)
        return MockResponse(200, list(_NO_STORE), b"")
