"""The mock as one application: :class:`MockPagero` routes each request to its endpoint.

:meth:`MockPagero.handle` is the one entry point of every adapter (the threaded server in
:mod:`.server`, :meth:`MockPagero.wsgi_app` below, the Django view in
:mod:`django_pagero_oauth.testing.views`): it counts the request, takes the first matching
:class:`~.faults.Fault` and applies it (instead of, or on top of, the real answer), and
routes to the endpoints, mixins over the shared state of :mod:`.state`:
:mod:`.authorization`, :mod:`.token_endpoint` and :mod:`.resources`.

The ``/_mock/...`` control endpoints (stats, reset, config, faults, release, revoke_grant) are
answered here as well, so they exist only where a mock is served on purpose: a test's :class:`~.server.MockPageroServer`,
the CLI, or ``django_pagero_oauth.testing.urls`` mounted in a project, whose view answers 404
unless ``DEBUG`` or ``ALLOW_MOCK_SERVER`` is set. The app's own URLconf never includes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from .authorization import AuthorizationEndpoint
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
    _oauth_405,
    _reason,
    _single,
)
from .oidc import DISCOVERY_PATH, JWKS_PATH
from .resources import ResourceEndpoints
from .token_endpoint import TokenEndpoints


class MockPagero(AuthorizationEndpoint, TokenEndpoints, ResourceEndpoints):
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
        if fault is not None and fault.hold and not fault.process:
            self._hold()
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
        if fault is not None and fault.hold and fault.process:
            self._hold()
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
            return self._revoke(request, fault) if method == "POST" else _oauth_405()
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
        if path == "/_mock/release" and method == "POST":
            self.release_held()
            return _json_response(200, {"ok": True})
        if path == "/_mock/revoke_grant" and method == "POST":
            return self._revoke_grant_from_form(request)
        return _json_response(404, {"error": "not_found", "path": path})

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
            fault = _parse_fault_form(request.form)
        except ValueError as exc:
            return _json_response(400, {"error": str(exc)})
        self.add_fault(fault)
        return _json_response(200, {"ok": True})

    def _revoke_grant_from_form(self, request: MockRequest) -> MockResponse:
        """``POST /_mock/revoke_grant`` with ``publicid``: :meth:`revoke_grant` over HTTP."""
        publicid = _single(request.form, "publicid")
        if not publicid:
            return _json_response(400, {"error": "publicid is required"})
        return _json_response(200, {"ok": True, "revoked": self.revoke_grant(publicid)})

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
