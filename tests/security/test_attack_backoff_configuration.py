"""Attack: a rejected client credential (``invalid_client``) turns into "try again later".

``tokens._refresh_locked`` starts the refresh back-off after a ``PageroConfigurationError``
too, but while the back-off runs every refresh of that token fails with a *new*
``PageroUnavailable("a refresh failed moments ago")``: the configuration error is rewritten
as a transient outage. So within ``REFRESH_FAILURE_BACKOFF`` seconds of an ``invalid_client``:

- ``retry_if_pagero_unavailable`` (Celery) retries a task the CHANGELOG promises it does not
  retry (a misconfigured site burns its retries and keeps hammering the queue);
- the admin's "Refresh now" says "Pagero is unavailable ... Try again later" (a warning)
  instead of "Pagero rejected this site's client credentials", and does not stop;
- ``pagero_refresh_tokens`` counts it as "unavailable", the ``token_refresh_failed`` signal
  carries ``reason="unavailable"``.

Impact: the operator is told the wrong thing (an outage instead of broken settings) and
automatic retries keep going. Severity: low.

Fix: remember in the back-off entry what kind of failure started it and raise that class
(``PageroConfigurationError`` for a configuration failure) in ``tokens._refresh_locked``.
"""

from __future__ import annotations

from typing import Any

import pytest

from django_pagero_oauth.exceptions import PageroConfigurationError
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
    # Nothing changed at Pagero or in the settings: the site is still misconfigured.
    with pytest.raises(PageroConfigurationError):
        get_valid_token(user)
