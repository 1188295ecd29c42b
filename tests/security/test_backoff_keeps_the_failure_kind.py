"""What this proves: during the refresh back-off that an ``invalid_client`` started, every
refresh of that token fails as a ``PageroConfigurationError`` again, not as a new
``PageroUnavailable`` ("try again later").

The back-off entry remembers what kind of failure started it, so within
``REFRESH_FAILURE_BACKOFF`` seconds of rejected client credentials Celery does not retry, the
admin says the credentials were rejected, ``pagero_refresh_tokens`` counts a configuration
failure and stops, and a transient outage still backs off as one. Pagero is asked once.
(Found by the second security review, finding 4.)
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pagero_oauth.exceptions import PageroConfigurationError, PageroUnavailable
from django_pagero_oauth.testing.mock import Fault
from django_pagero_oauth.tokens import get_valid_token


def test_refresh_during_the_backoff_after_invalid_client_is_still_a_configuration_error(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REFRESH_FAILURE_BACKOFF": 60}
    pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(
        Fault(
            endpoint="token",
            grant_type="refresh_token",
            status=401,
            body='{"error": "invalid_client"}',
            times=5,
        )
    )

    with pytest.raises(PageroConfigurationError):
        get_valid_token(user)
    assert pagero_mock.mock.counts["refresh_token"] == 1
    # Nothing changed at Pagero or in the settings: the site is still misconfigured.
    with pytest.raises(PageroConfigurationError):
        get_valid_token(user)
    assert pagero_mock.mock.counts["refresh_token"] == 1  # the back-off held


def test_refresh_during_the_backoff_after_an_outage_is_still_unavailable(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REFRESH_FAILURE_BACKOFF": 60}
    pagero_token_factory(user, expired=True)
    pagero_mock.mock.add_fault(
        Fault(endpoint="token", grant_type="refresh_token", status=503, times=5)
    )

    with pytest.raises(PageroUnavailable):
        get_valid_token(user)
    with pytest.raises(PageroUnavailable) as info:
        get_valid_token(user)
    assert info.value.retry_after is not None
    assert pagero_mock.mock.counts["refresh_token"] == 1
