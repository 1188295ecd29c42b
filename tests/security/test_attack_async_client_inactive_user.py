"""Attack: the async API client still sends the token of an inactive user, or of a
connection marked for re-authorization (the ``client._may_use`` fix was not carried over).

SECURITY.rst item 15 / ``test_client_inactive_user.py``: a token given to the client
(``token=request.pagero_token``, or the row a job loaded) is refused when the user (or the
user loaded with the token) is inactive or the token needs re-authorization, even while its
access token is fresh. ``PageroSession._current_token`` checks ``_may_use``;
``AsyncPageroClient._current_token`` (``aclient.py``) does not: it uses any held token whose
access token is not expiring. So an async view or job that an administrator's deactivation
(an employee leaving, a compromised account) should stop keeps acting on the company's
Pagero invoicing with that user's token for up to the access token's lifetime, and a
connection that Pagero refused (``invalid_grant``) keeps being used.

Severity: medium (the documented guarantee does not hold for ``aget_client``; bounded by the
access token lifetime, 600 s at Pagero, per held client/token).

Fix: in ``aclient.AsyncPageroClient._current_token``, apply ``client._may_use(self.user,
token)`` to a held token as ``PageroSession._current_token`` does (drop it and raise
``PageroAuthorizationRequired``).
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync

from django_pagero_oauth.aclient import aget_client
from django_pagero_oauth.exceptions import PageroAuthorizationRequired
from django_pagero_oauth.models import PageroToken


def _aget(user: Any, token: Any, url: str) -> Any:
    async def call() -> Any:
        async with aget_client(user, token=token) as client:
            return await client.get(url)

    return async_to_sync(call)()


@pytest.mark.parametrize("state", ["inactive user", "needs re-authorization", "stale user"])
def test_a_token_given_to_the_async_client_is_not_used_for_a_user_who_may_not_use_it(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, state: str
) -> None:
    token = pagero_token_factory(user)
    if state == "inactive user":
        user.is_active = False
        user.save(update_fields=["is_active"])
    elif state == "stale user":
        type(user).objects.filter(pk=user.pk).update(is_active=False)  # ``user`` says active
    else:
        token.mark_reauthorization_required("invalid_grant")
    token = PageroToken.objects.select_related("user").get(pk=token.pk)

    with pytest.raises(PageroAuthorizationRequired):
        _aget(user, token, "v1/me")
    assert pagero_mock.mock.counts["api"] == 0
