"""Opt-in retries of idempotent API requests on a busy Pagero (issue 11, part 4).

Both clients, over real sockets against the strict mock, which counts every request that
reaches it (``counts["api"]``, faults included). Token and revocation requests are never
retried: they go through ``transport``'s own session.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from django_pagero_oauth import aget_client, get_client
from django_pagero_oauth.exceptions import PageroUnavailable
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token, revoke

pytestmark = pytest.mark.django_db(transaction=True)


def call_sync(user: Any, method: str, url: str) -> int:
    return get_client(user).request(method, url).status_code


def call_async(user: Any, method: str, url: str) -> int:
    async def call() -> int:
        async with aget_client(user) as client:
            return (await client.request(method, url)).status_code

    return int(async_to_sync(call)())


CLIENTS = pytest.mark.parametrize("call", [call_sync, call_async], ids=["sync", "async"])


@pytest.fixture
def retries(settings: Any, pagero_mock: Any) -> Any:
    def configure(retries: int, retry_after_max: float | None = None) -> None:
        extra: dict[str, Any] = {"API_RETRIES": retries}
        if retry_after_max is not None:
            extra["API_RETRY_AFTER_MAX"] = retry_after_max
        settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, **extra}

    return configure


def busy(pagero_mock: Any, status: int = 503, times: int = 1, retry_after: str = "0") -> None:
    headers = [("Retry-After", retry_after)] if retry_after else []
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=status, times=times, headers=headers))


@CLIENTS
@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_a_busy_answer_to_get_is_retried(
    call, status, user, pagero_mock, pagero_token_factory, retries
):
    pagero_token_factory(user)
    retries(2)
    busy(pagero_mock, status)
    assert call(user, "GET", "v1/me") == 200
    assert pagero_mock.mock.counts["api"] == 2


@CLIENTS
def test_retries_are_off_by_default(call, user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user)
    busy(pagero_mock)
    assert call(user, "GET", "v1/me") == 503
    assert pagero_mock.mock.counts["api"] == 1


@CLIENTS
def test_at_most_api_retries_retries(call, user, pagero_mock, pagero_token_factory, retries):
    pagero_token_factory(user)
    retries(2)
    busy(pagero_mock, times=5)
    assert call(user, "GET", "v1/me") == 503  # the last answer, as it came
    assert pagero_mock.mock.counts["api"] == 3


@CLIENTS
@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "PUT", "DELETE"])
def test_other_idempotent_methods_are_retried(
    call, method, user, pagero_mock, pagero_token_factory, retries
):
    pagero_token_factory(user)
    retries(1)
    busy(pagero_mock)
    call(user, method, "v1/me")  # the mock's API answers these 200 or 405; not 503
    assert pagero_mock.mock.counts["api"] == 2


@CLIENTS
@pytest.mark.parametrize("method", ["POST", "PATCH"])
def test_unsafe_methods_are_never_retried(
    call, method, user, pagero_mock, pagero_token_factory, retries
):
    pagero_token_factory(user)
    retries(3)
    busy(pagero_mock)
    assert call(user, method, "v1/me") == 503
    assert pagero_mock.mock.counts["api"] == 1


@CLIENTS
def test_other_statuses_are_not_retried(call, user, pagero_mock, pagero_token_factory, retries):
    pagero_token_factory(user)
    retries(3)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=500))
    assert call(user, "GET", "v1/me") == 500
    assert pagero_mock.mock.counts["api"] == 1


@CLIENTS
def test_a_retry_after_beyond_the_cap_is_not_waited_for(
    call, user, pagero_mock, pagero_token_factory, retries
):
    pagero_token_factory(user)
    retries(3, retry_after_max=5)
    busy(pagero_mock, retry_after="3600")
    assert call(user, "GET", "v1/me") == 503
    assert pagero_mock.mock.counts["api"] == 1


@pytest.fixture
def waits(monkeypatch):
    """The waits of both clients between retries, recorded instead of slept through."""
    import asyncio
    import time

    recorded: list[float] = []

    async def async_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(time, "sleep", recorded.append)
    monkeypatch.setattr(asyncio, "sleep", async_sleep)
    return recorded


@CLIENTS
def test_a_retry_after_within_the_cap_is_honoured(
    call, user, pagero_mock, pagero_token_factory, retries, waits
):
    """The wait is the server's ``Retry-After`` (recorded, not slept through)."""
    pagero_token_factory(user)
    retries(1, retry_after_max=5)
    busy(pagero_mock, retry_after="4")
    assert call(user, "GET", "v1/me") == 200
    assert 4 in waits
    assert pagero_mock.mock.counts["api"] == 2


def test_the_token_endpoint_is_never_retried(
    user, pagero_mock, pagero_token_factory, retries, settings
):
    pagero_token_factory(user, expired=True)
    retries(3)
    pagero_mock.mock.add_fault(
        Fault(endpoint="token", grant_type="refresh_token", status=503, times=3)
    )
    with pytest.raises(PageroUnavailable):
        get_valid_token(user)
    assert pagero_mock.mock.counts["refresh_token"] == 1


def test_the_revocation_endpoint_is_never_retried(user, pagero_mock, pagero_token_factory, retries):
    token = pagero_token_factory(user)
    retries(3)
    get_client(user)  # a session with retries exists; transport does not use it
    pagero_mock.mock.add_fault(Fault(endpoint="revoke", status=503, times=3))
    with pytest.raises(PageroUnavailable):
        revoke(token)
    assert pagero_mock.mock.counts["revoke"] == 1


def follow_sync(user: Any, url: str) -> int:
    return get_client(user).get(url, allow_redirects=True).status_code


def follow_async(user: Any, url: str) -> int:
    async def call() -> int:
        async with aget_client(user) as client:
            return (await client.get(url, follow_redirects=True)).status_code

    return int(async_to_sync(call)())


@pytest.mark.parametrize("follow", [follow_sync, follow_async], ids=["sync", "async"])
def test_a_busy_answer_off_the_api_is_not_retried(
    follow, user, pagero_mock, pagero_token_factory, retries
):
    """Retries are for the API: a followed redirect to another server that answers 503 comes
    back to the caller after one request there, and the API is not asked again."""
    hits: list[str] = []

    class Busy(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(503)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    elsewhere = ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
    pagero_token_factory(user)
    retries(3)
    location = f"http://127.0.0.1:{elsewhere.server_address[1]}/busy"
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=302, headers=[("Location", location)]))
    try:
        assert follow(user, "v1/me") == 503
    finally:
        elsewhere.shutdown()
        elsewhere.server_close()
    assert hits == ["/busy"]
    assert pagero_mock.mock.counts["api"] == 1


def test_an_async_stream_is_retried_too(user, pagero_mock, pagero_token_factory, retries):
    pagero_token_factory(user)
    retries(1)
    busy(pagero_mock)

    async def call() -> tuple[int, bytes]:
        async with aget_client(user) as client, client.stream("GET", "v1/me") as response:
            return response.status_code, await response.aread()

    status, body = async_to_sync(call)()
    assert status == 200 and b"demo-company" in body
    assert pagero_mock.mock.counts["api"] == 2


@CLIENTS
def test_the_back_off_is_capped_as_documented(
    call, user, pagero_mock, pagero_token_factory, retries, waits
):
    """Without ``Retry-After``: no wait before the first retry, then 1, 2, 4 s, at most 8 s
    (recorded, not slept through)."""
    pagero_token_factory(user)
    retries(7)
    busy(pagero_mock, times=7, retry_after="")
    assert call(user, "GET", "v1/me") == 200
    assert waits == [0, 1, 2, 4, 8, 8, 8]
    assert pagero_mock.mock.counts["api"] == 8
