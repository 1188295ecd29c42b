"""pytest fixtures for projects that use django-pagero-oauth (registered as a pytest11 plugin).

- ``pagero_mock_server``: a strict mock Pagero server on a local port for the whole session.
- ``pagero_mock``: that server, reset for this test, with ``settings.PAGERO_OAUTH`` pointed at
  it (needs pytest-django's ``settings`` fixture). Read ``pagero_mock.mock.counts`` to assert
  how many refreshes happened; ``pagero_mock.mock.add_fault(...)`` to inject failures. The
  id_token keys the app cached are forgotten before and after each test.
- ``pagero_token_factory``: ``pagero_token_factory(user, expired=False)`` stores a token the
  mock will honour (refreshable), without going through the login pages.

Nothing here imports Django at plugin load time.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from ..models import PageroToken
    from .mock import MockPageroServer


@pytest.fixture(scope="session")
def pagero_mock_server() -> Iterator[MockPageroServer]:
    from .mock import MockPageroServer

    with MockPageroServer() as server:
        yield server


@pytest.fixture
def pagero_mock(pagero_mock_server: MockPageroServer, settings: Any) -> Iterator[MockPageroServer]:
    from .mock import MockPagero

    mock = pagero_mock_server.mock
    # What a test may change and the next test gets back: the constructor's options and the
    # OpenID Connect signing keys and algorithm.
    names = [*inspect.signature(MockPagero).parameters, "signing_keys", "id_token_alg"]
    configuration = {name: getattr(mock, name) for name in names}
    mock.reset()
    current = getattr(settings, "PAGERO_OAUTH", {}) or {}
    settings.PAGERO_OAUTH = {**current, **pagero_mock_server.settings()}
    from ..oidc import forget_keys

    forget_keys()  # the id_token keys cached by an earlier test may have been rotated since
    try:
        yield pagero_mock_server
    finally:
        for name, value in configuration.items():
            setattr(mock, name, value)
        forget_keys()


@pytest.fixture
def pagero_token_factory(pagero_mock: MockPageroServer, db: None) -> Callable[..., PageroToken]:
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from ..models import PageroToken
    from ..oauth import TokenResponse

    def make(
        user: AbstractBaseUser,
        *,
        expired: bool = False,
        publicid: str = "demo-company",
        **fields: Any,
    ) -> PageroToken:
        response = TokenResponse.from_json(pagero_mock.mock.issue_tokens(publicid=publicid))
        with transaction.atomic():
            token = PageroToken.store_for_user(user, response)
        if expired:
            fields["access_token_expires_at"] = timezone.now() - timedelta(seconds=1)
        for name, value in fields.items():
            setattr(token, name, value)
        if fields:
            token.save()
        return token

    return make
