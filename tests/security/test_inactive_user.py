"""A deactivated user's Pagero token is never used: no refresh, no API call (item 15).

Deactivating a Django user is how a site locks someone out; their stored three-year Pagero
credential must stop working with them, through every entry point.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from django_pagero_oauth import get_client
from django_pagero_oauth.exceptions import PageroAuthorizationRequired
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import get_valid_token, refresh, refresh_now


def _no_calls(pagero_mock: Any) -> None:
    counts = pagero_mock.mock.counts
    assert counts["refresh_token"] == 0 and counts["api"] == 0


@pytest.fixture
def inactive_user(user: Any) -> Any:
    user.is_active = False
    user.save(update_fields=["is_active"])
    return user


@pytest.mark.parametrize("expired", [False, True], ids=["fresh token", "expired token"])
def test_get_valid_token_refuses(
    inactive_user: Any, pagero_mock: Any, pagero_token_factory: Any, expired: bool
) -> None:
    pagero_token_factory(inactive_user, expired=expired)
    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(inactive_user)
    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(inactive_user, force_refresh=True)
    _no_calls(pagero_mock)


@pytest.mark.parametrize("expired", [False, True], ids=["fresh token", "expired token"])
def test_api_client_makes_no_call(
    inactive_user: Any, pagero_mock: Any, pagero_token_factory: Any, expired: bool
) -> None:
    pagero_token_factory(inactive_user, expired=expired)
    with pytest.raises(PageroAuthorizationRequired):
        get_client(inactive_user).get("v1/me")
    _no_calls(pagero_mock)


def test_user_deactivated_after_loading_is_refused(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    """A long-running job holds a user object loaded before the deactivation: the refresh
    path must look at the database, not only at the stale instance."""
    pagero_token_factory(user, expired=True)
    type(user).objects.filter(pk=user.pk).update(is_active=False)  # ``user`` still says active
    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(user)
    _no_calls(pagero_mock)


def test_refresh_functions_refuse_an_inactive_users_token(
    inactive_user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    """``refresh`` and ``refresh_now`` are public too (admin actions, commands, the API
    client's retry after a 401): they must not use the token either."""
    token = pagero_token_factory(inactive_user, expired=True)
    with pytest.raises(PageroAuthorizationRequired):
        refresh_now(PageroToken.objects.get(pk=token.pk))
    with pytest.raises(PageroAuthorizationRequired):
        refresh(PageroToken.objects.get(pk=token.pk), force=True)
    _no_calls(pagero_mock)


@pytest.mark.parametrize(
    "path", ["/protected/", "/protected-cbv/", "/protected-by-middleware/", "/api-data/"]
)
def test_protected_views_do_not_use_it(
    inactive_user: Any, pagero_mock: Any, pagero_token_factory: Any, client: Client, path: str
) -> None:
    pagero_token_factory(inactive_user, expired=True)
    client.force_login(inactive_user)  # a session that predates the deactivation
    response = client.get(path)
    assert response.status_code in (302, 401, 403)
    assert b"fingerprint" not in response.content
    _no_calls(pagero_mock)
