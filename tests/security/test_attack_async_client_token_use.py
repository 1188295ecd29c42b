"""Attack: the async client (``aget_client``) sends a token that the sync client refuses.

SECURITY.rst item 15 promises that "a token given to the client (``get_client(user,
token=...)``) is refused for an inactive user (the object given, or the one loaded with the
token) and for a connection that needs re-authorization", and item 36 that the async client
"keeps the same promises". ``PageroSession._current_token`` checks ``_may_use`` on a token it
holds; ``AsyncPageroClient._current_token`` does not: a fresh access token handed to
``aget_client(user, token=...)`` (the README's ``token=request.pagero_token``, or a job's
loaded row) goes to the API for a user an administrator deactivated, or for a connection that
was marked dead (``invalid_grant``, revoked), for up to ten minutes.

Severity: medium (a deactivated user's, or a revoked connection's, credential keeps acting on
the company's invoicing through every async view or job that holds the row).
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
def test_async_client_does_not_send_a_given_token_the_user_may_not_use(
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


def test_async_client_does_not_send_a_token_loaded_with_its_deactivated_user(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    pagero_token_factory(user)
    type(user).objects.filter(pk=user.pk).update(is_active=False)  # ``user`` still says active
    token = PageroToken.objects.select_related("user").get(user=user)

    with pytest.raises(PageroAuthorizationRequired):
        async_to_sync(_call)(user, token)
    assert pagero_mock.mock.counts["api"] == 0
