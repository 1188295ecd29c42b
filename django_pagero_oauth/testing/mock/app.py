"""The mock as one application: :class:`MockPagero` routes each request to its endpoint.

The endpoints are those of :mod:`.endpoints` (a mixin over the state of :mod:`.state`) and,
here, a tiny Pagero API (bearer tokens, RFC 6750) and the JWKS and discovery documents of
OpenID Connect (:mod:`.oidc` owns the keys).

:meth:`MockPagero.handle` is the one entry point of every adapter (:mod:`.server`,
:meth:`MockPagero.wsgi_app`, :mod:`django_pagero_oauth.testing.views`): it counts the request
and applies the first matching :class:`~.faults.Fault`, instead of or on top of the answer.

The ``/_mock/...`` control endpoints (stats, reset, config, fault, release, revoke_grant) are
answered here, so they exist only where a mock is served on purpose: a test's
:class:`~.server.MockPageroServer`, the CLI, or ``django_pagero_oauth.testing.urls`` mounted
in a project (404 unless ``DEBUG`` or ``ALLOW_MOCK_SERVER``). The app's URLconf never has them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from .endpoints import OAuthEndpoints
from .faults import Fault, _parse_fault_form, _with_fields
from .http import (
    _NO_STORE,
    API_PREFIX,
    AUTHORIZE_PATH,
    REVOKE_PATH,
    TOKEN_PATH,
    MockRequest,
    MockResponse,
    _json_response,
    _method_not_allowed,
    _OAuthError,
    _Params,
    _reason,
    _required,
    _single,
)
from .oidc import DISCOVERY_PATH, JWKS_PATH, discovery_document

#: The endpoints a :class:`~.faults.Fault` and :attr:`MockPagero.counts` name, by path.
_ENDPOINTS = {
    AUTHORIZE_PATH: "authorize",
    TOKEN_PATH: "token",
    REVOKE_PATH: "revoke",
    API_PREFIX: "api",
    JWKS_PATH: "jwks",
    DISCOVERY_PATH: "discovery",
}
_LIFETIMES = ("expires_in", "code_lifetime", "refresh_token_lifetime")
_DOCUMENTS: tuple[dict[str, str], ...] = (
    {"number": "INV-1001", "amount": "1250.00", "currency": "SEK", "status": "delivered"},
    {"number": "INV-1002", "amount": "99.90", "currency": "EUR", "status": "pending"},
    {"number": "INV-1003", "amount": "18400.00", "currency": "SEK", "status": "paid"},
)


def _endpoint(path: str) -> str | None:
    return _ENDPOINTS.get(API_PREFIX if path.startswith(API_PREFIX + "/") else path)


class MockPagero(OAuthEndpoints):
    """The in-memory server. Thread-safe: all state is guarded by :attr:`lock`.

    Tests read (and may write) :attr:`counts` (a :class:`collections.Counter`):

    - ``"authorize"``: login form submissions (approve or deny);
    - ``"authorization_code"`` / ``"refresh_token"``: every token request of that grant type,
      successful or not, faulted or not;
    - ``"refresh_token_failed"``: refresh requests that got no 2xx answer (rejected, faulted
      or dropped);
    - ``"revoke"``: revocation requests; ``"api"``: API requests;
    - ``"held"``: requests a ``Fault(hold=True)`` held (:meth:`~.state.MockPageroState.wait_held`).

    :attr:`issued_refresh_tokens` lists every refresh token ever issued, in order;
    :attr:`expires_in` (the access token lifetime) may be changed at any time. The constructor
    and the public helpers are :class:`~.state.MockPageroState`'s.
    """

    def handle(self, request: MockRequest) -> MockResponse:
        """Answer one request (thread-safe)."""
        route = _endpoint(request.path)
        # Of the authorization endpoint, faults and counters see only the form post.
        endpoint = None if route == "authorize" and request.method != "POST" else route
        grant_type = _single(request.form, "grant_type") if endpoint == "token" else None
        count_key = endpoint
        if endpoint == "token":
            token_grants = ("authorization_code", "refresh_token")
            count_key = grant_type if grant_type in token_grants else None
        with self.lock:
            self._last_base_url = request.base_url
            if count_key is not None:
                self.counts[count_key] += 1
            fault = self._take_fault(endpoint, grant_type)
        response = self._faulted(request, route, fault)
        if count_key == "refresh_token" and (
            response.drop_connection or not 200 <= response.status < 300
        ):
            with self.lock:
                self.counts["refresh_token_failed"] += 1
        return response

    def _faulted(
        self, request: MockRequest, route: str | None, fault: Fault | None
    ) -> MockResponse:
        """The answer, changed as ``fault`` says (:class:`~.faults.Fault`)."""
        if fault is None:
            return self._route(request, route, None)
        if fault.hold and not fault.process:
            self._hold()
        if fault.short_circuits and not fault.process:
            response = fault.response(fault.endpoint)
        else:
            response = self._route(request, route, fault)
            if fault.status is not None or fault.body is not None or fault.drop:
                response = fault.response(fault.endpoint)
            elif fault.short_circuits:
                response.headers.extend(fault.headers)
                response.delay = fault.delay
        if fault.fields is not None and response.status == 200:
            response = _with_fields(response, fault.fields)
        if fault.hold and fault.process:
            self._hold()
        return response

    def _take_fault(self, endpoint: str | None, grant_type: str | None) -> Fault | None:
        """Find, count down and (at zero) remove the first matching fault. Lock held."""
        for index, fault in enumerate(self.faults):
            if fault.matches(endpoint, grant_type):
                fault.times -= 1
                if fault.times <= 0:
                    del self.faults[index]
                return fault
        return None

    def _route(self, request: MockRequest, route: str | None, fault: Fault | None) -> MockResponse:
        """The endpoint's answer; a raised :class:`~.http._OAuthError` is answered here."""
        try:
            if route == "authorize" and request.method == "POST":
                return self._authorize_submit(request, fault)
            if route == "authorize":
                return self._authorize_page(request)
            if route == "token":
                return self._token(request, fault)
            if route == "revoke":
                return self._revoke(request, fault)
            if route == "api":
                return self._api(request)
            if route in ("jwks", "discovery"):
                return self._openid_document(request)
        except _OAuthError as refusal:
            return refusal.response
        path, method = request.path, request.method
        if path == "/_mock/stats" and method == "GET":
            return _json_response(200, self.stats(), _NO_STORE)
        answer = None
        if path.startswith("/_mock/") and method == "POST":
            try:
                answer = self._control(path.removeprefix("/_mock/"), request.form)
            except (ValueError, _OAuthError) as exc:
                return _json_response(400, {"error": str(exc)})
        if answer is None:
            return _json_response(404, {"error": "not_found", "path": path})
        return _json_response(200, {"ok": True, **answer})

    def _control(self, name: str, form: _Params) -> dict[str, Any] | None:
        """``POST /_mock/<name>``: what the answer adds to ``ok``, ``None`` for no such control.
        A :class:`ValueError` is a 400."""
        if name == "reset":
            self.reset()
        elif name == "release":
            self.release_held()
        elif name == "fault":
            self.add_fault(_parse_fault_form(form))
        elif name == "revoke_grant":
            return {"revoked": self.revoke_grant(_required(form, "publicid"))}
        elif name == "config":
            return self._configure(form)
        else:
            return None
        return {}

    def _configure(self, form: _Params) -> dict[str, int]:
        """``POST /_mock/config``: set any of :data:`_LIFETIMES` (positive integers, seconds);
        returns all three."""
        given = {name: value for name in _LIFETIMES if (value := _single(form, name)) is not None}
        for name, value in given.items():
            if not value.isdigit() or int(value) < 1:
                raise ValueError(f"{name} must be a positive integer")
        if not given:
            raise ValueError(f"set one of {', '.join(_LIFETIMES)}")
        with self.lock:
            for name, value in given.items():
                setattr(self, name, int(value))
            return {name: getattr(self, name) for name in _LIFETIMES}

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
