"""From async code, a refresh waits for Pagero off Django's shared sync thread.

Every ORM call from async code runs in one shared thread (``sync_to_async(thread_sensitive=
True)``). A refresh held there while Pagero answers slowly would make every other request's
database access in the worker queue behind it.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model
from django.db import connections

from django_pagero_oauth import oauth
from django_pagero_oauth.guard import aresolve_token
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import aget_valid_token

pytestmark = pytest.mark.django_db(transaction=True)

#: A bound for waits that only end early when the code is right; never reached when it is.
PATIENCE = 20


@pytest.fixture
def held_refresh(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Refreshes reach Pagero only once ``release`` is set; ``started`` is set when one waits."""
    started, release = threading.Event(), threading.Event()
    threads: list[int] = []
    real = oauth.refresh_access_token

    def held(refresh_token: str) -> Any:
        threads.append(threading.get_ident())
        started.set()
        release.wait(PATIENCE)
        return real(refresh_token)

    monkeypatch.setattr(oauth, "refresh_access_token", held)
    return started, release, threads


def _unrelated_orm_call() -> int:
    return get_user_model().objects.count()


async def _shared_thread() -> int:
    """The thread every thread-sensitive ORM call of this async code runs in."""
    return await sync_to_async(threading.get_ident, thread_sensitive=True)()


def test_async_refresh_does_not_hold_the_shared_sync_thread(
    user, pagero_mock, pagero_token_factory, held_refresh
):
    pagero_token_factory(user, expired=True)
    async_to_sync(_refresh_while_another_request_uses_the_orm)(user, pagero_mock, held_refresh)


async def _refresh_while_another_request_uses_the_orm(
    user: Any, pagero_mock: Any, held_refresh: Any
) -> None:
    started, release, threads = held_refresh
    refreshing = asyncio.ensure_future(aget_valid_token(user))
    await asyncio.get_running_loop().run_in_executor(None, started.wait, PATIENCE)
    assert started.is_set()
    try:
        # Another request's ORM call completes while the refresh still waits for Pagero.
        count = await asyncio.wait_for(
            sync_to_async(_unrelated_orm_call, thread_sensitive=True)(), PATIENCE / 2
        )
    finally:
        release.set()
    token = await refreshing

    assert count == 1
    assert threads and threads[0] != await _shared_thread()
    assert pagero_mock.mock.counts["refresh_token"] == 1
    stored = await sync_to_async(PageroToken.objects.get)(user=user)
    assert stored.refresh_token == token.refresh_token


def test_async_guard_refreshes_off_the_shared_thread(
    user, pagero_mock, pagero_token_factory, held_refresh, rf
):
    _started, release, threads = held_refresh
    release.set()
    pagero_token_factory(user, expired=True)
    async_to_sync(_guard)(user, pagero_mock, threads, rf)


async def _guard(user: Any, pagero_mock: Any, threads: list[int], rf: Any) -> None:
    request = rf.get("/")
    request.user = user

    async def auser() -> Any:
        return user

    request.auser = auser

    token = await aresolve_token(request)

    assert isinstance(token, PageroToken) and request.pagero_token is token
    assert threads and threads[0] != await _shared_thread()
    assert pagero_mock.mock.counts["refresh_token"] == 1


def test_the_worker_threads_connection_is_closed_afterwards(
    user, pagero_mock, pagero_token_factory, held_refresh
):
    _started, release, threads = held_refresh
    release.set()
    pagero_token_factory(user, expired=True)
    seen: list[Any] = []
    real_close_all = connections.close_all

    def close_all() -> None:
        seen.append((threading.get_ident(), connections["default"].connection is not None))
        real_close_all()
        seen.append((threading.get_ident(), connections["default"].connection is None))

    connections.close_all = close_all  # type: ignore[method-assign]
    try:
        async_to_sync(aget_valid_token)(user)
    finally:
        del connections.close_all
    assert seen == [(threads[0], True), (threads[0], True)]


def test_the_guards_answer_runs_in_the_shared_sync_thread(user, pagero_mock, rf):
    """A response handler is sync code that may use the ORM: from async views it runs where
    every other ORM call of the request runs, for an anonymous visitor and a missing token."""
    async_to_sync(_answers)(user, rf)


async def _answers(user: Any, rf: Any) -> None:
    from django.contrib.auth.models import AnonymousUser
    from django.http import HttpResponse

    seen: list[tuple[int, Any]] = []

    def handler(request: Any, exc: Any) -> HttpResponse:
        seen.append((threading.get_ident(), exc))
        return HttpResponse("answered", status=418)

    for visitor in (AnonymousUser(), user):  # no login; no Pagero connection
        request = rf.get("/")
        request.user = visitor
        answer = await aresolve_token(request, handler)
        assert answer.status_code == 418

    shared = await _shared_thread()
    assert [thread for thread, _ in seen] == [shared, shared]
    assert seen[0][1] is None and seen[1][1] is not None


def test_an_async_views_error_is_judged_and_answered_in_the_shared_sync_thread(
    user, pagero_mock, pagero_token_factory, rf
):
    """``request.user`` may still be lazy when the view raises: reading its pk may query the
    database, so it is read (and the answer made) where every other ORM call of the request
    runs."""
    pagero_token_factory(user)
    async_to_sync(_own_connection_refused)(user, rf)


async def _own_connection_refused(user: Any, rf: Any) -> None:
    from django.utils.functional import SimpleLazyObject

    from django_pagero_oauth.decorators import pagero_token_required
    from django_pagero_oauth.exceptions import PageroAuthorizationRequired

    read_in: list[int] = []
    answered_in: list[int] = []

    def handler(request: Any, exc: Any) -> Any:
        from django.http import HttpResponse

        answered_in.append(threading.get_ident())
        return HttpResponse(status=401)

    @pagero_token_required(response_handler=handler)
    async def view(request: Any) -> Any:
        raise PageroAuthorizationRequired("renew it", user_pk=user.pk)

    def load() -> Any:
        read_in.append(threading.get_ident())
        return user

    async def auser() -> Any:
        return user

    request = rf.get("/")
    request.user = SimpleLazyObject(load)
    request.auser = auser

    response = await view(request)

    assert response.status_code == 401  # the visitor's own connection: the guard's answer
    shared = await _shared_thread()
    assert read_in == [shared] and answered_in == [shared]
