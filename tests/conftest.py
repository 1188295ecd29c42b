"""Shared fixtures. The mock server fixtures (``pagero_mock``, ``pagero_token_factory``) come
from the package's own pytest plugin, registered through its ``pytest11`` entry point."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model


@pytest.fixture
def user(db: None) -> Any:
    return get_user_model().objects.create_user("alice", "alice@example.com", "pw")


@pytest.fixture
def other_user(db: None) -> Any:
    return get_user_model().objects.create_user("mallory", "mallory@example.com", "pw")


@pytest.fixture
def sign_in_enabled(settings: Any) -> None:
    """ "Sign in with Pagero" switched on (``SIGN_IN_ENABLED``; off by default)."""
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "SIGN_IN_ENABLED": True}


@pytest.fixture
def user_client(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client


@pytest.fixture
def stored_token_state() -> Any:
    """``state(token)``: every column of the stored row, decrypted, plus the raw ciphertexts.

    Compare two states to prove a failed refresh changed nothing (not even a re-encryption).
    """
    from django.db.models import TextField
    from django.db.models.functions import Cast

    from django_pagero_oauth.models import PageroToken

    def state(token: Any) -> dict[str, Any]:
        columns = [field.attname for field in PageroToken._meta.concrete_fields]
        raw = {
            f"raw_{name}": Cast(name, TextField())
            for name in ("access_token", "refresh_token", "id_token")
        }
        return dict(PageroToken.objects.filter(pk=token.pk).values(*columns, **raw).get())

    return state


@pytest.fixture
def run_in_threads() -> Any:
    """``run(func, n)``: ``func(index)`` in ``n`` threads released at once by a barrier.

    Returns each thread's result or exception, in order. Every thread closes its own database
    connections, so PostgreSQL and SQLite see ``n`` real concurrent clients.
    """
    import threading

    from django.db import connections

    def run(func: Any, n: int = 16) -> list[Any]:
        barrier = threading.Barrier(n)
        results: list[Any] = [None] * n

        def worker(index: int) -> None:
            try:
                barrier.wait(timeout=30)
                results[index] = func(index)
            except BaseException as exc:  # reported to the test, which asserts on it
                results[index] = exc
            finally:
                connections.close_all()

        threads = [threading.Thread(target=worker, args=(index,)) for index in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not any(thread.is_alive() for thread in threads), "a thread hung"
        return results

    return run


@pytest.fixture
def receive() -> Any:
    """``with receive(signal) as calls:`` records each sending as a dict of its arguments."""
    from collections.abc import Iterator
    from contextlib import contextmanager

    @contextmanager
    def connect(signal: Any) -> Iterator[list[dict[str, Any]]]:
        calls: list[dict[str, Any]] = []

        def receiver(sender: Any, **kwargs: Any) -> None:
            kwargs.pop("signal", None)
            calls.append({"sender": sender, **kwargs})

        signal.connect(receiver, weak=False)
        try:
            yield calls
        finally:
            signal.disconnect(receiver)

    return connect


@pytest.fixture
def live_site(live_server: Any, transactional_db: None) -> Any:
    """pytest-django's ``live_server`` (serving ``tests.urls``), with committed-data access.

    Django's live server hands ``/static/`` to a static-files handler built from
    ``STATIC_URL``; while tests/settings.py leaves that unset, every request would be a 500.
    Until then, give the handler the default prefix (nothing in the tests is served there).
    """
    from urllib.parse import urlparse

    handler = live_server.thread.httpd.get_app()
    if isinstance(handler.base_url.path, bytes):
        handler.base_url = urlparse("/static/")
    return live_server
