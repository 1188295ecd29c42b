"""The async client refuses a token it is given that the user may no longer use.

``aget_client(user, token=...)`` (the README's ``token=request.pagero_token``, or a job's loaded
row) is checked as ``get_client`` checks it (SECURITY.rst item 15). What this proves, counted
at the mock:

- a fresh access token given for a user an administrator deactivated, or for a connection
  marked dead (``invalid_grant``, revoked), raises ``PageroAuthorizationRequired`` and no
  request reaches the API;
- so does a token loaded with ``select_related("user")`` whose user was deactivated in the
  database while the ``user`` object in hand still says active.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync

from django_pagero_oauth import aget_client
from django_pagero_oauth.exceptions import PageroAuthorizationRequired
from django_pagero_oauth.models import PageroToken

pytestmark = pytest.mark.django_db(transaction=True)


async def _call(user: Any, token: PageroToken) -> int:
    async with aget_client(user, token=token) as client:
        response = await client.get("v1/me")
        return response.status_code


@pytest.mark.parametrize("state", ["inactive user", "needs re-authorization"])
def test_a_given_token_the_user_may_not_use_is_refused(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, state: str
) -> None:
    token = pagero_token_factory(user)  # a fresh access token: no refresh needed
    if state == "inactive user":
        user.is_active = False
        user.save(update_fields=["is_active"])
    else:
        token.mark_reauthorization_required("invalid_grant")
    token = PageroToken.objects.get(pk=token.pk)

    with pytest.raises(PageroAuthorizationRequired):
        async_to_sync(_call)(user, token)
    assert pagero_mock.mock.counts["api"] == 0


def test_a_token_loaded_with_its_deactivated_user_is_refused(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    pagero_token_factory(user)
    type(user).objects.filter(pk=user.pk).update(is_active=False)  # ``user`` still says active
    token = PageroToken.objects.select_related("user").get(user=user)

    with pytest.raises(PageroAuthorizationRequired):
        async_to_sync(_call)(user, token)
    assert pagero_mock.mock.counts["api"] == 0
