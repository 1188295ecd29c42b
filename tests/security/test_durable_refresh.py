"""A refresh is committed the moment Pagero answers, whatever the caller's transaction does.

Pagero spends the old (single-use) refresh token when it answers. If the new one were saved
inside the caller's transaction (a view under ``ATOMIC_REQUESTS``, ``transaction.atomic()`` in a
job, the admin's "Refresh now"), a rollback would leave the row holding a dead token: the user
would be logged out for good. Each test here rolls the caller's transaction back after a
refresh and then checks, as a site would, that the next request works without a login and that
Pagero saw exactly one refresh.

Every test commits for real (``transaction=True``): a rollback inside a test-case transaction
proves nothing. On PostgreSQL the refresh commits on a connection of its own; on SQLite, where
a second connection cannot write while the caller's transaction holds a lock, the decorator, the
mixin and the middleware refresh before the request's transaction begins, and a direct call
inside a transaction that already holds a lock fails at once without calling Pagero (nothing is
lost, the next request refreshes).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections, transaction
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import include, path, reverse
from django.views import View

from django_pagero_oauth import durable, get_client, get_valid_token
from django_pagero_oauth.decorators import pagero_token_required
from django_pagero_oauth.exceptions import PageroUnavailable, TokenLockTimeout
from django_pagero_oauth.mixins import PageroTokenRequiredMixin
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.signals import token_refreshed
from tests import urls as base_urls

pytestmark = pytest.mark.django_db(transaction=True)

ON_SQLITE = connection.vendor == "sqlite"


class AfterTheRefresh(Exception):
    """The view's own failure, after its token was refreshed: its transaction rolls back."""


def _write_then_fail(request: HttpRequest) -> HttpResponse:
    # A write of the view's own that the rollback must undo (so the rollback is real).
    get_user_model().objects.filter(pk=request.user.pk).update(first_name="rolled back?")
    raise AfterTheRefresh


@pagero_token_required
def decorated(request: HttpRequest) -> HttpResponse:
    return _write_then_fail(request)


class MixinView(PageroTokenRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return _write_then_fail(request)


def middleware_protected(request: HttpRequest) -> HttpResponse:
    assert request.pagero_token  # type: ignore[attr-defined]
    return _write_then_fail(request)


def client_call(request: HttpRequest) -> HttpResponse:
    get_client(request.user).get("v1/documents")  # type: ignore[arg-type]
    return _write_then_fail(request)


def valid_token_call(request: HttpRequest) -> HttpResponse:
    get_valid_token(request.user)
    return _write_then_fail(request)


@pagero_token_required
def check(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok")


def _write_then_call_pagero(request: HttpRequest) -> HttpResponse:
    """A write of the view's own, then an API call that finds the connection dead."""
    get_user_model().objects.filter(pk=request.user.pk).update(first_name="rolled back?")
    get_client(request.user, token=request.pagero_token).get("v1/me")  # type: ignore[arg-type, attr-defined]
    return HttpResponse("not reached: the API call raised")


class MixinDiesView(PageroTokenRequiredMixin, View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return _write_then_call_pagero(request)


#: With ``non_atomic_requests`` on top, Django's handler (not the guard) opens the transaction.
DYING = {
    "decorator": pagero_token_required(_write_then_call_pagero),
    "decorator in the handler's transaction": transaction.non_atomic_requests(using="other")(
        pagero_token_required(_write_then_call_pagero)
    ),
    "mixin": MixinDiesView.as_view(),
}


urlpatterns = [
    *base_urls.urlpatterns,
    path("durable/decorated/", decorated),
    path("durable/mixin/", MixinView.as_view()),
    path("protected-by-middleware/durable/", middleware_protected),
    path("durable/client/", client_call),
    path("durable/valid-token/", valid_token_call),
    path("durable/check/", check),
    path("pagero-again/", include("django_pagero_oauth.urls")),
    *(path(f"durable/dies/{index}/", view) for index, view in enumerate(DYING.values())),
    path("protected-by-middleware/dies/", _write_then_call_pagero),
]

DYING_URLS = {
    **{name: f"/durable/dies/{index}/" for index, name in enumerate(DYING)},
    "middleware": "/protected-by-middleware/dies/",
}


@pytest.fixture
def atomic_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(connections.settings["default"], "ATOMIC_REQUESTS", True)
    assert connection.settings_dict["ATOMIC_REQUESTS"]


@pytest.fixture
def site(user: Any, atomic_requests: None) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def refreshes(pagero_mock: Any) -> int:
    return int(pagero_mock.mock.counts["refresh_token"])


def assert_connection_kept(
    site: Client, user: Any, pagero_mock: Any, refreshed_before: int
) -> None:
    """The next request works without a login; the stored refresh token is alive at Pagero."""
    response = site.get("/durable/check/")
    assert response.status_code == 200, response.get("Location")
    stored = PageroToken.objects.get(user=user)
    assert pagero_mock.mock.is_refresh_token_valid(stored.refresh_token)
    assert refreshes(pagero_mock) == refreshed_before
    # The view's own write was rolled back: the transaction really failed.
    user.refresh_from_db()
    assert user.first_name != "rolled back?"


@pytest.mark.urls(__name__)
@pytest.mark.parametrize(
    "url", ["/durable/decorated/", "/durable/mixin/", "/protected-by-middleware/durable/"]
)
def test_protected_view_that_fails_after_the_refresh_keeps_the_connection(
    site, user, pagero_mock, pagero_token_factory, url
):
    pagero_token_factory(user, expired=True)

    response = site.get(url)

    assert response.status_code == 500
    assert refreshes(pagero_mock) == 1
    assert_connection_kept(site, user, pagero_mock, refreshed_before=1)


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", ["/durable/client/", "/durable/valid-token/"])
def test_direct_call_in_an_atomic_view_that_fails_keeps_the_connection(
    site, user, pagero_mock, pagero_token_factory, url
):
    pagero_token_factory(user, expired=True)

    response = site.get(url)

    assert response.status_code == 500
    if ON_SQLITE:
        # The request's transaction had read the user: SQLite's lock is the caller's, so the
        # refresh refused at once; Pagero was not called and the next request refreshes.
        assert refreshes(pagero_mock) == 0
        assert_connection_kept(site, user, pagero_mock, refreshed_before=1)
    else:
        assert refreshes(pagero_mock) == 1
        assert_connection_kept(site, user, pagero_mock, refreshed_before=1)


@pytest.mark.urls(__name__)
def test_background_job_in_atomic_that_fails_keeps_the_connection(
    user, pagero_mock, pagero_token_factory, atomic_requests
):
    """A job (e.g. a Celery task) calling the API inside ``atomic()``, then failing."""
    pagero_token_factory(user, expired=True)

    def job() -> None:
        with transaction.atomic():
            # A job usually starts by reading: its transaction holds that snapshot/lock.
            get_user_model().objects.get(pk=user.pk)
            get_client(user).get("v1/documents").raise_for_status()
            _write_then_fail(type("Request", (), {"user": user})())  # type: ignore[arg-type]

    if ON_SQLITE:
        with pytest.raises(TokenLockTimeout):
            job()
        assert refreshes(pagero_mock) == 0
    else:
        with pytest.raises(AfterTheRefresh):
            job()
        assert refreshes(pagero_mock) == 1

    client = Client()
    client.force_login(user)
    assert_connection_kept(client, user, pagero_mock, refreshed_before=1)


@pytest.mark.skipif(ON_SQLITE, reason="SQLite cannot commit beside a transaction holding a lock")
def test_job_that_has_not_read_yet_commits_its_refresh_on_any_database(
    user, pagero_mock, pagero_token_factory
):
    stored = pagero_token_factory(user, expired=True)
    with pytest.raises(AfterTheRefresh), transaction.atomic():
        fresh = get_valid_token(user)
        raise AfterTheRefresh
    assert fresh.refresh_token != stored.refresh_token
    assert PageroToken.objects.get(pk=stored.pk).refresh_token == fresh.refresh_token


def test_refresh_signal_is_sent_once_the_refresh_is_committed(
    user, pagero_mock, pagero_token_factory
):
    """Sent at once (the refresh is committed), not when the caller's transaction commits."""
    pagero_token_factory(user, expired=True)
    seen: list[str] = []

    def receiver(token: PageroToken, **kwargs: Any) -> None:
        # What a receiver reads on another connection is what is committed.
        seen.append(PageroToken.objects.get(pk=token.pk).refresh_token)

    token_refreshed.connect(receiver)
    try:
        get_valid_token(user)
    finally:
        token_refreshed.disconnect(receiver)
    assert seen == [PageroToken.objects.get(user=user).refresh_token]


@pytest.mark.skipif(ON_SQLITE, reason="needs row locks and a second connection")
def test_a_row_locked_by_the_callers_own_transaction_fails_clearly(
    user, pagero_mock, pagero_token_factory, settings, monkeypatch
):
    """The caller holds the token row's lock itself: no hang, no call to Pagero."""
    stored = pagero_token_factory(user, expired=True)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TIMEOUT": 0.1}
    monkeypatch.setattr(durable, "LOCK_WAIT_MARGIN", 0.3)
    with transaction.atomic():
        PageroToken.objects.select_for_update().get(pk=stored.pk)
        with pytest.raises(PageroUnavailable) as raised:
            get_valid_token(user)
    assert isinstance(raised.value, TokenLockTimeout)
    assert refreshes(pagero_mock) == 0
    assert PageroToken.objects.get(pk=stored.pk).refresh_token == stored.refresh_token


@pytest.mark.skipif(ON_SQLITE, reason="SQLite: the caller's write holds the database lock")
def test_a_row_created_in_the_callers_transaction_is_refreshed_in_it(
    user, pagero_mock, pagero_token_factory
):
    """Invisible to another connection: it lives or dies with the caller's transaction."""
    from django_pagero_oauth.oauth import TokenResponse

    with transaction.atomic():
        response = TokenResponse.from_json(pagero_mock.mock.issue_tokens())
        token = PageroToken.store_for_user(user, response)
        PageroToken.objects.filter(pk=token.pk).update(
            access_token_expires_at=token.access_token_issued_at
        )
        fresh = get_valid_token(user)
        assert fresh.refresh_token != response.refresh_token
    assert PageroToken.objects.get(pk=token.pk).refresh_token == fresh.refresh_token


# --- the admin's "Refresh now" -------------------------------------------------------------


class Boom(Exception):
    pass


@pytest.mark.urls(__name__)
def test_admin_refresh_now_failing_half_way_keeps_what_was_refreshed(
    user, pagero_mock, pagero_token_factory, atomic_requests, django_user_model
):
    """Three tokens; a receiver fails after the second refresh, the request rolls back."""
    users = [user] + [django_user_model.objects.create_user(f"u{i}") for i in range(2)]
    stored = [pagero_token_factory(u) for u in users]
    calls: list[int] = []

    def failing_receiver(token: PageroToken, **kwargs: Any) -> None:
        calls.append(token.pk)
        if len(calls) == 2:
            raise Boom

    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    site = Client(raise_request_exception=False)
    site.force_login(admin)
    token_refreshed.connect(failing_receiver)
    try:
        response = site.post(
            reverse("admin:django_pagero_oauth_pagerotoken_changelist"),
            {
                "action": "refresh_now",
                "index": 0,
                "_selected_action": [t.pk for t in sorted(stored, key=lambda t: t.pk)],
            },
        )
    finally:
        token_refreshed.disconnect(failing_receiver)

    assert response.status_code == 500
    assert refreshes(pagero_mock) == 2
    for token in stored:
        current = PageroToken.objects.get(pk=token.pk)
        # Refreshed rows hold their new, live refresh token; the third was never touched.
        assert pagero_mock.mock.is_refresh_token_valid(current.refresh_token)
    refreshed = [
        t for t in stored if PageroToken.objects.get(pk=t.pk).refresh_token != t.refresh_token
    ]
    assert len(refreshed) == 2
    # Each user's next request works without a login, with no further refresh.
    for u in users:
        client = Client()
        client.force_login(u)
        assert client.get("/durable/check/").status_code == 200
    assert refreshes(pagero_mock) == 2


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("url", DYING_URLS.values(), ids=DYING_URLS.keys())
def test_a_connection_that_dies_inside_an_atomic_view_rolls_the_view_back(
    site, user, pagero_mock, pagero_token_factory, url
):
    stored = pagero_token_factory(user)  # valid: the guard lets the request in
    pagero_mock.mock.revoke_grant("demo-company")

    response = site.get(url)

    user.refresh_from_db()
    assert user.first_name != "rolled back?"  # the view failed: its write is undone
    if ON_SQLITE:
        # The view's write holds SQLite's lock: the forced refresh refused at once, before
        # Pagero was called (TokenLockTimeout), and the guard answered "not now".
        assert (response.status_code, response["Retry-After"]) == (503, "30")
        assert refreshes(pagero_mock) == 0
    else:
        assert response.status_code == 302
        assert response["Location"] == f"/pagero/login/?next={url.replace('/', '%2F')}"
        # Pagero's invalid_grant was committed beside the view's rollback.
        assert PageroToken.objects.get(pk=stored.pk).needs_reauthorization
