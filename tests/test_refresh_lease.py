"""The refresh lease (``django_pagero_oauth.lease``) as another host sees it.

A refresh in flight is recorded on the token row (``refresh_lease_until``, ``refresh_lease_owner``)
in a committed transaction, so every process and host sees it. Here the lease of "another host"
is written straight into the row: a caller whose access token still works uses it and leaves the
lease alone; a caller whose token has expired waits for the lease, and takes over when it runs
out (its holder died).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_pagero_oauth import lease
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import get_valid_token

pytestmark = pytest.mark.django_db(transaction=True)


def _lease_elsewhere(token: PageroToken, seconds: float) -> None:
    PageroToken.objects.filter(pk=token.pk).update(
        refresh_lease_until=timezone.now() + timedelta(seconds=seconds),
        refresh_lease_owner="another-host",
    )


def _inside_the_leeway(token: PageroToken) -> None:
    now = timezone.now()
    PageroToken.objects.filter(pk=token.pk).update(
        access_token_issued_at=now - timedelta(seconds=595),
        access_token_expires_at=now + timedelta(seconds=5),
    )


def test_a_caller_whose_token_works_leaves_a_lease_held_elsewhere_alone(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)
    _inside_the_leeway(token)
    _lease_elsewhere(token, 30)

    got = get_valid_token(user)

    assert got.access_token == token.access_token
    assert pagero_mock.mock.counts["refresh_token"] == 0
    assert PageroToken.objects.get(pk=token.pk).refresh_lease_owner == "another-host"


def test_a_lease_that_ran_out_is_taken_over(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    """Its holder died between taking it and storing an answer."""
    token = pagero_token_factory(user, expired=True)
    _lease_elsewhere(token, -1)

    got = get_valid_token(user)

    assert got.refresh_token == pagero_mock.mock.issued_refresh_tokens[-1]
    assert pagero_mock.mock.counts["refresh_token"] == 1
    stored = PageroToken.objects.get(pk=token.pk)
    assert stored.refresh_lease_until is None and stored.refresh_lease_owner == ""


def test_an_expired_token_waits_for_a_running_lease_and_takes_over_when_it_runs_out(
    user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user, expired=True)
    _lease_elsewhere(token, 0.5)  # its holder is gone: nobody will end it
    ran_out = PageroToken.objects.get(pk=token.pk).refresh_lease_until

    got = get_valid_token(user)

    # Not refreshed beside the running lease (the mock would see two refreshes, or one with a
    # spent token), but after it ran out.
    assert pagero_mock.mock.counts["refresh_token"] == 1
    assert got.refresh_token == pagero_mock.mock.issued_refresh_tokens[-1]
    assert PageroToken.objects.get(pk=token.pk).last_refreshed >= ran_out


def test_the_lease_outlasts_a_token_request() -> None:
    """Connect and answer each within TIMEOUT, and the body read within TIMEOUT too."""
    from django_pagero_oauth.conf import app_settings

    assert lease.lease_seconds() > 3 * app_settings.TIMEOUT
