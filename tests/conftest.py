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
def user_client(client: Any, user: Any) -> Any:
    client.force_login(user)
    return client
