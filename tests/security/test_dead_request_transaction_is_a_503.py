"""A protected page whose request transaction the database ended answers 503, not 500.

Under ``ATOMIC_REQUESTS`` the guard (``@pagero_token_required``, ``PageroTokenRequiredMixin``)
opens the request's transactions itself, after the token was resolved; a view that reads the
middleware's lazy ``request.pagero_token`` runs in the transaction Django's handler opened, and
the middleware answers for it. When the database ends
such a transaction while the view runs (PostgreSQL: the backend terminated, as in a failover;
SQLite: the database stays locked beyond the connection's ``timeout``), nothing the view wrote is
kept, and the visitor gets the "try again" page with ``Retry-After``, as when Pagero is
unavailable, instead of a server error. The next request works.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path
from django.views import View

from django_pagero_oauth.decorators import pagero_token_required
from django_pagero_oauth.mixins import PageroTokenRequiredMixin
from tests import urls as base_urls

pytestmark = pytest.mark.django_db(transaction=True)

ON_POSTGRESQL = connection.vendor == "postgresql"


def _write_after_the_transaction_died(request: HttpRequest) -> HttpResponse:
    if request.GET.get("ok"):
        return HttpResponse("ok")
    if ON_POSTGRESQL:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    get_user_model().objects.filter(pk=request.user.pk).update(first_name="kept?")
    return HttpResponse("written")


@pagero_token_required
def decorated(request: HttpRequest) -> HttpResponse:
    return _write_after_the_transaction_died(request)


class MixinView(PageroTokenRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return _write_after_the_transaction_died(request)


def reads_the_lazy_token(request: HttpRequest) -> HttpResponse:
    """No guard: the middleware's ``request.pagero_token``, read inside the request's
    transaction (Django's handler opened it)."""
    assert request.pagero_token  # type: ignore[attr-defined]
    return _write_after_the_transaction_died(request)


def reads_no_token(request: HttpRequest) -> HttpResponse:
    return _write_after_the_transaction_died(request)


urlpatterns = [
    *base_urls.urlpatterns,
    path("dead/decorated/", decorated),
    path("dead/mixin/", MixinView.as_view()),
    path("dead/lazy-token/", reads_the_lazy_token),
    path("dead/no-token/", reads_no_token),
]


@pytest.fixture
def site(user: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    settings = connections.settings["default"]
    monkeypatch.setitem(settings, "ATOMIC_REQUESTS", True)
    if not ON_POSTGRESQL:
        # A writer waits 0.1 s for SQLite's lock, which another process holds.
        monkeypatch.setitem(settings, "OPTIONS", {**settings.get("OPTIONS", {}), "timeout": 0.1})
    connection.close()
    client = Client(raise_request_exception=False)
    client.force_login(user)
    yield client
    connection.close()


@contextmanager
def database_locked_elsewhere() -> Iterator[None]:
    """SQLite: another process holds the write lock while the view writes."""
    if ON_POSTGRESQL:
        yield
        return
    other = sqlite3.connect(connection.settings_dict["NAME"])
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.rollback()
        other.close()


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/dead/decorated/", "/dead/mixin/", "/dead/lazy-token/"])
def test_a_request_whose_transaction_the_database_ended_gets_a_503(
    site: Client, user: Any, pagero_mock: Any, pagero_token_factory: Any, url: str
) -> None:
    pagero_token_factory(user)
    with database_locked_elsewhere():
        response = site.get(url)

    assert response.status_code == 503
    assert response["Retry-After"]
    user.refresh_from_db()
    assert user.first_name != "kept?"  # the view's write went with its transaction
    assert site.get(url, {"ok": "1"}).content == b"ok"  # and the next request works


@pytest.mark.urls(__name__)
def test_a_view_that_never_read_the_token_keeps_its_own_server_error(
    site: Client, user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    """The package answers only for requests it took part in: a database error of a view that
    never touched the Pagero token is the site's own (a 500)."""
    pagero_token_factory(user)
    with database_locked_elsewhere():
        response = site.get("/dead/no-token/")

    assert response.status_code == 500
