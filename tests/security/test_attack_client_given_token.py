"""Attack: ``get_client(user, token=...)`` uses the given token without looking at the user or
the connection's state, so an inactive user's token (or one marked for re-authorization) is sent
to the API.

``PageroSession.__init__`` only checks ``token.user_id == user.pk``; ``_current_token`` returns
``self._token`` as long as its access token is not expiring, and only then goes through
``get_valid_token`` (which refuses inactive users). The README recommends passing
``token=request.pagero_token`` and jobs naturally pass the row they loaded. SECURITY.rst item 15
promises: "An inactive user's token is never used: no refresh and no API call, through ...
the API client". A job or view that loaded the token, then handles a user deactivated meanwhile
(or a user object loaded with ``is_active=False``), still calls Pagero as that user.

The same holds without ``token=``: ``get_valid_token`` (and so ``get_client(user)``) checks
``is_active`` only on the user object it is given; a long-running job that loaded the user before
the deactivation gets the stored token (and makes the API call) as long as the access token is not
expiring. Only the refresh path re-reads ``is_active`` from the database. Item 15 names exactly
this case ("also when the user was deactivated after a long-running job loaded it"); its test only
covers an expired token.

Impact: a locked-out user's Pagero credential keeps acting on their company's invoicing for up
to the access token's lifetime (10 minutes; a day with a large ``expires_in``) per job.
Severity: low.

Fix (suggested): ``client.PageroSession._current_token`` (and ``__init__``): refuse with
``PageroAuthorizationRequired`` when ``not user.is_active`` or ``token.needs_reauthorization``,
also for a token given to the session, before any request; ``tokens._token_of``: load the token
with ``select_related("user")`` and check the row's ``user.is_active`` (one query, as now).
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
