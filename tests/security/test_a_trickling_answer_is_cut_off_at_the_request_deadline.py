"""A token request whose answer trickles in (each byte within ``TIMEOUT``) is cut off at
``oauth.request_deadline()``, wall clock: its sockets are shut down and the refresh fails as
unavailable, the stored token kept, instead of holding the lease for as long as the answer
takes. Real sockets: the trickling proxy (``proxy``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from django_pagero_oauth import oauth
from django_pagero_oauth.exceptions import PageroUnavailable
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import get_valid_token

from .refresh_helpers import TricklingProxy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def short_deadline(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(oauth, "request_deadline", lambda: 2.0)
    yield


def test_a_trickling_answer_is_cut_off_at_the_request_deadline(
    user: Any,
    pagero_mock: Any,
    pagero_token_factory: Any,
    proxy: TricklingProxy,
    short_deadline: Any,
) -> None:
    token = pagero_token_factory(user, expired=True)

    with pytest.raises(PageroUnavailable) as raised:
        get_valid_token(user)

    assert proxy.trickling.is_set(), "the answer did not trickle"
    assert not proxy.release.is_set()
    assert "did not answer in time" in str(raised.value)
    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.refresh_token == token.refresh_token
    assert stored.refresh_lease_until is None
