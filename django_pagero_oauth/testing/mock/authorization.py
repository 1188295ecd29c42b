"""The authorization endpoint (RFC 6749 4.1.1, 4.1.2): the login page and its form.

Validates the request strictly (single parameters, registered ``redirect_uri``, S256 PKCE,
``nonce`` with ``openid``); a bad client or redirect URI gets an error page and is never
redirected to (4.1.2.1); approving issues a single-use code bound to the client, the
``redirect_uri``, the PKCE challenge and the nonce, and the answer carries ``iss`` (RFC 9207).
"""

from __future__ import annotations

import hmac
import html
import re
import secrets
from urllib.parse import urlsplit

from .faults import Fault
from .http import (
    AUTHORIZE_PATH,
    FORM_CONTENT_TYPE,
    MockRequest,
    MockResponse,
    _html_error,
    _html_page,
    _invalid_request,
    _media_type,
    _method_not_allowed,
    _OAuthError,
    _redirect,
    _refuse_repeated,
    _single,
)
from .state import MockPageroState, _Code, _Grant

# RFC 7636 4.2: an S256 challenge is 32 bytes, base64url-encoded: 43 characters.
_S256_CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43}")
# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by single spaces.
_SCOPE_RE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")
#: The login form's own fields, not parameters of the authorization request.
_FORM_FIELDS = ("action", "publicid")


class AuthorizationEndpoint(MockPageroState):
    """``GET`` and ``POST`` of :data:`~.http.AUTHORIZE_PATH`; mixed into :class:`.app.MockPagero`."""

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

    def _validate_authorize(self, params: dict[str, list[str]], publicid: str) -> _Code:
        """The code this request would get; raises :class:`~.http._OAuthError` if invalid."""
        _refuse_repeated(params)
        response_type = _single(params, "response_type")
        if response_type is None:
            raise _invalid_request("The response_type parameter is missing.")
        if response_type != "code":
            raise _OAuthError("unsupported_response_type", "Only response_type=code is supported.")
        scope = _single(params, "scope")
        if scope is None:
            scope = "all"
        elif not _SCOPE_RE.fullmatch(scope):
            raise _OAuthError("invalid_scope", "The scope is empty or malformed.")
        nonce = _single(params, "nonce")
        if "openid" in scope.split(" ") and not nonce:
            # Optional in OpenID Connect's code flow, but this client always sends one.
            raise _invalid_request("openid needs a nonce (replay protection).")
        if _single(params, "prompt") not in (None, "login"):
            raise _invalid_request("Only prompt=login is supported.")
        challenge = _single(params, "code_challenge")
        method = _single(params, "code_challenge_method")
        if challenge is None and method is not None:
            raise _invalid_request("code_challenge_method without a challenge.")
        if challenge is None and self.require_pkce:
            raise _invalid_request("code_challenge is required (PKCE).")
        if challenge is not None and method is None:
            raise _invalid_request("code_challenge_method is required (plain is refused).")
        if challenge is not None and method != "S256":
            raise _invalid_request("Only code_challenge_method=S256 is supported.")
        if challenge is not None and not _S256_CHALLENGE_RE.fullmatch(challenge):
            raise _invalid_request("An S256 code_challenge is 43 base64url characters.")
        return _Code(
            grant=_Grant(_single(params, "client_id") or "", publicid, scope),
            redirect_uri=_single(params, "redirect_uri") or "",
            code_challenge=challenge,
            nonce=nonce,
            expires_at=self.clock() + self.code_lifetime,
        )

    def _redirect_back(
        self,
        request: MockRequest,
        params: dict[str, list[str]],
        out: dict[str, str],
        fault: Fault | None = None,
    ) -> MockResponse:
        """To the client's ``redirect_uri`` with ``out``, its ``state`` and ``iss`` (RFC 9207 2),
        which a ``Fault(iss=...)`` replaces or (``OMIT``) leaves out."""
        state = params.get("state", [])
        if len(state) == 1:
            out["state"] = state[0]
        iss = self._issuer(request) if fault is None or fault.iss is ... else fault.iss
        if isinstance(iss, str):
            out["iss"] = iss
        return _redirect(_single(params, "redirect_uri") or "", out)

    def _checked_authorize(
        self, request: MockRequest, params: dict[str, list[str]], publicid: str = "demo-company"
    ) -> _Code | MockResponse:
        """The validated authorization request, or the answer to an invalid one.

        A bad client or redirect URI gets an error page: never redirect to an unvalidated URI
        (RFC 6749 4.1.2.1); any other problem goes back to the client as an OAuth error.
        """
        problem = self._validate_client_and_redirect(params)
        if problem is not None:
            return _html_error(problem)
        try:
            return self._validate_authorize(params, publicid)
        except _OAuthError as exc:
            out = {"error": exc.error, "error_description": exc.description}
            return self._redirect_back(request, params, out)

    def _authorize_page(self, request: MockRequest) -> MockResponse:
        """GET: validate, then show the login/consent form (RFC 6749 4.1.1)."""
        if request.method not in ("GET", "HEAD"):
            return _method_not_allowed("GET, POST")
        params = request.query
        valid = self._checked_authorize(request, params)
        if isinstance(valid, MockResponse):
            return valid
        hidden = "\n".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(value)}">'
            for name, values in params.items()
            if name not in _FORM_FIELDS
            for value in values
        )
        action = urlsplit(request.base_url).path + AUTHORIZE_PATH
        body = (
            f"<p>Application <code>{html.escape(valid.grant.client_id)}</code> asks for access "
            f"(scope <code>{html.escape(valid.grant.scope)}</code>) and will return to "
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
        params = {k: v for k, v in request.form.items() if k not in _FORM_FIELDS}
        publicid = _single(request.form, "publicid") or "demo-company"
        valid = self._checked_authorize(request, params, publicid)
        if isinstance(valid, MockResponse):
            return valid
        action = _single(request.form, "action")
        if action == "approve":
            code = secrets.token_urlsafe(32)
            with self.lock:
                self._codes[code] = valid
            return self._redirect_back(request, params, {"code": code}, fault)
        if action == "deny":
            out = {"error": "access_denied", "error_description": "The user denied the request."}
            return self._redirect_back(request, params, out, fault)
        return _html_error("The action must be approve or deny.")
