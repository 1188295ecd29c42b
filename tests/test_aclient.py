"""``aget_client(user)``: the async API client, over real sockets against the strict mock.

The URL rule is tested with the hostile corpus in tests/security/test_api_url.py and the error
reports in tests/security/test_error_reports.py (both run for the sync and the async client);
the retries in tests/test_api_retries.py.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async

from django_pagero_oauth import AsyncPageroClient, aget_client, oauth
from django_pagero_oauth.aclient import AsyncBearerAuth
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.transport import retry_after_seconds

pytestmark = pytest.mark.django_db(transaction=True)


def run(coroutine_function: Any, *args: Any, **kwargs: Any) -> Any:
    return async_to_sync(coroutine_function)(*args, **kwargs)


async def _get(user: Any, url: str = "v1/me", **kwargs: Any) -> tuple[httpx.Response, Any]:
    async with aget_client(user, **kwargs) as client:
        response = await client.get(url)
        await response.aread()
        return response, client


def test_a_valid_token_reaches_the_api_as_a_bearer_header(user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user)
    response, _client = run(_get, user)
    assert response.status_code == 200  # the strict mock checked the bearer token
    assert response.json()["publicid"] == "demo-company"
    assert pagero_mock.mock.counts["refresh_token"] == 0
    assert "authorization" not in response.request.headers  # only on the wire, while sent


def test_an_expired_token_is_refreshed_once(user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user, expired=True)
    response, _client = run(_get, user)
    assert response.status_code == 200
    assert pagero_mock.mock.counts["refresh_token"] == 1


def test_a_given_token_is_used_without_a_query(
    user, pagero_mock, pagero_token_factory, django_assert_num_queries
):
    token = pagero_token_factory(user)
    with django_assert_num_queries(0):
        response, _client = run(_get, user, token=token)
    assert response.status_code == 200


def test_a_token_of_another_user_is_refused(user, other_user, pagero_mock, pagero_token_factory):
    token = pagero_token_factory(other_user)
    with pytest.raises(ValueError, match="belongs to another user"):
        aget_client(user, token=token)


def test_a_401_forces_one_refresh_and_one_retry(
    user, pagero_mock, pagero_token_factory, monkeypatch
):
    token = pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401))
    threads: list[int] = []
    real = oauth.refresh_access_token

    def recording(refresh_token: str) -> Any:
        threads.append(threading.get_ident())
        return real(refresh_token)

    monkeypatch.setattr(oauth, "refresh_access_token", recording)

    async def call() -> tuple[int, int]:
        shared = await sync_to_async(threading.get_ident, thread_sensitive=True)()
        response, _client = await _get(user, token=token)
        return response.status_code, shared

    status, shared_thread = run(call)
    assert status == 200
    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert pagero_mock.mock.counts["api"] == 2
    assert threads and threads[0] != shared_thread  # off Django's shared sync thread
    assert PageroToken.objects.get(user=user).access_token != token.access_token


def test_a_401_after_a_forced_refresh_goes_back_to_the_caller(
    user, pagero_mock, pagero_token_factory
):
    pagero_token_factory(user)
    pagero_mock.mock.add_fault(Fault(endpoint="api", status=401, times=4))

    async def calls() -> list[int]:
        async with aget_client(user) as client:
            first = await client.get("v1/me")
            second = await client.get("v1/me")
        return [first.status_code, second.status_code]

    assert run(calls) == [401, 401]
    # The first call's 401 forced a refresh; the refreshed token's 401s did not.
    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert pagero_mock.mock.counts["api"] == 3


def test_the_configured_timeout_applies(user, pagero_mock, pagero_token_factory, settings):
    token = pagero_token_factory(user)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TIMEOUT": 0.2}
    pagero_mock.mock.add_fault(Fault(endpoint="api", delay=5))

    async def call(**kwargs: Any) -> Any:
        async with aget_client(user, token=token) as client:
            request = client.build_request("GET", "v1/me", **kwargs)
            return request.extensions["timeout"]

    assert run(call) == {"connect": 0.2, "read": 0.2, "write": 0.2, "pool": 0.2}
    assert run(call, timeout=None)["read"] == 0.2  # never "wait forever"
    assert run(call, timeout=3)["read"] == 3
    with pytest.raises(httpx.ReadTimeout):
        run(_get, user, token=token)


def test_no_token_in_any_repr(user, pagero_mock, pagero_token_factory):
    token = pagero_token_factory(user)
    _response, client = run(_get, user, token=token)
    auth = AsyncBearerAuth(token.access_token)
    for text in (
        repr(client),
        repr(auth),
        str(client),
        repr(client.rules.forced_refresh),
        repr(client.rules),
    ):
        assert token.access_token not in text
        assert token.refresh_token not in text
    assert isinstance(client, AsyncPageroClient)


def test_auth_is_refused(user, pagero_mock, pagero_token_factory):
    token = pagero_token_factory(user)

    async def call() -> None:
        async with aget_client(user, token=token) as client:
            await client.get("v1/me", auth=("user", "password"))

    with pytest.raises(TypeError, match="sets the Authorization header itself"):
        run(call)
    assert pagero_mock.mock.counts["api"] == 0


def test_a_request_built_elsewhere_is_checked_when_sent(user, pagero_mock, pagero_token_factory):
    """``send()`` checks the URL that goes on the wire, also for a request it did not build."""
    token = pagero_token_factory(user)

    async def call() -> None:
        async with aget_client(user, token=token) as client:
            await client.send(httpx.Request("GET", f"{pagero_mock.url}/elsewhere"))

    with pytest.raises(ValueError, match="API_BASE_URL"):
        run(call)
    assert pagero_mock.mock.counts["api"] == 0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("0", 0.0), ("7", 7.0), (" 12 ", 12.0), ("", None), (None, None), ("soon", None),
     ("-1", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)  # fmt: skip
def test_retry_after_values(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value) == seconds


def test_without_httpx_the_import_error_names_the_extra(monkeypatch) -> None:
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "httpx", None)
    monkeypatch.delitem(sys.modules, "django_pagero_oauth.aclient")
    with pytest.raises(ImportError, match=r"django-pagero-oauth\[async\]"):
        importlib.import_module("django_pagero_oauth.aclient")
    monkeypatch.undo()
    assert importlib.import_module("django_pagero_oauth.aclient").aget_client is aget_client


def test_a_lazy_token_holding_none_means_no_token(user, pagero_mock, pagero_token_factory):
    """The middleware's lazy ``request.pagero_token``, already evaluated to None (no usable
    token), means "no token": the client fetches one, or refuses, never an AttributeError."""
    from django.utils.functional import SimpleLazyObject

    lazy = SimpleLazyObject(lambda: None)
    bool(lazy)  # evaluated, as after `if request.pagero_token:`
    stored = pagero_token_factory(user, publicid="acme")

    async def call() -> httpx.Response:
        async with aget_client(user, token=lazy) as client:
            return await client.get("v1/me")

    response = run(call)
    assert response.json()["publicid"] == "acme"
    assert pagero_mock.mock.is_access_token_valid(stored.access_token)


def test_an_unevaluated_lazy_token_is_refused_clearly(user, pagero_mock, pagero_token_factory):
    """Evaluating the lazy object would query the database from the event loop."""
    from django.utils.functional import SimpleLazyObject

    with pytest.raises(TypeError, match="apagero_token"):
        aget_client(user, token=SimpleLazyObject(lambda: None))
