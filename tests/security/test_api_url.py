"""The bearer token goes to ``API_BASE_URL`` and nowhere else, whatever URL a site passes to
``get_client(user).get(url)`` (issue 9, part 1) or ``aget_client(user).get(url)`` (issue 11,
part 3): every test that requests runs for both clients.

Sites pass URLs that came from elsewhere: a ``next`` link, a document URL from an API answer,
a template. Each hostile URL of the corpus is requested for real: it must either raise a
``ValueError`` or arrive, over a real socket, at a local server acting as the API origin, under
its base path. A second local server plays the attacker and must receive nothing; a spy on
``requests``' transport adapter stops (and reports) any request to a third host before it
leaves, so that a leak to a name like ``evil.example`` fails the test instead of resolving it.

A Hypothesis property extends the corpus to arbitrary strings: ``PAGERO_CLIENT_URL_EXAMPLES``
examples for the resolver (default 300; CI: 10000), a twentieth of them over the socket.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
import requests
from asgiref.sync import async_to_sync
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from urllib3.util import parse_url

from django_pagero_oauth import aget_client, get_client
from django_pagero_oauth.client import resolve_api_url

EXAMPLES = int(os.environ.get("PAGERO_CLIENT_URL_EXAMPLES", "300"))

# --- two local servers: the API origin and the attacker -----------------------------------------


@dataclass
class Received:
    method: str
    path: str
    host: str
    authorization: str


@dataclass
class RecordingServer:
    server: ThreadingHTTPServer
    received: list[Received] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def authority(self) -> str:
        return f"127.0.0.1:{self.port}"


def _start() -> RecordingServer:
    recording: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            recording.append(
                Received(
                    self.command,
                    self.path,
                    self.headers.get("Host", ""),
                    self.headers.get("Authorization", ""),
                )
            )
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return RecordingServer(server, recording)


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[RecordingServer, RecordingServer]]:
    api, evil = _start(), _start()
    try:
        yield api, evil
    finally:
        for server in (api, evil):
            server.server.shutdown()
            server.server.server_close()


@dataclass
class Setup:
    api: RecordingServer
    evil: RecordingServer
    session: Any
    access_token: str
    #: Requests the transport spy stopped: their URL was not under the API's base URL.
    stopped: list[str]

    @property
    def base_url(self) -> str:
        return f"http://{self.api.authority}/api/"

    def fill(self, template: str) -> str:
        return template.format(
            api=self.api.authority,
            api_port=self.api.port,
            evil=self.evil.authority,
            evil_port=self.evil.port,
        )


def _under_api(url: str, api: RecordingServer) -> bool:
    parsed = parse_url(url)
    return (
        parsed.scheme == "http"
        and parsed.host == "127.0.0.1"
        and parsed.port == api.port
        and parsed.auth is None
        and (parsed.path or "").startswith("/api/")
    )


class AsyncFacade:
    """``aget_client`` behind the sync client's ``get(url, allow_redirects=..., timeout=...)``:
    each call runs in its own event loop, with a client of its own."""

    def __init__(self, user: Any, base_url: str, token: Any) -> None:
        self.args = (user, base_url, token)

    def get(self, url: str, *, allow_redirects: bool = False, timeout: float = 10) -> Any:
        user, base_url, token = self.args

        async def call() -> Any:
            async with aget_client(user, base_url=base_url, token=token) as client:
                return await client.get(url, follow_redirects=allow_redirects, timeout=timeout)

        return async_to_sync(call)()


def make_client(kind: str, user: Any, base_url: str, token: Any) -> Any:
    if kind == "async":
        return AsyncFacade(user, base_url, token)
    return get_client(user, base_url=base_url, token=token)


@pytest.fixture(params=["sync", "async"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def setup(
    servers: tuple[RecordingServer, RecordingServer],
    user: Any,
    pagero_token_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> Setup:
    api, evil = servers
    token = pagero_token_factory(user)
    stopped: list[str] = []
    original = requests.adapters.HTTPAdapter.send
    original_async = httpx.AsyncHTTPTransport.handle_async_request

    def spy(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
        if not _under_api(request.url, api):
            stopped.append(request.url)
            raise requests.ConnectionError("stopped by the test: not the API origin")
        return original(self, request, *args, **kwargs)

    async def async_spy(self: Any, request: httpx.Request) -> Any:
        if not _under_api(str(request.url), api):
            stopped.append(str(request.url))
            raise httpx.ConnectError("stopped by the test: not the API origin", request=request)
        return await original_async(self, request)

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", spy)
    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", async_spy)
    session = make_client(kind, user, f"http://{api.authority}/api", token)
    return Setup(api, evil, session, token.access_token, stopped)


def request_outcome(setup: Setup, url: str) -> str:
    """``"refused"`` (ValueError) or ``"api"`` (arrived under the API's base path, with the
    token); anything else fails the calling test."""
    setup.api.received.clear()
    setup.evil.received.clear()
    setup.stopped.clear()
    try:
        response = setup.session.get(url, timeout=5)
    except ValueError as exc:
        assert "API_BASE_URL" in str(exc), str(exc)  # a clear message, not a parser's
        outcome = "refused"
    else:
        assert response.status_code == 200
        assert len(setup.api.received) == 1, setup.api.received
        arrived = setup.api.received[0]
        assert arrived.host == setup.api.authority
        assert arrived.authorization == f"Bearer {setup.access_token}"
        assert arrived.path.startswith("/api/"), arrived.path
        # What a server that decodes %2e and %2f would make of it stays under /api/ too.
        segments = unquote(arrived.path.split("?", 1)[0]).replace("\\", "/").split("/")
        # ... and a server that strips path parameters first (Tomcat: "..;x" is "..").
        segments = [segment.split(";", 1)[0] for segment in segments]
        assert ".." not in segments and "." not in segments, arrived.path
        outcome = "api"
    assert setup.evil.received == [], f"{url!r} reached the attacker's server"
    assert setup.stopped == [], f"{url!r} went to {setup.stopped}"
    return outcome


# --- the corpus ------------------------------------------------------------------------------------

#: ``{api}``/``{evil}`` are the two servers' ``127.0.0.1:port``; ``{evil_port}`` the attacker's
#: port. Each entry may be refused or reach the API under /api/; nothing else.
HOSTILE: dict[str, str] = {
    # the issue's own: characters urlsplit strips turn the rest into //host
    "space": " //{evil}/x",
    "tab": "\t//{evil}/x",
    "slash space": "/ //{evil}/x",
    "NUL": "\x00//{evil}/x",
    "LF": "\n//{evil}/x",
    "CRLF": "\r\n//{evil}/x",
    "vertical tab": "\x0b//{evil}/x",
    "form feed": "\x0c//{evil}/x",
    "unit separator": "\x1f//{evil}/x",
    "DEL": "\x7f//{evil}/x",
    "no-break space": "\u00a0//{evil}/x",
    "ideographic space": "\u3000//{evil}/x",
    "line separator": "\u2028//{evil}/x",
    "byte order mark": "\ufeff//{evil}/x",
    "tab inside": "/\t/{evil}/x",
    "slash NUL slash": "/\x00/{evil}/x",
    "header injection": "v1/me\r\nHost: {evil}",
    # network-path references and backslashes
    "network path": "//{evil}/x",
    "three slashes": "///{evil}/x",
    "four slashes": "////{evil}/x",
    "two backslashes": "\\\\{evil}/x",
    "slash backslash": "/\\{evil}/x",
    "backslash slash": "\\/{evil}/x",
    "scheme backslashes": "http:\\\\{evil}/api/x",
    "backslash before at": "http://{evil}\\@{api}/api/x",
    "backslash after api": "http://{api}\\@{evil}/api/x",
    # absolute URLs elsewhere
    "other host": "https://evil.example/api/v1/me",
    "other port": "http://{evil}/api/x",
    "upper-case scheme elsewhere": "HTTP://{evil}/api/x",
    "scheme without slashes": "http:{evil}/api/x",
    "https instead of http": "https://{api}/api/x",
    "localhost for 127.0.0.1": "http://localhost:{api_port}/api/x",
    "trailing dot": "http://127.0.0.1.:{api_port}/api/x",
    "IPv6 loopback": "http://[::1]:{evil_port}/api/x",
    "IPv4-mapped IPv6": "http://[::ffff:127.0.0.1]:{evil_port}/api/x",
    "broken IPv6": "http://[::1/api/x",
    "two ports": "http://{api}:{evil_port}/api/x",
    "huge port": "http://127.0.0.1:99999/api/x",
    "integer host": "http://2130706433:{evil_port}/api/x",
    "hex host": "http://0x7f000001:{evil_port}/api/x",
    "short host": "http://127.1:{evil_port}/api/x",
    "percent-encoded host": "http://%31%32%37.0.0.1:{evil_port}/api/x",
    "ideographic full stops (IDNA)": "http://127\u30020\u30020\u30021:{evil_port}/api/x",
    "Cyrillic look-alike": "http://l\u043ecalhost:{evil_port}/api/x",
    "punycode": "http://xn--lcalhost-9xe:{evil_port}/api/x",
    "full-width solidus": "\uff0f\uff0f{evil}/x",
    # userinfo
    "api as userinfo": "http://{api}@{evil}/api/x",
    "userinfo on the api": "http://user:pass@{api}/api/x",
    "empty userinfo": "http://@{api}/api/x",
    "fragment hides the host": "http://{evil}#@{api}/api/x",
    "query hides the host": "http://{evil}?@{api}/api/x",
    # encoded slashes and dot-segments
    "encoded network path": "%2F%2F{evil}/x",
    "slash encoded network path": "/%2F%2F{evil}/x",
    "lower-case encoding": "%2f%2f{evil}/x",
    "encoded backslashes": "%5C%5C{evil}/x",
    "dot dot": "../x",
    "dot dot twice": "../../{evil}/x",
    "climb out from inside": "v1/../../x",
    "dot then dot dot": "./../x",
    "encoded dot dot": "%2e%2e/x",
    "upper-case encoded dot dot": "%2E%2E/%2E%2E/x",
    "half encoded dot dot": ".%2e/x",
    "encoded dot dot inside": "v1/%2e%2e/%2e%2e/x",
    "encoded slash after dot dot": "..%2F..%2Fx",
    "absolute with dot dot": "http://{api}/api/../x",
    "absolute with encoded dot dot": "http://{api}/api/%2e%2e/x",
    # dot-segments with a path parameter, which Tomcat-like servers strip before normalising
    "dot dot semicolon": "..;/x",
    "dot dot semicolon inside": "v1/..;/admin",
    "dot dot with a parameter": "v1/..;jsessionid=1/..;/x",
    "encoded dot dot semicolon": "%2e%2e;/x",
    "half encoded dot dot semicolon": ".%2E;/x",
    "dot dot encoded semicolon": "..%3b/x",
    "dot dot upper-case encoded semicolon": "v1/..%3B/x",
    "dot semicolon": "v1/.;/x",
    "trailing dot dot and ; (urljoin resolves it)": "v1/..;",
    "absolute with dot dot semicolon": "http://{api}/api/..;/x",
    "absolute with encoded dot dot semicolon": "http://{api}/api/v1/%2e%2e;x/y",
    "absolute outside the base path": "http://{api}/apix/y",
    "absolute at the root": "http://{api}/",
    "path starting with two slashes": "http://{api}//{evil}/api/x",
    # other schemes
    "javascript": "javascript:alert(1)",
    "data": "data:text/plain,x",
    "file": "file:///etc/passwd",
    "mailto": "mailto:x@{evil}",
}

#: Ordinary URLs: these must reach the API (the rule refuses nothing a site needs).
ORDINARY: dict[str, tuple[str, str]] = {
    "relative": ("v1/me", "/api/v1/me"),
    "leading slash": ("/v1/documents", "/api/v1/documents"),
    "query": (
        "v1/documents?limit=5&next=//evil.example",
        "/api/v1/documents?limit=5&next=//evil.example",
    ),
    "query only": ("?page=2", "/api/?page=2"),
    "fragment only": ("#//evil.example", "/api/"),
    "fragment": ("v1/me#top", "/api/v1/me"),
    "dot-segment that stays inside": ("v1/x/../me", "/api/v1/me"),
    "absolute under the base": ("http://{api}/api/v1/me", "/api/v1/me"),
    "upper-case scheme and host": ("HTTP://127.0.0.1:{api_port}/api/v1/me", "/api/v1/me"),
    "non-ASCII path": ("v1/documents/\u00e5\u00e4\u00f6", "/api/v1/documents/%C3%A5%C3%A4%C3%B6"),
    "colon later in the path": ("v1/a:b", "/api/v1/a:b"),
    "at sign in the path": ("v1/user@example.com", "/api/v1/user@example.com"),
}


def test_the_corpus_is_big_enough() -> None:
    assert len(HOSTILE) >= 40


@pytest.mark.parametrize("template", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_url_is_refused_or_stays_on_the_api(setup: Setup, template: str) -> None:
    request_outcome(setup, setup.fill(template))


@pytest.mark.parametrize(("template", "path"), ORDINARY.values(), ids=ORDINARY.keys())
def test_ordinary_urls_reach_the_api(setup: Setup, template: str, path: str) -> None:
    assert request_outcome(setup, setup.fill(template)) == "api"
    assert setup.api.received[0].path == setup.fill(path)


#: The entries of HOSTILE whose segment, without its ``;`` parameter, is a dot-segment.
DOT_SEGMENTS_WITH_A_PARAMETER = [
    name for name in HOSTILE if "semicolon" in name or "parameter" in name
]


@pytest.mark.parametrize("name", DOT_SEGMENTS_WITH_A_PARAMETER)
def test_a_dot_segment_with_a_parameter_is_refused(setup: Setup, name: str) -> None:
    """Not even sent to the API: a Tomcat-style server would read it as ``..``."""
    assert request_outcome(setup, setup.fill(HOSTILE[name])) == "refused"
    assert setup.api.received == []


def test_a_parameter_on_an_ordinary_segment_is_kept(setup: Setup) -> None:
    assert request_outcome(setup, "v1/documents;version=2/..x;y") == "api"
    assert setup.api.received[0].path == "/api/v1/documents;version=2/..x;y"


def test_the_issues_examples_are_refused_with_a_clear_message(setup: Setup) -> None:
    for url in (
        " //evil.example/x",
        "\t//evil.example/x",
        "/ //evil.example/x",
        "\x00//evil.example/x",
    ):
        with pytest.raises(ValueError, match="only to URLs under API_BASE_URL: the URL contains"):
            setup.session.get(url)
    assert setup.stopped == [] and setup.evil.received == []


def test_a_redirect_is_checked_again_and_off_the_api_loses_the_token(
    servers: tuple[RecordingServer, RecordingServer],
    user: Any,
    pagero_token_factory: Any,
    kind: str,
) -> None:
    """Redirects are off by default; followed on request, each hop is checked again."""
    _, evil = servers
    evil.received.clear()
    token = pagero_token_factory(user)
    hops = {
        "/api/away": f"http://{evil.authority}/api/x",
        "/api/home": "/api/v1/me",
        "/api/out": "/elsewhere",  # same origin, outside the base path
    }
    arrived: list[tuple[str, str]] = []

    class Redirecting(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            arrived.append((self.path, self.headers.get("Authorization", "")))
            self.send_response(302 if self.path in hops else 200)
            if self.path in hops:
                self.send_header("Location", hops[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}/api/"
        session = make_client(kind, user, base, token)
        assert session.get("away").status_code == 302  # not followed by default
        assert evil.received == []
        assert session.get("away", allow_redirects=True).status_code == 200
        assert session.get("home", allow_redirects=True).status_code == 200
        assert session.get("out", allow_redirects=True).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
    bearer = f"Bearer {token.access_token}"
    assert [received.authorization for received in evil.received] == [""]
    assert arrived == [
        ("/api/away", bearer),
        ("/api/away", bearer),
        ("/api/home", bearer),
        ("/api/v1/me", bearer),  # a hop that stays on the API keeps it
        ("/api/out", bearer),
        ("/elsewhere", ""),  # a hop off API_BASE_URL's path does not
    ]


# --- the property -------------------------------------------------------------------------------

BASES = (
    "https://api.pageroonline.com",
    "http://127.0.0.1:8000/api/",
    "https://api.example:8443/a/b/",
)

_PIECES = st.sampled_from(
    [
        "/",
        "//",
        "\\",
        ".",
        "..",
        "%2e",
        "%2E",
        "%2f",
        "%2F",
        "%3b",
        "%5c",
        "%25",
        "%",
        "@",
        ":",
        "?",
        "#",
        ";",
        "&",
        "=",
        "http:",
        "https:",
        "HTTP:",
        "HtTpS://",
        "//evil.example",
        "evil.example",
        "api.pageroonline.com",
        "API.PAGEROONLINE.COM",
        "127.0.0.1",
        ":8000",
        ":443",
        ":80",
        ":8443",
        "[::1]",
        "[",
        "]",
        " ",
        "\t",
        "\n",
        "\x00",
        "\x7f",
        "\u3002",
        "\uff0e",
        "\uff0f",
        "xn--",
        "api",
        "a",
        "b",
        "v1",
        "me",
        "user:pass@",
        "\u00e5",
    ]
)

URLS = st.one_of(
    st.text(max_size=40),
    st.lists(st.one_of(_PIECES, st.text(max_size=3)), max_size=12).map("".join),
    st.builds(
        lambda base, tail: base + tail,
        st.sampled_from([*BASES, "http://127.0.0.1:8000/", "https://api.pageroonline.com."]),
        st.lists(st.one_of(_PIECES, st.text(max_size=3)), max_size=8).map("".join),
    ),
)


def _where_requests_sends(url: str) -> tuple[str, str | None, int | None, str | None, str]:
    """(scheme, host, port, userinfo, path) of the request ``requests`` and urllib3 would send
    for ``url`` (requests re-quotes unreserved escapes, urllib3 removes dot-segments)."""
    prepared = requests.Request("GET", url).prepare()
    parsed = parse_url(prepared.url)
    default_port = {"http": 80, "https": 443}.get(parsed.scheme or "")
    return (
        parsed.scheme or "",
        parsed.host,
        parsed.port or default_port,
        parsed.auth,
        parsed.path or "/",
    )


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(url=URLS, base=st.sampled_from(BASES))
@example(url=" //evil.example/x", base=BASES[0])
@example(url="%2e%2e/%2e%2e/x", base=BASES[1])
@example(url="v1/..;/admin", base=BASES[1])
@example(url="%2e%2e%3b/x", base=BASES[2])
@example(url="https://api.pageroonline.com//:.", base=BASES[0])
def test_any_string_is_refused_or_resolved_to_the_api_origin(url: str, base: str) -> None:
    try:
        resolved = resolve_api_url(url, base)
    except ValueError as exc:
        assert str(exc).startswith("PageroSession sends the bearer token only to URLs under")
        return
    scheme, host, port, userinfo, path = _where_requests_sends(resolved)
    assert (scheme, host, port, userinfo) == _where_requests_sends(base)[:4]
    base_path = _where_requests_sends(base)[4].rstrip("/") + "/"
    assert path.startswith(base_path), (url, resolved, path)
    assert not path.startswith("//"), (url, resolved)  # a request target read as //host
    decoded = [segment.split(";", 1)[0] for segment in unquote(path).split("/")]
    assert ".." not in decoded and "." not in decoded, (url, resolved)
    assert not any(char.isspace() or ord(char) < 0x20 for char in resolved)


@settings(
    max_examples=max(20, EXAMPLES // 20),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(template=URLS)
def test_any_string_over_the_socket_is_refused_or_reaches_the_api(
    setup: Setup, template: str
) -> None:
    url = template.replace("127.0.0.1:8000", setup.evil.authority).replace(
        "evil.example", setup.evil.authority
    )
    request_outcome(setup, url)


# --- each refusal states its own rule (pinned by ./scripts/mutation --area api_url) -------------

BASE = "https://api.example/api/"
RULES = {
    "the URL has userinfo": [
        "https://user@api.example/api/v1/me",
        "https://user:pw@api.example/api/v1/me",
        "https://@api.example/api/v1/me",
    ],
    "the path has an encoded '/' or '\\'": [
        "v1/%5C%5Cevil.example/x",
        "v1/%5c/x",
        "https://api.example/api/v1/a%5Cb",
        "v1/a%2Fb",
    ],
    "the URL is on another origin": [
        "https://api.example:444/api/v1/me",
        "http://api.example/api/v1/me",
        "https://evil.example/api/v1/me",
        "//api.example/api/v1/me",
    ],
    "the URL contains whitespace, a control character or a backslash": [
        "v1\\me",
        "v1/me?next=\\evil.example",
        "v1/me#\\",
        " v1/me",
        "v1/\x00me",
        "v1/\u200eme",
    ],
    "a network-path reference ('//host') is not a path": ["///evil.example/x", "//", "///"],
    "the path has a dot-segment": ["v1/%2e%2e/x", "v1/.%2E/x", "v1/..;/x"],
    "the path is not under the path of API_BASE_URL": ["https://api.example/apix/v1"],
    "the path starts with '//'": ["https://api.example//evil.example/x"],
}


@pytest.mark.parametrize(
    ("rule", "url"), [(rule, url) for rule, urls in RULES.items() for url in urls]
)
def test_each_refusal_names_its_rule(rule: str, url: str) -> None:
    """Refused for the documented reason, not by a later check that happens to catch it."""
    base = "https://api.example/" if "'//'" in rule else BASE
    with pytest.raises(ValueError, match=f"under API_BASE_URL: {re.escape(rule)}"):
        resolve_api_url(url, base)


def test_the_same_origin_with_default_port_and_case_is_the_api() -> None:
    assert resolve_api_url("HTTPS://API.EXAMPLE:443/api/v1/me", BASE) == (
        "https://api.example/api/v1/me"
    )
    assert resolve_api_url("http://h:80/api/x", "http://h/api") == "http://h/api/x"
    assert resolve_api_url("v1/me?a=1#frag", "https://h:8443/api") == "https://h:8443/api/v1/me?a=1"


@pytest.mark.parametrize("url", [b"v1/me", None, 1, ["v1/me"]])
def test_a_url_that_is_not_a_str_is_a_type_error(url: Any) -> None:
    with pytest.raises(TypeError, match="the URL must be a str"):
        resolve_api_url(url, BASE)


@pytest.mark.parametrize(
    "base",
    ["/api/", "api.example/api", "ftp://api.example/api/", "https:///api/", "", "https://"],
)
def test_a_base_url_that_is_not_absolute_http_is_refused(base: str) -> None:
    with pytest.raises(ValueError, match="API_BASE_URL must be an absolute http\\(s\\) URL"):
        resolve_api_url("v1/me", base)


def test_a_base_url_without_a_trailing_slash_is_its_directory() -> None:
    assert resolve_api_url("v1/me", "https://api.example/api") == "https://api.example/api/v1/me"
    with pytest.raises(ValueError, match="not under the path"):
        resolve_api_url("https://api.example/apix", "https://api.example/api")


@pytest.mark.parametrize("api_host", ["api.example", "localhost", "mutant"])
@pytest.mark.parametrize("url", ["https:///api/v1/me", "https:/api/v1/me", "https://:443/api/x"])
def test_a_url_with_a_scheme_and_no_host_is_another_origin(api_host: str, url: str) -> None:
    """Whatever the API's host is called: a missing host is no host name."""
    with pytest.raises(ValueError, match="the URL is on another origin"):
        resolve_api_url(url, f"https://{api_host}/api/")


def test_an_absolute_url_without_a_path_is_the_root() -> None:
    base = "https://api.example"
    assert resolve_api_url("https://api.example", base) == "https://api.example/"
    assert resolve_api_url("https://api.example?x=1", base) == "https://api.example/?x=1"
