"""Transport security (item 9): https endpoints outside DEBUG (system check
``django_pagero_oauth.E002``), and TLS certificates are always verified.

The TLS test serves the real mock behind a self-signed certificate: a client that does not
verify would happily get tokens from it; ours must refuse before sending a byte of the request.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
import requests
from django.core import checks
from django.test import Client

from django_pagero_oauth import get_client
from django_pagero_oauth.exceptions import PageroUnavailable
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import MockPagero
from django_pagero_oauth.tokens import get_valid_token, revoke

from ..tls import self_signed_certificate
from .conftest import DISCONNECT_PATH, Browser, SentRequest, backoff_passed, token_snapshot

E002 = "django_pagero_oauth.E002"
#: "Not an absolute http(s) URL": what a scheme-less or non-http URL gets instead of E002.
E012 = "django_pagero_oauth.E012"
URL_SETTINGS = ("AUTHORIZE_URL", "TOKEN_URL", "REVOKE_URL", "API_BASE_URL")


# --- the system check ------------------------------------------------------------------------


def _url_errors(settings: Any, debug: bool, **urls: str) -> list[checks.CheckMessage]:
    settings.DEBUG = debug
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, **urls}
    return [m for m in checks.run_checks() if m.id in (E002, E012)]


@pytest.mark.parametrize("key", URL_SETTINGS)
@pytest.mark.parametrize(
    "url",
    [
        "http://sso.pageroonline.com/oauth/v2/oauth-token",
        "HTTP://sso.pageroonline.com/oauth/v2/oauth-token",
        "http://sso.pageroonline.com:443/oauth/v2/oauth-token",
        "http://localhost.evil.example/oauth",
        "http://127.0.0.1.nip.io/oauth",
        "http://127.0.0.1@evil.example/oauth",
        "http://0.0.0.0:8765/oauth",
        "http://10.0.0.5/oauth",
    ],
)
def test_http_endpoint_is_e002_outside_debug(settings: Any, key: str, url: str) -> None:
    errors = _url_errors(settings, False, **{key: url})
    assert [error.id for error in errors] == [E002]
    assert key in errors[0].msg
    assert errors[0].level == checks.ERROR
    security = [m.id for m in checks.run_checks(tags=[checks.Tags.security])]
    assert E002 in security  # reported by ``check --tag security`` as well


@pytest.mark.parametrize("key", URL_SETTINGS)
@pytest.mark.parametrize(
    "url",
    [
        "//sso.pageroonline.com/oauth/v2/oauth-token",
        "sso.pageroonline.com/oauth/v2/oauth-token",
        "ftp://sso.pageroonline.com/oauth",
        "ws://sso.pageroonline.com/oauth",
        "file:///etc/passwd",
        "https:///no-host",
    ],
)
def test_endpoint_that_is_not_an_absolute_http_url_is_an_error(
    settings: Any, key: str, url: str
) -> None:
    for debug in (False, True):
        errors = _url_errors(settings, debug, **{key: url})
        assert errors, (url, debug)
        assert all(error.level == checks.ERROR and key in error.msg for error in errors)


@pytest.mark.parametrize("key", URL_SETTINGS)
def test_http_endpoint_is_allowed_with_debug(settings: Any, key: str) -> None:
    assert _url_errors(settings, True, **{key: "http://sandbox.example/x"}) == []


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8765/x", "http://localhost:8765/x", "http://[::1]:8765/x"]
)
def test_loopback_http_is_allowed_without_debug(settings: Any, url: str) -> None:
    """A deliberate exemption (a local mock, a TLS-terminating sidecar): the traffic never
    leaves the machine. SECURITY.rst says so."""
    assert _url_errors(settings, False, TOKEN_URL=url) == []


def test_default_and_https_endpoints_pass(settings: Any) -> None:
    settings.PAGERO_OAUTH = {"CLIENT_ID": "id", "CLIENT_SECRET": "secret"}
    assert _url_errors(settings, False) == []
    https = {key: f"https://sandbox.example/{key.lower()}" for key in URL_SETTINGS}
    assert _url_errors(settings, False, **https) == []


def test_the_check_is_registered_for_deploy_and_plain_check(settings: Any) -> None:
    settings.DEBUG = False
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TOKEN_URL": "http://x.example/t"}
    everything = checks.run_checks(include_deployment_checks=True)
    assert E002 in {message.id for message in everything}
    assert E002 in {message.id for message in checks.run_checks()}


# --- TLS verification is never switched off ----------------------------------------------------


def _assert_verified(sent: list[SentRequest]) -> None:
    for request in sent:
        assert request.verify is not False, request.url
        assert request.verify is True or (isinstance(request.verify, str) and request.verify)
        assert request.timeout is not None, request.url


def test_every_request_of_the_whole_lifecycle_verifies_tls_and_has_a_timeout(
    browser: Browser, user: Any, pagero_mock: Any, transport: list[SentRequest]
) -> None:
    assert browser.login().status_code == 302  # code exchange
    token = get_valid_token(user, force_refresh=True)  # refresh
    assert get_client(user).get("v1/me").status_code == 200  # API
    response = browser.client.post(DISCONNECT_PATH, {"next": "/"})  # revocation
    assert response.status_code == 302
    assert not PageroToken.objects.filter(pk=token.pk).exists()

    paths = [request.url.split("?")[0].removeprefix(pagero_mock.url) for request in transport]
    assert paths == [
        "/oauth/v2/oauth-token",
        "/oauth/v2/oauth-token",
        "/api/v1/me",
        "/oauth/v2/oauth-revoke",
    ]
    _assert_verified(transport)


def test_failure_paths_verify_tls_too(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, transport: list[SentRequest]
) -> None:
    from django_pagero_oauth.testing.mock import Fault

    token = pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=503))
    with pytest.raises(PageroUnavailable):
        get_valid_token(user)
    backoff_passed()
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401))
    assert get_client(user).get("v1/me").status_code == 200  # 401, forced refresh, retry
    pagero_mock.mock.add_fault(Fault(endpoint="revoke", status=503))
    with pytest.raises(PageroUnavailable):
        revoke(PageroToken.objects.get(pk=token.pk))
    assert len(transport) == 6
    _assert_verified(transport)


# A mock Pagero behind a self-signed certificate.


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class _TLSServer(WSGIServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # refused handshakes are the point


class SelfSignedPagero:
    def __init__(self, mock: MockPagero, url: str, cert_path: Path) -> None:
        self.mock, self.url, self.cert_path = mock, url, cert_path

    def settings(self) -> dict[str, str]:
        return self.mock.settings_for(self.url)


@pytest.fixture(scope="module")
def self_signed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SelfSignedPagero]:
    cert_path, key_path = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    mock = MockPagero()
    server = make_server(
        "127.0.0.1", 0, mock.wsgi_app, server_class=_TLSServer, handler_class=_QuietHandler
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.daemon = True
    thread.start()
    try:
        yield SelfSignedPagero(mock, f"https://127.0.0.1:{server.server_port}", cert_path)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def self_signed(self_signed_server: SelfSignedPagero, pagero_mock: Any) -> SelfSignedPagero:
    self_signed_server.mock.reset()
    return self_signed_server


def test_control_the_self_signed_server_answers_when_its_certificate_is_trusted(
    self_signed: SelfSignedPagero,
) -> None:
    """Without this, "refused" below could mean "broken server"."""
    tokens = self_signed.mock.issue_tokens()
    response = requests.post(
        self_signed.url + "/oauth/v2/oauth-token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
        auth=("mock-client-id", "mock-client-secret"),
        verify=str(self_signed.cert_path),
        timeout=5,
    )
    assert response.status_code == 200, response.text
    assert self_signed.mock.counts["refresh_token"] == 1


def test_refresh_against_a_self_signed_token_endpoint_is_refused(
    self_signed: SelfSignedPagero, settings: Any, user: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user, expired=True)
    before = token_snapshot(token.pk)
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "TOKEN_URL": self_signed.settings()["TOKEN_URL"],
    }

    with pytest.raises(PageroUnavailable):
        get_valid_token(user)

    assert self_signed.mock.counts["refresh_token"] == 0
    assert token_snapshot(token.pk) == before


def test_code_exchange_against_a_self_signed_token_endpoint_is_refused(
    self_signed: SelfSignedPagero, settings: Any, user_client: Client, pagero_mock: Any
) -> None:
    browser = Browser(user_client, pagero_mock)
    callback_url = browser.pagero_answer(browser.start_login())
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "TOKEN_URL": self_signed.settings()["TOKEN_URL"],
    }

    response = browser.callback(callback_url)

    assert response.status_code == 503
    assert self_signed.mock.counts["authorization_code"] == 0
    assert not PageroToken.objects.exists()


def test_api_call_to_a_self_signed_api_is_refused(
    self_signed: SelfSignedPagero, settings: Any, user: Any, pagero_token_factory: Any
) -> None:
    pagero_token_factory(user)
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "API_BASE_URL": self_signed.settings()["API_BASE_URL"],
    }
    with pytest.raises(requests.exceptions.SSLError):
        get_client(user).get("v1/me")
    assert self_signed.mock.counts["api"] == 0


def test_revocation_at_a_self_signed_endpoint_is_refused_and_the_token_kept(
    self_signed: SelfSignedPagero, settings: Any, user: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "REVOKE_URL": self_signed.settings()["REVOKE_URL"],
    }
    with pytest.raises(PageroUnavailable):
        revoke(token)
    assert self_signed.mock.counts["revoke"] == 0
    assert PageroToken.objects.filter(pk=token.pk).exists()
