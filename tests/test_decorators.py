"""``@pagero_token_required`` on sync and async function views, through Django's handlers."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from tests import views

Fetch = Callable[..., Any]

VIEWS = {"sync": "/protected/", "async": "/protected-async/"}


@pytest.fixture(params=["sync", "async"])
def kind(request: Any) -> str:
    return str(request.param)


@pytest.fixture
def path(kind: str) -> str:
    return VIEWS[kind]


@pytest.fixture
def fetch(kind: str, client: Any, async_client: Any) -> Fetch:
    """``fetch(method, path, **kwargs)``: the test client for sync views, the ASGI one for async."""

    def run(method: str, path: str, **kwargs: Any) -> Any:
        if kind == "sync":
            return getattr(client, method)(path, **kwargs)
        return async_to_sync(getattr(async_client, method))(path, **kwargs)

    return run


@pytest.fixture
def login(kind: str, client: Any, async_client: Any, user: Any) -> Any:
    (client if kind == "sync" else async_client).force_login(user)
    return user


def test_the_decorator_keeps_the_view_sync_or_async():
    assert iscoroutinefunction(views.protected_async)
    assert not iscoroutinefunction(views.protected)
    assert views.protected.__name__ == "protected"


def test_anonymous_goes_to_the_site_login(fetch, path, pagero_mock, db):
    response = fetch("get", path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_no_token_html_get_goes_to_the_pagero_login(fetch, path, login, pagero_mock):
    response = fetch("get", path, headers={"Accept": "text/html"})
    assert response.status_code == 302
    assert response["Location"] == f"/pagero/login/?next=%2F{path.strip('/')}%2F"


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("get", {"Accept": "application/json"}),
        ("get", {"X-Requested-With": "XMLHttpRequest"}),
        ("post", {}),
        ("delete", {"Accept": "text/html"}),
    ],
)
def test_no_token_json_or_non_get_gets_401(fetch, path, login, pagero_mock, method, headers):
    response = fetch(method, path, headers=headers)
    assert response.status_code == 401
    assert json.loads(response.content) == {
        "error": "pagero_authorization_required",
        "login_url": f"/pagero/login/?next=%2F{path.strip('/')}%2F",
    }


def test_a_dead_token_sends_the_user_to_log_in_again(
    fetch, path, login, pagero_mock, pagero_token_factory
):
    pagero_token_factory(login, expired=True, status=PageroToken.Status.REAUTHORIZATION_REQUIRED)
    response = fetch("get", path)
    assert response.status_code == 302
    assert response["Location"].startswith("/pagero/login/?next=")
    assert pagero_mock.mock.counts["refresh_token"] == 0


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_a_transient_failure_is_a_503_and_keeps_the_token(
    fetch, path, login, pagero_mock, pagero_token_factory, stored_token_state, accept
):
    stored = pagero_token_factory(login, expired=True)
    before = stored_token_state(stored)
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=503, headers=[("Retry-After", "17")]))

    response = fetch("get", path, headers={"Accept": accept})

    assert response.status_code == 503
    assert response["Retry-After"] == "17"
    if accept == "application/json":
        assert json.loads(response.content) == {"error": "pagero_unavailable", "retry_after": 17}
    else:
        assert b"Pagero Online cannot be reached right now" in response.content
    assert stored_token_state(stored) == before
    assert pagero_mock.mock.counts["refresh_token"] == 1


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_valid_token_reaches_the_view(
    fetch, path, login, pagero_mock, pagero_token_factory, method
):
    stored = pagero_token_factory(login)
    response = fetch(method, path)
    assert response.status_code == 200
    assert json.loads(response.content) == {"ok": True, "fingerprint": stored.fingerprint}
    assert pagero_mock.mock.counts["refresh_token"] == 0


def test_an_expired_token_is_refreshed_before_the_view_runs(
    fetch, path, login, pagero_mock, pagero_token_factory
):
    stored = pagero_token_factory(login, expired=True)
    response = fetch("get", path)
    assert response.status_code == 200
    fresh = PageroToken.objects.get(pk=stored.pk)
    assert json.loads(response.content)["fingerprint"] == fresh.fingerprint != stored.fingerprint
    assert pagero_mock.mock.counts["refresh_token"] == 1


def test_a_per_view_response_handler(client, user, pagero_mock):
    client.force_login(user)
    response = client.get("/protected-handler/")
    assert (response.status_code, response.content) == (418, b"pagero_authorization_required")
