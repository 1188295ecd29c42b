"""What a client GETs with its tokens or to verify them: the API and the OpenID documents.

A tiny Pagero API under :data:`~.http.API_PREFIX` (bearer tokens, RFC 6750) and the JWKS and
discovery documents of OpenID Connect (:mod:`.oidc` owns the keys).
"""

from __future__ import annotations

from typing import Any

from .http import (
    API_PREFIX,
    AUTHORIZE_PATH,
    TOKEN_PATH,
    MockRequest,
    MockResponse,
    _json_response,
    _method_not_allowed,
    _OAuthError,
)
from .oidc import JWKS_PATH, discovery_document
from .state import MockPageroState

_DOCUMENTS: tuple[dict[str, str], ...] = (
    {"number": "INV-1001", "amount": "1250.00", "currency": "SEK", "status": "delivered"},
    {"number": "INV-1002", "amount": "99.90", "currency": "EUR", "status": "pending"},
    {"number": "INV-1003", "amount": "18400.00", "currency": "SEK", "status": "paid"},
)


class ResourceEndpoints(MockPageroState):
    """The API, JWKS and discovery endpoints; mixed into :class:`.app.MockPagero`."""

    def _api(self, request: MockRequest) -> MockResponse:
        """RFC 6750: a live access token in ``Authorization: Bearer``, else a 401 challenge."""
        route = request.path[len(API_PREFIX) :]
        if route not in ("/v1/me", "/v1/documents"):
            return _json_response(404, {"error": "not_found", "path": request.path})
        if request.method not in ("GET", "HEAD"):
            return _method_not_allowed("GET")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self.lock:
            record = self._live_token_locked(token.strip(), "access")
        if record is None or scheme.lower() != "bearer":
            challenge = ("WWW-Authenticate", 'Bearer realm="mock-pagero", error="invalid_token"')
            raise _OAuthError("invalid_token", "Missing or invalid token.", 401, [challenge])
        grant = record.grant
        data: dict[str, Any] = {"publicid": grant.publicid}
        if route == "/v1/me":
            data.update({"name": "Demo Company AB", "client_id": grant.client_id})
        else:
            data["documents"] = [
                {"id": f"{grant.publicid}-{index}", **document}
                for index, document in enumerate(_DOCUMENTS, start=1)
            ]
        return _json_response(200, data)

    def _openid_document(self, request: MockRequest) -> MockResponse:
        """The JWKS or the discovery document (:mod:`.oidc`)."""
        if request.method not in ("GET", "HEAD"):
            return _method_not_allowed("GET")
        if request.path == JWKS_PATH:
            with self.lock:
                return _json_response(200, self.signing_keys.jwks())
        document = discovery_document(
            self._issuer(request), request.base_url, AUTHORIZE_PATH, TOKEN_PATH
        )
        return _json_response(200, document)
