"""``PageroTokenMiddleware``: a lazy ``request.pagero_token`` and ``PROTECTED_PATHS``."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import async_to_sync, iscoroutinefunction
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from django_pagero_oauth.exceptions import PageroUnavailable
from django_pagero_oauth.middleware import PageroTokenMiddleware
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault

PROTECTED = "/protected-by-middleware/"
PROTECTED_ASYNC = "/protected-by-middleware/async/"


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


async def aok(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


@pytest.fixture
def aclient(async_client: Any, user: Any) -> Any:
    async_client.force_login(user)
    return async_client


def aget(async_client: Any, path: str, **kwargs: Any) -> Any:
    return async_to_sync(async_client.get)(path, **kwargs)


# --- sync and async -----------------------------------------------------------------------


def test_the_middleware_is_sync_and_async_capable():
    assert PageroTokenMiddleware.sync_capable and PageroTokenMiddleware.async_capable
    assert not iscoroutinefunction(PageroTokenMiddleware(ok))
    assert iscoroutinefunction(PageroTokenMiddleware(aok))


# --- the lazy token -----------------------------------------------------------------------


def test_no_query_unless_the_token_is_used(
    user, pagero_mock, pagero_token_factory, django_assert_num_queries
):
    stored = pagero_token_factory(user, expired=True)
    request = RequestFactory().get("/plain/")
    request.user = user

    with django_assert_num_queries(0):
        response = PageroTokenMiddleware(ok)(request)
    assert response.status_code == 200
    assert pagero_mock.mock.counts["refresh_token"] == 0

    with CaptureQueriesContext(connection) as queries:
        assert request.pagero_token.fingerprint != stored.fingerprint  # refreshed on first use
    assert len(queries) > 0
    assert pagero_mock.mock.counts["refresh_token"] == 1


def test_no_query_through_the_whole_stack_when_unused(
    user_client, aclient, pagero_mock, pagero_token_factory, user, django_assert_num_queries
):
    pagero_token_factory(user, expired=True)
    with django_assert_num_queries(0):
        assert json.loads(user_client.get("/token-info/").content) == {"used": False}
    with django_assert_num_queries(0):
        assert json.loads(aget(aclient, "/token-info/").content) == {"used": False}
    assert pagero_mock.mock.counts["refresh_token"] == 0


@pytest.mark.parametrize("runner", ["wsgi", "asgi"])
def test_the_lazy_token_when_used(
    runner, user_client, aclient, user, pagero_mock, pagero_token_factory
):
    stored = pagero_token_factory(user, expired=True)
    path = "/token-info/?use=1"
    response = user_client.get(path) if runner == "wsgi" else aget(aclient, path)
    data = json.loads(response.content)
    assert data["fingerprint"] == PageroToken.objects.get(pk=stored.pk).fingerprint
    assert pagero_mock.mock.counts["refresh_token"] == 1


def test_the_lazy_token_is_falsy_without_a_connection(user_client, client, pagero_mock):
    assert json.loads(user_client.get("/token-info/?use=1").content)["fingerprint"] is None
    client.logout()
    assert json.loads(client.get("/token-info/?use=1").content)["fingerprint"] is None


def test_the_lazy_token_raises_when_pagero_is_unavailable(
    user_client, user, pagero_mock, pagero_token_factory
):
    pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=503))
    with pytest.raises(PageroUnavailable):
        user_client.get("/token-info/?use=1")


@pytest.mark.parametrize("runner", ["wsgi", "asgi"])
def test_apagero_token_in_async_views(
    runner, user_client, aclient, user, pagero_mock, pagero_token_factory
):
    stored = pagero_token_factory(user)
    response = (
        user_client.get("/token-info-async/")
        if runner == "wsgi"
        else aget(aclient, "/token-info-async/")
    )
    assert json.loads(response.content) == {"ok": True, "fingerprint": stored.fingerprint}


# --- PROTECTED_PATHS ------------------------------------------------------------------------


def test_unprotected_paths_are_not_enforced(user_client, pagero_mock):
    assert user_client.get("/plain/").status_code == 200


@pytest.mark.parametrize("runner", ["wsgi", "asgi"])
def test_protected_path_anonymous(runner, client, async_client, pagero_mock, db):
    response = client.get(PROTECTED) if runner == "wsgi" else aget(async_client, PROTECTED)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={PROTECTED}"


@pytest.mark.parametrize("runner", ["wsgi", "asgi"])
@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("get", {}, 302),
        ("get", {"Accept": "application/json"}, 401),
        ("get", {"X-Requested-With": "XMLHttpRequest"}, 401),
        ("post", {}, 401),
    ],
)
def test_protected_path_without_token(
    runner, method, headers, expected, user_client, aclient, pagero_mock
):
    http = user_client if runner == "wsgi" else aclient
    call = getattr(http, method)
    response = (
        call(PROTECTED, headers=headers)
        if runner == "wsgi"
        else async_to_sync(call)(PROTECTED, headers=headers)
    )
    login_url = "/pagero/login/?next=%2Fprotected-by-middleware%2F"
    assert response.status_code == expected
    if expected == 302:
        assert response["Location"] == login_url
    else:
        assert json.loads(response.content) == {
            "error": "pagero_authorization_required",
            "login_url": login_url,
        }


@pytest.mark.parametrize("runner", ["wsgi", "asgi"])
def test_protected_path_with_a_dead_token(
    runner, user_client, aclient, user, pagero_mock, pagero_token_factory
):
    pagero_token_factory(user, expired=True, status=PageroToken.Status.REAUTHORIZATION_REQUIRED)
    response = user_client.get(PROTECTED) if runner == "wsgi" else aget(aclient, PROTECTED)
    assert response.status_code == 302
    assert pagero_mock.mock.counts["refresh_token"] == 0


@pytest.mark.parametrize("runner", ["wsgi", "asgi"])
@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_protected_path_when_pagero_is_unavailable(
    runner,
    accept,
    user_client,
    aclient,
    user,
    pagero_mock,
    pagero_token_factory,
    stored_token_state,
):
    stored = pagero_token_factory(user, expired=True)
    before = stored_token_state(stored)
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=502))
    headers = {"Accept": accept}
    response = (
        user_client.get(PROTECTED, headers=headers)
        if runner == "wsgi"
        else aget(aclient, PROTECTED, headers=headers)
    )
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    if accept == "text/html":
        assert b"Pagero Online cannot be reached right now" in response.content
    else:
        assert json.loads(response.content)["error"] == "pagero_unavailable"
    assert stored_token_state(stored) == before


@pytest.mark.parametrize("runner", ["wsgi", "asgi"])
def test_protected_path_with_a_valid_token(
    runner, user_client, aclient, user, pagero_mock, pagero_token_factory
):
    stored = pagero_token_factory(user, expired=True)
    response = user_client.get(PROTECTED) if runner == "wsgi" else aget(aclient, PROTECTED)
    assert (response.status_code, response.content) == (200, b"plain")
    assert pagero_mock.mock.counts["refresh_token"] == 1
    response = aget(aclient, PROTECTED_ASYNC)
    data = json.loads(response.content)
    assert data["fingerprint"] == PageroToken.objects.get(pk=stored.pk).fingerprint
    assert pagero_mock.mock.counts["refresh_token"] == 1


def test_the_apps_own_urls_and_login_url_are_never_enforced(
    user_client, client, user, pagero_mock, settings
):
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "PROTECTED_PATHS": [r"^/"]}
    assert user_client.get("/plain/").status_code == 302  # everything else is protected now

    login = user_client.get("/pagero/login/")
    assert login.status_code == 302
    assert login["Location"].startswith(settings.PAGERO_OAUTH["AUTHORIZE_URL"])
    for path in ("/pagero/callback/?state=x&code=y", "/pagero/disconnect/"):
        response = user_client.get(path)
        assert response.status_code != 401
        assert not response.get("Location", "").startswith("/pagero/login/")
    client.logout()
    # LOGIN_URL is not routed in the test project: a 404, not a redirect loop to itself.
    assert client.get("/accounts/login/").status_code == 404
