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

Impact: a locked-out user's Pagero credential keeps acting on their company's invoicing for up
to the access token's lifetime (10 minutes; a day with a large ``expires_in``) per job.
Severity: low.

Fix (suggested): ``client.PageroSession._current_token`` (and ``__init__``): refuse with
``PageroAuthorizationRequired`` when ``not user.is_active`` or ``token.needs_reauthorization``,
also for a token given to the session, before any request.
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
