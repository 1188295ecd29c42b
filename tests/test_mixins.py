"""``PageroTokenRequiredMixin`` on sync and async class-based views."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from tests import views

CASES = {
    "sync get": ("sync", "get", "/protected-cbv/"),
    "sync post": ("sync", "post", "/protected-cbv/"),
    "async get": ("async", "get", "/protected-cbv-async/"),
    "async post": ("async", "post", "/protected-cbv-async-post/"),
}


@pytest.fixture(params=list(CASES))
def case(request: Any) -> tuple[str, str, str]:
    return CASES[request.param]


@pytest.fixture
def fetch(case: tuple[str, str, str], client: Any, async_client: Any) -> Any:
    kind, method, path = case

    def run(**kwargs: Any) -> Any:
        if kind == "sync":
            return getattr(client, method)(path, **kwargs)
        return async_to_sync(getattr(async_client, method))(path, **kwargs)

    return run


@pytest.fixture
def login(case: tuple[str, str, str], client: Any, async_client: Any, user: Any) -> Any:
    (client if case[0] == "sync" else async_client).force_login(user)
    return user


def test_the_views_are_sync_and_async():
    assert not views.ProtectedView.view_is_async
    assert views.ProtectedAsyncView.view_is_async
    assert views.ProtectedAsyncPostView.view_is_async


def test_anonymous(fetch, case, pagero_mock, db):
    response = fetch()
    if case[1] == "get":
        assert response.status_code == 302
        assert response["Location"] == f"/accounts/login/?next={case[2]}"
    else:
        assert response.status_code == 401
        assert json.loads(response.content)["error"] == "login_required"


def test_no_token(fetch, case, login, pagero_mock):
    response = fetch()
    login_url = f"/pagero/login/?next=%2F{case[2].strip('/')}%2F"
    if case[1] == "get":
        assert (response.status_code, response["Location"]) == (302, login_url)
    else:
        assert response.status_code == 401
        assert json.loads(response.content) == {
            "error": "pagero_authorization_required",
            "login_url": login_url,
        }


def test_no_token_json_get(client, user, pagero_mock):
    client.force_login(user)
    response = client.get("/protected-cbv/", headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert json.loads(response.content)["error"] == "pagero_authorization_required"


def test_dead_token(fetch, case, login, pagero_mock, pagero_token_factory):
    pagero_token_factory(login, status=PageroToken.Status.REAUTHORIZATION_REQUIRED)
    response = fetch()
    assert response.status_code == (302 if case[1] == "get" else 401)
    assert pagero_mock.mock.counts["refresh_token"] == 0


def test_transient_failure(
    fetch, case, login, pagero_mock, pagero_token_factory, stored_token_state
):
    stored = pagero_token_factory(login, expired=True)
    before = stored_token_state(stored)
    pagero_mock.mock.add_fault(Fault(endpoint="token", drop=True))
    response = fetch()
    assert response.status_code == 503
    assert response["Retry-After"] == "30"  # UNAVAILABLE_RETRY_AFTER's default
    if case[1] == "post":
        assert json.loads(response.content)["error"] == "pagero_unavailable"
    assert stored_token_state(stored) == before


def test_valid_token(fetch, login, pagero_mock, pagero_token_factory):
    stored = pagero_token_factory(login, expired=True)
    response = fetch()
    assert response.status_code == 200
    fresh = PageroToken.objects.get(pk=stored.pk)
    assert json.loads(response.content) == {"ok": True, "fingerprint": fresh.fingerprint}
    assert pagero_mock.mock.counts["refresh_token"] == 1


def test_handle_no_pagero_token_is_the_per_view_hook(client, user, pagero_mock):
    client.force_login(user)
    response = client.get("/protected-cbv-custom/")
    assert (response.status_code, response.content) == (418, b"pagero_authorization_required")
    client.logout()
    assert client.get("/protected-cbv-custom/").content == b"anonymous"
