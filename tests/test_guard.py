"""The one answer for a request without a valid token (django_pagero_oauth.guard)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db import connections, transaction
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory
from django.urls import path

from django_pagero_oauth.decorators import pagero_token_required
from django_pagero_oauth.exceptions import (
    PageroAuthorizationRequired,
    PageroConfigurationError,
    PageroOAuthError,
    PageroUnavailable,
)
from django_pagero_oauth.guard import default_response, resolve_token, wants_json
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault

PATH = "/some/page/?q=1&x=y"
PAGERO_LOGIN = f"/pagero/login/?next={quote(PATH, safe='')}"

handled: list[tuple[HttpRequest, PageroOAuthError | None]] = []


def teapot(request: HttpRequest, exc: PageroOAuthError | None) -> HttpResponse:
    """A project's own RESPONSE_HANDLER."""
    handled.append((request, exc))
    return HttpResponse("custom", status=418)


def request_for(rf: RequestFactory, user: Any, method: str = "get", **headers: str) -> HttpRequest:
    request = getattr(rf, method)(PATH, headers=headers)
    request.user = user
    return request


# --- deciding JSON -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, False),
        ({"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, False),
        ({"Accept": "application/json"}, True),
        ({"Accept": "application/json, text/plain, */*"}, True),
        ({"Accept": "text/html, application/json;q=0.5"}, False),
        ({"X-Requested-With": "XMLHttpRequest"}, True),
        # JSON only when named: a wildcard that would also match it is no JSON client.
        ({"Accept": "application/*"}, False),
        ({"Accept": "*/*"}, False),
    ],
)
def test_wants_json(rf, headers, expected):
    assert wants_json(rf.get("/", headers=headers)) is expected


# --- anonymous ------------------------------------------------------------------------------


def test_anonymous_html_goes_to_the_site_login(rf, pagero_mock):
    response = resolve_token(request_for(rf, AnonymousUser()))
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={quote(PATH, safe='/')}"


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("get", {"Accept": "application/json"}),
        ("post", {}),
        ("get", {"X-Requested-With": "XMLHttpRequest"}),
    ],
)
def test_anonymous_json_or_post_gets_401(rf, pagero_mock, method, headers):
    response = resolve_token(request_for(rf, AnonymousUser(), method, **headers))
    assert response.status_code == 401
    assert json.loads(response.content) == {
        "error": "login_required",
        "login_url": f"/accounts/login/?next={quote(PATH, safe='/')}",
    }


# --- no usable token ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "head"])
def test_html_get_without_token_goes_to_the_pagero_login(rf, user, pagero_mock, method):
    response = resolve_token(request_for(rf, user, method))
    assert response.status_code == 302
    assert response["Location"] == PAGERO_LOGIN


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("get", {"Accept": "application/json"}),
        ("get", {"X-Requested-With": "XMLHttpRequest"}),
        ("post", {}),
        ("put", {}),
        ("patch", {}),
        ("delete", {}),
        ("post", {"Accept": "text/html"}),
    ],
)
def test_json_or_non_get_without_token_gets_401_json(rf, user, pagero_mock, method, headers):
    response = resolve_token(request_for(rf, user, method, **headers))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "error": "pagero_authorization_required",
        "login_url": PAGERO_LOGIN,
    }


def test_a_dead_token_is_answered_like_no_token(rf, user, pagero_mock, pagero_token_factory):
    pagero_token_factory(user, status=PageroToken.Status.REAUTHORIZATION_REQUIRED)
    response = resolve_token(request_for(rf, user))
    assert (response.status_code, response["Location"]) == (302, PAGERO_LOGIN)
    assert pagero_mock.mock.counts["refresh_token"] == 0


# --- Pagero unavailable ---------------------------------------------------------------------


def test_unavailable_html_is_a_503_page_with_retry_after(rf, user, pagero_mock):
    response = default_response(request_for(rf, user), PageroUnavailable("down", retry_after=42))
    assert response.status_code == 503
    assert response["Retry-After"] == "42"
    assert "text/html" in response["Content-Type"]
    assert b"Pagero Online cannot be reached right now" in response.content
    assert b"42 seconds" in response.content


def test_unavailable_json_is_a_503_json_with_retry_after(rf, user, pagero_mock):
    request = request_for(rf, user, Accept="application/json")
    response = default_response(request, PageroUnavailable("down", retry_after=7))
    assert response.status_code == 503
    assert response["Retry-After"] == "7"
    assert json.loads(response.content) == {"error": "pagero_unavailable", "retry_after": 7}


def test_unavailable_without_retry_after_uses_the_setting(rf, user, pagero_mock, settings):
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "UNAVAILABLE_RETRY_AFTER": 99}
    response = default_response(request_for(rf, user, "post"), PageroConfigurationError("x"))
    assert (response.status_code, response["Retry-After"]) == (503, "99")


def test_a_failing_refresh_is_answered_503(rf, user, pagero_mock, pagero_token_factory):
    stored = pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=429, headers=[("Retry-After", "12")]))
    response = resolve_token(request_for(rf, user))
    assert (response.status_code, response["Retry-After"]) == (503, "12")
    assert PageroToken.objects.get(pk=stored.pk).refresh_token == stored.refresh_token


def test_rejected_client_credentials_are_answered_503_not_raised(
    rf, user, pagero_mock, pagero_token_factory
):
    # PageroConfigurationError is not a PageroUnavailable; for the visitor it is "not now".
    stored = pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(Fault(endpoint="token", status=401))
    response = resolve_token(request_for(rf, user, Accept="application/json"))
    assert (response.status_code, response["Retry-After"]) == (503, "30")
    assert json.loads(response.content)["error"] == "pagero_unavailable"
    assert PageroToken.objects.get(pk=stored.pk).refresh_token == stored.refresh_token


# --- success ------------------------------------------------------------------------------


def test_resolve_token_returns_and_sets_the_valid_token(
    rf, user, pagero_mock, pagero_token_factory
):
    stored = pagero_token_factory(user, expired=True)
    request = request_for(rf, user)
    token = resolve_token(request)
    assert isinstance(token, PageroToken)
    assert request.pagero_token is token
    assert token.access_token != stored.access_token
    assert pagero_mock.mock.counts["refresh_token"] == 1


# --- overriding ---------------------------------------------------------------------------


def test_response_handler_setting_replaces_the_answer(rf, user, pagero_mock, settings):
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "RESPONSE_HANDLER": f"{__name__}.teapot"}
    handled.clear()
    request = request_for(rf, user)
    response = resolve_token(request)
    assert response.status_code == 418
    assert handled[0][0] is request
    assert isinstance(handled[0][1], PageroAuthorizationRequired)

    anonymous = request_for(rf, AnonymousUser())
    assert resolve_token(anonymous).status_code == 418
    assert handled[1] == (anonymous, None)


def test_an_explicit_handler_wins_over_the_setting(rf, user, pagero_mock, settings):
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "RESPONSE_HANDLER": f"{__name__}.teapot"}
    response = resolve_token(request_for(rf, user), lambda request, exc: HttpResponse(status=409))
    assert response.status_code == 409


# --- the connection dies inside the view --------------------------------------------------
#
# The access token is still valid, so the guard lets the request in; the view's API call then
# finds the grant revoked at Pagero (401, and the forced refresh gets invalid_grant) or Pagero
# unusable. The view raises, and the visitor gets what the guard answers before a view.

#: Views of tests/views.py that call Pagero's API, each as the protection runs it.
INSIDE = {
    "decorator": ("/calls-pagero/decorator/", "wsgi"),
    "decorator, async view": ("/calls-pagero/decorator-async/", "asgi"),
    "mixin": ("/calls-pagero/mixin/", "wsgi"),
    "mixin, async view": ("/calls-pagero/mixin-async/", "asgi"),
    "middleware": ("/protected-by-middleware/calls-pagero/", "wsgi"),
    "middleware under ASGI": ("/protected-by-middleware/calls-pagero/", "asgi"),
    "middleware, async view": ("/protected-by-middleware/calls-pagero-async/", "asgi"),
}


@pytest.fixture(params=list(INSIDE))
def visit(request: Any, client: Any, async_client: Any, user: Any) -> Any:
    """``visit(accept, query="")``: the logged-in user GETs one of :data:`INSIDE`."""
    path, runner = INSIDE[request.param]
    client.force_login(user)
    async_client.force_login(user)

    def get(accept: str = "text/html", query: str = "") -> Any:
        headers = {"Accept": accept}
        if runner == "wsgi":
            return client.get(path + query, headers=headers)
        return async_to_sync(async_client.get)(path + query, headers=headers)

    return get


def answer(response: Any) -> tuple[Any, ...]:
    """What the visitor gets."""
    headers = ("Location", "Content-Type", "Retry-After")
    return (response.status_code, *(response.get(name) for name in headers), response.content)


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_a_grant_revoked_at_pagero_inside_the_view_gets_the_guards_answer(
    visit, accept, user, pagero_mock, pagero_token_factory
):
    stored = pagero_token_factory(user)  # its access token is valid: the guard lets us in
    mock = pagero_mock.mock
    assert mock.revoke_grant("demo-company") == 2  # the user withdrew the site's access

    inside = visit(accept)

    # The view's API call got a 401, its forced refresh invalid_grant: the connection is dead.
    assert (mock.counts["api"], mock.counts["refresh_token_failed"]) == (1, 1)
    assert PageroToken.objects.get(pk=stored.pk).needs_reauthorization
    if accept == "text/html":
        assert inside.status_code == 302  # to Pagero's login, then back here
        assert inside["Location"].startswith("/pagero/login/?next=%2F")
    else:
        assert inside.status_code == 401
        assert json.loads(inside.content)["error"] == "pagero_authorization_required"

    before = visit(accept)  # the guard now refuses before the view runs ...
    assert (mock.counts["api"], mock.counts["refresh_token"]) == (1, 1)
    assert answer(before) == answer(inside)  # ... with the very same answer


@pytest.mark.parametrize("accept", ["text/html", "application/json"])
def test_pagero_unavailable_inside_the_view_gets_the_guards_503(
    visit, accept, user, pagero_mock, pagero_token_factory, stored_token_state, settings
):
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REFRESH_FAILURE_BACKOFF": 0}
    stored = pagero_token_factory(user)
    kept = stored_token_state(stored)
    mock = pagero_mock.mock
    mock.add_fault(Fault(endpoint="api", status=401))
    mock.add_fault(Fault(endpoint="token", status=503))

    inside = visit(accept)

    assert (mock.counts["api"], mock.counts["refresh_token_failed"]) == (1, 1)
    assert (inside.status_code, inside["Retry-After"]) == (503, "30")
    assert stored_token_state(stored) == kept

    # Before the view: a refresh the guard needs meets the same failure.
    PageroToken.objects.filter(pk=stored.pk).update(
        access_token_expires_at=stored.access_token_issued_at
    )
    mock.add_fault(Fault(endpoint="token", status=503))
    before = visit(accept)
    assert (mock.counts["api"], mock.counts["refresh_token_failed"]) == (1, 2)
    assert answer(before) == answer(inside)


@pytest.mark.parametrize(("raised", "status"), [("permission_denied", 403), ("value_error", None)])
def test_other_exceptions_of_the_view_are_not_the_guards(
    visit, raised, status, user, pagero_mock, pagero_token_factory
):
    pagero_token_factory(user)
    if status is None:  # a bug stays a bug: the test client re-raises what would be a 500
        with pytest.raises(ValueError, match="a bug in the view"):
            visit(query=f"?raise={raised}")
    else:  # Django's PermissionDenied, the parent of PageroAuthorizationRequired, stays a 403
        response = visit(query=f"?raise={raised}")
        assert response.status_code == status
        assert "Location" not in response
    assert pagero_mock.mock.counts["api"] == 0


# --- the view's writes when the guard answers -------------------------------------------------


def _write_then_lose_pagero(request: HttpRequest) -> HttpResponse:
    """A write of the view's own, then Pagero found unusable: the guard answers 503."""
    get_user_model().objects.filter(pk=request.user.pk).update(first_name="kept?")
    raise PageroUnavailable("Pagero is down")


def _write_then_succeed(request: HttpRequest) -> HttpResponse:
    get_user_model().objects.filter(pk=request.user.pk).update(first_name="kept?")
    return HttpResponse("ok")


#: The guard opens the transaction (the decorator alone), or Django's handler does (a
#: ``non_atomic_requests`` on top replaces the guard's "every database" mark).
ANSWERED_VIEWS = {
    "guard's transaction": pagero_token_required(_write_then_lose_pagero),
    "handler's transaction": transaction.non_atomic_requests(using="other")(
        pagero_token_required(_write_then_lose_pagero)
    ),
}

urlpatterns = [
    *(path(f"answered/{index}/", view) for index, view in enumerate(ANSWERED_VIEWS.values())),
    path("answered/ok/", pagero_token_required(_write_then_succeed)),
]


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("index", range(len(ANSWERED_VIEWS)), ids=list(ANSWERED_VIEWS))
def test_the_views_writes_are_rolled_back_when_the_guard_answers(
    index, client, user, pagero_mock, pagero_token_factory, monkeypatch
):
    """Under ``ATOMIC_REQUESTS``, a view that raises one of the guard's errors gets the guard's
    answer instead of the exception, and its writes roll back as they would for an exception."""
    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)
    pagero_token_factory(user)
    client.force_login(user)

    response = client.get(f"/answered/{index}/")

    assert (response.status_code, response["Retry-After"]) == (503, "30")
    user.refresh_from_db()
    assert user.first_name != "kept?"


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_the_views_writes_are_committed_when_it_answers(
    client, user, pagero_mock, pagero_token_factory, monkeypatch
):
    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)
    pagero_token_factory(user)
    client.force_login(user)

    assert client.get("/answered/ok/").status_code == 200
    user.refresh_from_db()
    assert user.first_name == "kept?"


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("called", ["through the URLconf", "directly, without a resolver match"])
def test_the_guards_answer_never_dooms_a_transaction_it_did_not_get_from_the_handler(
    called, client, rf, user, pagero_mock, pagero_token_factory, monkeypatch
):
    """The test's own transaction stands for a caller's: only the ``ATOMIC_REQUESTS``
    transactions Django's handler opened around the view roll back, never an outer one."""
    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)
    pagero_token_factory(user)
    assert transaction.get_connection().in_atomic_block
    if called == "through the URLconf":
        client.force_login(user)
        response = client.get("/answered/0/")
    else:
        response = ANSWERED_VIEWS["guard's transaction"](request_for(rf, user))

    assert response.status_code == 503
    assert not transaction.get_rollback()
