"""What the mock speaks: its URL paths, one request and one answer, and the answers it builds.

:class:`MockRequest` and :class:`MockResponse` are independent of any server framework: the
threaded server (:mod:`.server`), the WSGI app (:meth:`.app.MockPagero.wsgi_app`) and the
Django view (:mod:`django_pagero_oauth.testing.views`) convert to and from them. An endpoint
refuses a request by raising :class:`_OAuthError` (RFC 6749 5.2); the HTML error page is never
a redirect. Standard library only.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from http.client import responses
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

AUTHORIZE_PATH = "/oauth/v2/oauth-authorize"
TOKEN_PATH = "/oauth/v2/oauth-token"
REVOKE_PATH = "/oauth/v2/oauth-revoke"
API_PREFIX = "/api"
# The OpenID Connect paths (JWKS_PATH, DISCOVERY_PATH) are defined with the keys, in .oidc.

FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
_JSON = "application/json"
_HTML = "text/html; charset=utf-8"
_NO_STORE = [("Cache-Control", "no-store"), ("Pragma", "no-cache")]
_Headers = Sequence[tuple[str, str]]
#: Query or form parameters: every value of each name, in order.
_Params = dict[str, list[str]]


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _single(params: _Params, name: str) -> str | None:
    """The first value of ``name`` (repetition is checked separately)."""
    values = params.get(name)
    return values[0] if values else None


def _required(params: _Params, name: str) -> str:
    value = _single(params, name)
    if not value:
        raise _OAuthError("invalid_request", f"The {name} parameter is missing.")
    return value


def _refuse_repeated(params: _Params) -> None:
    """RFC 6749 3.1, 3.2: a parameter is sent at most once."""
    repeated = sorted(name for name, values in params.items() if len(values) > 1)
    if repeated:
        raise _OAuthError("invalid_request", f"Repeated parameter: {repeated[0]}.")


@dataclass
class MockRequest:
    """One HTTP request as the mock sees it, independent of any server framework."""

    method: str
    #: Path relative to the mock's mount point, e.g. ``"/oauth/v2/oauth-token"``.
    path: str
    query: _Params
    #: Parsed body when it is ``application/x-www-form-urlencoded``, else ``{}``.
    form: _Params
    #: Header names are normalised to lower case.
    headers: dict[str, str]
    #: Absolute URL of the mount point, without a trailing slash.
    base_url: str
    body: bytes = b""

    def __post_init__(self) -> None:
        self.method = self.method.upper()
        self.headers = {name.lower(): value for name, value in self.headers.items()}
        self.base_url = self.base_url.rstrip("/")

    @classmethod
    def build(
        cls,
        *,
        method: str,
        target: str,
        headers: Iterable[tuple[str, str]] | dict[str, str],
        body: bytes,
        base_url: str,
    ) -> MockRequest:
        """Build from raw parts: ``target`` is the path (relative to the mount) and query."""
        items = headers.items() if isinstance(headers, dict) else headers
        header_map: dict[str, str] = {}
        for name, value in items:
            key = name.lower()
            header_map[key] = f"{header_map[key]}, {value}" if key in header_map else value
        split = urlsplit(target)
        form: _Params = {}
        if _media_type(header_map.get("content-type")) == FORM_CONTENT_TYPE:
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return cls(
            method=method,
            path=split.path or "/",
            query=parse_qs(split.query, keep_blank_values=True),
            form=form,
            headers=header_map,
            base_url=base_url,
            body=body,
        )

    @classmethod
    def from_wsgi(cls, environ: dict[str, Any]) -> MockRequest:
        """Build from a WSGI environ; the mount point is ``SCRIPT_NAME`` (PEP 3333)."""
        from wsgiref.util import application_uri

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
        headers = [
            (key[5:].replace("_", "-"), str(value))
            for key, value in environ.items()
            if key.startswith("HTTP_")
        ]
        if environ.get("CONTENT_TYPE"):
            headers.append(("Content-Type", environ["CONTENT_TYPE"]))
        path = environ.get("PATH_INFO", "") or "/"
        query = environ.get("QUERY_STRING", "")
        return cls.build(
            method=environ.get("REQUEST_METHOD", "GET"),
            target=f"{path}?{query}" if query else path,
            headers=headers,
            body=body,
            base_url=application_uri(environ),
        )


@dataclass
class MockResponse:
    """What the mock answers; an HTTP adapter turns it into bytes on a socket."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    #: The HTTP adapter closes the connection without answering.
    drop_connection: bool = False
    #: Seconds the adapter waits before answering (or before dropping).
    delay: float = 0.0

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def _json_response(status: int, data: Any, headers: _Headers = ()) -> MockResponse:
    body = json.dumps(data, separators=(",", ":")).encode()
    return MockResponse(status, [("Content-Type", _JSON), *headers], body)


class _OAuthError(Exception):
    """An RFC 6749 5.2 error (also RFC 7009 and RFC 6750): raised to refuse a request, answered
    by :meth:`.app.MockPagero.handle` (the authorization endpoint redirects it back instead)."""

    def __init__(
        self, error: str, description: str, status: int = 400, headers: _Headers = ()
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        data = {"error": error, "error_description": description}
        self.response = _json_response(status, data, [*_NO_STORE, *headers])


def _invalid_request(description: str) -> _OAuthError:
    return _OAuthError("invalid_request", description)


def _invalid_client(description: str) -> _OAuthError:
    """RFC 6749 5.2: ``invalid_client`` is a 401 with a ``WWW-Authenticate`` challenge."""
    challenge = ("WWW-Authenticate", 'Basic realm="mock-pagero"')
    return _OAuthError("invalid_client", description, 401, [challenge])


#: The mock's pages look like the example project's (its ``demo.css``), inline: the mock
#: serves no static files, mounted in a Django project or on its own.
_STYLE = """
:root { --accent: #0b5cab; --muted: #5b6470; --bad: #a12a2a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2328; background: #f6f8fa; }
header { display: flex; gap: .8rem; align-items: baseline; padding: .8rem 1.5rem;
  background: #fff; border-bottom: 1px solid var(--line); }
header .brand { font-weight: 600; }
header .note { color: var(--muted); font-size: .9rem; }
main { max-width: 40rem; margin: 0 auto; padding: 1.5rem; }
h1 { font-size: 1.6rem; margin: 0 0 1rem; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px;
  padding: 1rem 1.5rem; }
code { font-size: .9em; overflow-wrap: anywhere; }
label { display: block; margin: 1rem 0; color: var(--muted); }
input[type=text] { display: block; width: 100%; margin-top: .3rem; padding: .45rem .6rem;
  border: 1px solid var(--line); border-radius: 6px; font: inherit; color: #1f2328; }
button { padding: .45rem 1rem; margin-right: .5rem; border: 1px solid var(--accent);
  border-radius: 6px; background: var(--accent); color: #fff; font: inherit; cursor: pointer; }
button[value=deny] { background: #fff; color: var(--bad); border-color: var(--bad); }
.error { color: var(--bad); }
"""


def _html_page(status: int, title: str, body_html: str) -> MockResponse:
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n"
        '<header><span class="brand">Mock Pagero Online</span>'
        '<span class="note">a test server: it hands out tokens to anyone</span></header>\n'
        f'<main>\n<h1>{html.escape(title)}</h1>\n<div class="card">\n{body_html}\n</div>\n'
        "</main>\n</body></html>\n"
    )
    return MockResponse(status, [("Content-Type", _HTML), *_NO_STORE], page.encode())


def _html_error(description: str) -> MockResponse:
    """RFC 6749 4.1.2.1: a bad client or redirect URI is shown to the user, never redirected."""
    return _html_page(
        400,
        "Mock Pagero: invalid authorization request",
        f'<p class="error">{html.escape(description)}</p>',
    )


def _redirect(uri: str, params: dict[str, str]) -> MockResponse:
    """302 to ``uri`` with ``params`` added, keeping an existing query (RFC 6749 3.1.2)."""
    split = urlsplit(uri)
    extra = urlencode(params)
    query = f"{split.query}&{extra}" if split.query else extra
    location = urlunsplit((split.scheme, split.netloc, split.path, query, ""))
    return MockResponse(302, [("Location", location), *_NO_STORE], b"")


def _method_not_allowed(allow: str) -> MockResponse:
    return _json_response(405, {"error": "method_not_allowed"}, [("Allow", allow)])


def _reason(status: int) -> str:
    return responses.get(status, "Unknown")
