"""The API client sends no token of an inactive user or of a connection that must be renewed.

``get_client(user, token=...)`` (the README recommends ``token=request.pagero_token``; jobs pass
the row they loaded) and ``get_client(user)`` in a long-running job that loaded the user before
an administrator deactivated it. What this proves (SECURITY.rst item 15):

- a token given to the client is refused (``PageroAuthorizationRequired``, no API request) when
  the user object, or the user loaded with the token, is inactive, or the token needs
  re-authorization, even while its access token is fresh;
- without a token, the client re-reads ``is_active`` with the token row (a join: still one
  query), so a stale user object does not help.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pagero_oauth import get_client
from django_pagero_oauth.exceptions import PageroAuthorizationRequired
from django_pagero_oauth.models import PageroToken


@pytest.mark.parametrize("state", ["inactive user", "needs re-authorization"])
def test_a_token_given_to_the_client_is_not_used_for_a_user_who_may_not_use_it(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, state: str
) -> None:
    token = pagero_token_factory(user)
    if state == "inactive user":
        user.is_active = False
        user.save(update_fields=["is_active"])
    else:
        token.mark_reauthorization_required("invalid_grant")
    token = PageroToken.objects.get(pk=token.pk)

    with pytest.raises(PageroAuthorizationRequired):
        get_client(user, token=token).get("v1/me")
    assert pagero_mock.mock.counts["api"] == 0


def test_a_job_holding_a_user_loaded_before_the_deactivation_makes_no_api_call(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    pagero_token_factory(user)  # a fresh access token: no refresh needed
    type(user).objects.filter(pk=user.pk).update(is_active=False)  # ``user`` still says active

    with pytest.raises(PageroAuthorizationRequired):
        get_client(user).get("v1/me")
    assert pagero_mock.mock.counts["api"] == 0


def test_a_token_loaded_with_its_deactivated_user_is_refused_even_for_a_stale_user_object(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    pagero_token_factory(user)
    type(user).objects.filter(pk=user.pk).update(is_active=False)  # ``user`` still says active
    token = PageroToken.objects.select_related("user").get(user=user)

    with pytest.raises(PageroAuthorizationRequired):
        get_client(user, token=token).get("v1/me")
    assert pagero_mock.mock.counts["api"] == 0


def test_checking_the_rows_user_costs_no_extra_query(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, django_assert_num_queries: Any
) -> None:
    pagero_token_factory(user)
    with django_assert_num_queries(1):
        get_client(user).get("v1/me")
    assert pagero_mock.mock.counts["api"] == 1
