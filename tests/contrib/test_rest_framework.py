"""``HasPageroToken`` on real DRF views (``APIClient``, session login, the strict mock)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from rest_framework.test import APIClient

from django_pagero_oauth.contrib.rest_framework import (
    PageroConnectionRequired,
    PageroServiceUnavailable,
)
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault
from tests.contrib import drf_views

pytestmark = pytest.mark.urls("tests.contrib.drf_views")

VIEWS = {
    "APIView": "/api/view/",
    "generic view": "/api/generic/",
    "viewset": "/api/viewset/",
    "async APIView (adrf)": "/api/async/",
}


@pytest.fixture(params=list(VIEWS))
def path(request: Any) -> str:
    return VIEWS[request.param]


@pytest.fixture
def api(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)  # DRF's SessionAuthentication, as a browser-facing API has it
    return client


@pytest.fixture
def recorded(settings: Any) -> list[type[BaseException]]:
    settings.REST_FRAMEWORK = {"EXCEPTION_HANDLER": "tests.contrib.drf_views.recording_handler"}
    drf_views.handled.clear()
    return drf_views.handled


def test_the_async_view_is_async() -> None:
    assert drf_views.AsyncTokenView.view_is_async
    assert not drf_views.TokenView.view_is_async


def test_valid_token_reaches_the_view(path, api, user, pagero_mock, pagero_token_factory):
    stored = pagero_token_factory(user)
    response = api.get(path)
    assert response.status_code == 200, response.content
    body = json.loads(response.content)
    assert body["fingerprint"] == stored.fingerprint
    assert body["django_request_has_it"] is True
    assert pagero_mock.mock.counts["refresh_token"] == 0


def test_expired_token_is_refreshed_once_first(path, api, user, pagero_mock, pagero_token_factory):
    stored = pagero_token_factory(user, expired=True)
    response = api.get(path)
    assert response.status_code == 200, response.content
    fresh = PageroToken.objects.get(pk=stored.pk)
    assert not fresh.access_token_needs_refresh()
    assert json.loads(response.content)["fingerprint"] == fresh.fingerprint
    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert pagero_mock.mock.is_refresh_token_valid(fresh.refresh_token)


def test_no_connection_is_401_with_where_to_connect(path, api, pagero_mock, recorded):
    response = api.get(path)
    assert response.status_code == 401  # not DRF's 403 for a failed permission
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "detail": "Connect your account to Pagero to use this API.",
        "error": "pagero_authorization_required",
        "login_url": f"/pagero/login/?next=%2F{path.strip('/').replace('/', '%2F')}%2F",
    }
    assert recorded == [PageroConnectionRequired]  # through DRF's exception handling


def test_connection_needing_reauthorization_is_401(api, user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user, status=PageroToken.Status.REAUTHORIZATION_REQUIRED)
    response = api.post("/api/view/", {"x": 1}, format="json")
    assert response.status_code == 401
    assert json.loads(response.content)["error"] == "pagero_authorization_required"
    assert pagero_mock.mock.counts["refresh_token"] == 0


def test_pagero_down_is_503_with_retry_after(
    path, api, user, pagero_mock, pagero_token_factory, stored_token_state, recorded
):
    stored = pagero_token_factory(user, expired=True)
    before = stored_token_state(stored)
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=503, headers=[("Retry-After", "7")]))
    response = api.get(path)
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    assert json.loads(response.content) == {
        "detail": "Pagero cannot be reached right now. Try again later.",
        "error": "pagero_unavailable",
        "retry_after": 7,
    }
    assert recorded == [PageroServiceUnavailable]
    assert stored_token_state(stored) == before  # the refresh token was kept
    for secret in (stored.access_token, stored.refresh_token):
        assert secret not in response.content.decode()


def test_rejected_client_credentials_are_503_too(
    api, user, pagero_mock, pagero_token_factory, stored_token_state
):
    # PageroConfigurationError is not a PageroUnavailable, but DRF answers it the same way.
    stored = pagero_token_factory(user, expired=True)
    before = stored_token_state(stored)
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=401))
    response = api.get("/api/view/")
    assert (response.status_code, response["Retry-After"]) == (503, "30")
    assert json.loads(response.content)["error"] == "pagero_unavailable"
    assert stored_token_state(stored) == before


def test_pagero_unreachable_uses_the_default_retry_after(
    api, user, pagero_mock, pagero_token_factory
):
    pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault(endpoint="token", drop=True))
    response = api.get("/api/view/")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"  # UNAVAILABLE_RETRY_AFTER's default
    assert json.loads(response.content)["retry_after"] == 30


def test_anonymous_is_left_to_drf(path, pagero_mock, db):
    response = APIClient().get(path)
    assert response.status_code == 403  # SessionAuthentication's answer for "not logged in"
    assert json.loads(response.content)["detail"].startswith("Authentication credentials")
    assert pagero_mock.mock.counts.total() == 0


def test_the_view_calls_pagero_with_the_guaranteed_token(
    api, user, pagero_mock, pagero_token_factory
):
    pagero_token_factory(user, expired=True, publicid="acme")
    response = api.get("/api/pagero/")
    assert json.loads(response.content) == {"status": 200, "publicid": "acme"}
    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert pagero_mock.mock.counts["api"] == 1


def test_the_answers_are_translated(api, pagero_mock):
    from django.utils import translation

    with translation.override("sv"):
        response = api.get("/api/view/")
    assert json.loads(response.content)["detail"] == (
        "Anslut ditt konto till Pagero för att använda detta API."
    )


# --- the connection dies inside the view ----------------------------------------------------


def answer(response: Any) -> tuple[Any, ...]:
    return (response.status_code, response["Content-Type"], response.get("Retry-After"))


def test_a_grant_revoked_at_pagero_inside_the_view_gets_the_permissions_401(
    api, user, pagero_mock, pagero_token_factory, recorded
):
    stored = pagero_token_factory(user)  # its access token is valid: the permission grants
    mock = pagero_mock.mock
    mock.revoke_grant("demo-company")  # the user withdrew the site's access at Pagero

    inside = api.get("/api/pagero/")  # the view's API call: 401, then invalid_grant

    assert (mock.counts["api"], mock.counts["refresh_token_failed"]) == (1, 1)
    assert PageroToken.objects.get(pk=stored.pk).needs_reauthorization
    assert inside.status_code == 401
    before = api.get("/api/pagero/")  # now the permission refuses, before the view
    assert (mock.counts["api"], mock.counts["refresh_token"]) == (1, 1)
    assert answer(inside) == answer(before)
    assert (
        json.loads(inside.content)
        == json.loads(before.content)
        == {
            "detail": "Connect your account to Pagero to use this API.",
            "error": "pagero_authorization_required",
            "login_url": "/pagero/login/?next=%2Fapi%2Fpagero%2F",
        }
    )
    # Both through DRF's exception handling, so a project's EXCEPTION_HANDLER sees them.
    assert recorded == [PageroConnectionRequired, PageroConnectionRequired]


def test_pagero_unavailable_inside_the_view_gets_the_permissions_503(
    api, user, pagero_mock, pagero_token_factory, stored_token_state, settings, recorded
):
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REFRESH_FAILURE_BACKOFF": 0}
    stored = pagero_token_factory(user)
    kept = stored_token_state(stored)
    mock = pagero_mock.mock
    mock.add_fault(Fault(endpoint="api", status=401))
    mock.add_fault(Fault(endpoint="token", status=503))

    inside = api.get("/api/pagero/")

    assert (mock.counts["api"], mock.counts["refresh_token_failed"]) == (1, 1)
    assert stored_token_state(stored) == kept
    PageroToken.objects.filter(pk=stored.pk).update(
        access_token_expires_at=stored.access_token_issued_at
    )
    mock.add_fault(Fault(endpoint="token", status=503))
    before = api.get("/api/pagero/")
    assert mock.counts["api"] == 1  # the permission answered
    assert answer(inside) == answer(before) == (503, "application/json", "30")
    assert json.loads(inside.content) == json.loads(before.content)
    assert recorded == [PageroServiceUnavailable, PageroServiceUnavailable]


def test_other_exceptions_of_the_view_are_left_to_drf(api, user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user)
    # Django's PermissionDenied, the parent of PageroAuthorizationRequired: DRF's own 403.
    response = api.get("/api/raises/?raise=permission_denied")
    assert response.status_code == 403
    assert json.loads(response.content) == {"detail": "a project's own refusal"}
    with pytest.raises(ValueError, match="a bug in the view"):
        api.get("/api/raises/?raise=value_error")
