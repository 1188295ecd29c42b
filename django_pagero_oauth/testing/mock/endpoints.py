"""The authorization server: the authorization, token and revocation endpoints.

The authorization request (RFC 6749 4.1.1) is validated strictly (single parameters,
registered ``redirect_uri``, S256 PKCE, ``nonce`` with ``openid``); a bad client or redirect
URI gets an error page and is never redirected to (4.1.2.1); approving issues a single-use
code bound to the client, the ``redirect_uri``, the PKCE challenge and the nonce, and the
answer carries ``iss`` (RFC 9207).

Client authentication is RFC 6749 2.3.1 to the letter (form-urlencoded before base64 in HTTP
Basic, one method per request, constant-time comparison). An authorization code is spent by
any attempt, and a second use revokes what it issued (4.1.2); a refresh token's
check-and-consume is atomic, so of two concurrent refreshes with one token exactly one wins.
Revocation is RFC 7009.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import re
import secrets
from dataclasses import replace
from typing import Any
from urllib.parse import unquote_plus, urlsplit

from .faults import Fault
from .http import (
    _NO_STORE,
    AUTHORIZE_PATH,
    FORM_CONTENT_TYPE,
    MockRequest,
    MockResponse,
    _html_error,
    _html_page,
    _invalid_client,
    _invalid_request,
    _json_response,
    _media_type,
    _method_not_allowed,
    _OAuthError,
    _Params,
    _redirect,
    _refuse_repeated,
    _required,
    _single,
)
from .oidc import _b64url
from .state import MockPageroState, _Code, _Grant

# RFC 7636 4.2: an S256 challenge is 32 bytes, base64url-encoded: 43 characters.
_S256_CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43}")
# RFC 6749 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), separated by single spaces.
_SCOPE_RE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+(?: [\x21\x23-\x5b\x5d-\x7e]+)*")
# RFC 7636 4.1: a code_verifier is 43 to 128 unreserved characters.
_VERIFIER_RE = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
#: The login form's own fields, not parameters of the authorization request.
_FORM_FIELDS = ("action", "publicid")


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


class OAuthEndpoints(MockPageroState):
    """:data:`~.http.AUTHORIZE_PATH`, :data:`~.http.TOKEN_PATH` and :data:`~.http.REVOKE_PATH`;
    mixed into :class:`.app.MockPagero`."""

    def _validate_client_and_redirect(self, params: _Params) -> str | None:
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

    def _validate_authorize(self, params: _Params, publicid: str) -> _Code:
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
        self, request: MockRequest, params: _Params, out: dict[str, str], fault: Fault | None = None
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
        self, request: MockRequest, params: _Params, publicid: str = "demo-company"
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
