"""PageroModelBackend: the token comes with the user, so a protected request makes no query
of its own, and nothing about the token's freshness or single-flight refreshing changes."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model

from django_pagero_oauth.backends import PageroModelBackend
from django_pagero_oauth.exceptions import PageroAuthorizationRequired
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import get_valid_token

BACKEND = "django_pagero_oauth.backends.PageroModelBackend"


@pytest.fixture
def with_backend(settings: Any) -> None:
    settings.AUTHENTICATION_BACKENDS = [BACKEND]


def test_get_user_loads_the_token_in_the_same_query(
    user, pagero_mock, pagero_token_factory, django_assert_num_queries
):
    stored = pagero_token_factory(user)
    with django_assert_num_queries(1):
        loaded = PageroModelBackend().get_user(user.pk)
        token = get_valid_token(loaded)
    assert token.access_token == stored.access_token
    assert pagero_mock.mock.counts["refresh_token"] == 0


def test_a_user_without_token_is_told_so_without_a_query(user, django_assert_num_queries):
    loaded = PageroModelBackend().get_user(user.pk)
    with django_assert_num_queries(0), pytest.raises(PageroAuthorizationRequired):
        get_valid_token(loaded)


def test_an_expiring_preloaded_token_is_refreshed_once_and_the_cache_updated(
    user, pagero_mock, pagero_token_factory, django_assert_num_queries
):
    pagero_token_factory(user, expired=True)
    loaded = PageroModelBackend().get_user(user.pk)

    first = get_valid_token(loaded)
    with django_assert_num_queries(0):
        second = get_valid_token(loaded)

    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert second.access_token == first.access_token
    assert PageroToken.objects.get(user=user).refresh_token == first.refresh_token


def test_only_users_the_backend_loaded_trust_a_cached_token(
    user, pagero_token_factory, pagero_mock, django_assert_num_queries
):
    """Any other user object may hold a token assigned long ago: it is read again."""
    pagero_token_factory(user)  # assigning token.user fills user's reverse cache
    PageroToken.objects.filter(user=user).update(status=PageroToken.Status.REAUTHORIZATION_REQUIRED)
    with django_assert_num_queries(1), pytest.raises(PageroAuthorizationRequired):
        get_valid_token(user)


def test_inactive_users_are_not_loaded(user, db):
    get_user_model().objects.filter(pk=user.pk).update(is_active=False)
    assert PageroModelBackend().get_user(user.pk) is None


def test_a_protected_request_makes_no_query_of_its_own(
    with_backend, client, user, pagero_mock, pagero_token_factory, django_assert_num_queries
):
    pagero_token_factory(user)
    client.force_login(user, backend=BACKEND)
    with django_assert_num_queries(2):  # the session, and the user with the token
        response = client.get("/protected/")
    assert response.status_code == 200


def test_without_the_backend_a_protected_request_makes_one_query(
    client, user, pagero_mock, pagero_token_factory, django_assert_num_queries
):
    pagero_token_factory(user)
    client.force_login(user)
    with django_assert_num_queries(3):  # the session, the user, the token
        response = client.get("/protected/")
    assert response.status_code == 200
