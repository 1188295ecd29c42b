"""A value the system checks accept must work at run time (checks.py: "a wrong one is reported
here, not met at a user's first login").

- ``REFRESH_TOKEN_LIFETIME_DAYS`` is only checked to be positive (E013). A large value ("the
  refresh token never expires here": 10**7 days, "27,000 years") passes, and then every token answer is
  stored with ``now + timedelta(days=...)``, which overflows (year > 9999). On a refresh that
  happens AFTER Pagero rotated the single-use refresh token: the new one is stored nowhere
  (even the last-resort ``_store_refresh_token_only`` computes the same date) and the user's
  connection is lost for good. ``float("inf")`` even crashes the system checks themselves
  (``int(inf)`` raises OverflowError, which ``_converted`` does not catch).
- ``TIMEOUT = float("inf")`` passes E011, whose hint says "A request to Pagero must never wait
  forever"; on PostgreSQL every refresh then fails in ``locked_row`` (``int(inf * 1000)``).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest

from django_pagero_oauth import checks
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import get_valid_token


def _errors() -> list[Any]:
    return [m for m in checks.run_configuration_checks() if m.is_serious()]


def test_a_long_refresh_token_lifetime_accepted_by_the_checks_keeps_the_connection(
    user: Any, pagero_mock: Any, pagero_token_factory: Any, settings: Any
) -> None:
    stored = pagero_token_factory(user)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REFRESH_TOKEN_LIFETIME_DAYS": 10**7}
    # E013 refuses it now (at most 3650 days); a site whose checks were not run must still
    # keep the connection: the expiry date is held to that bound, never overflows.
    assert "django_pagero_oauth.E013" in [m.id for m in _errors()]

    with contextlib.suppress(OverflowError):  # the crash itself is the lesser problem
        get_valid_token(user, force_refresh=True)
    kept = PageroToken.objects.get(pk=stored.pk)
    assert pagero_mock.mock.counts["refresh_token"] == 1  # Pagero rotated the refresh token
    assert pagero_mock.mock.is_refresh_token_valid(kept.refresh_token), (
        "the refresh token Pagero issued was not stored (the stored one is spent): "
        "the user's connection is lost"
    )


def test_an_infinite_refresh_token_lifetime_is_reported_not_crashing_the_checks(
    settings: Any, db: None
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REFRESH_TOKEN_LIFETIME_DAYS": float("inf")}
    ids = [m.id for m in _errors()]  # raises OverflowError on the current code
    assert "django_pagero_oauth.E013" in ids


def test_an_infinite_timeout_is_refused_by_the_checks(settings: Any, db: None) -> None:
    """E011's own hint: "A request to Pagero must never wait forever"."""
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "TIMEOUT": float("inf")}
    assert "django_pagero_oauth.E011" in [m.id for m in _errors()]


@pytest.mark.parametrize("key", ["TIMEOUT", "REFRESH_TOKEN_LIFETIME_DAYS"])
def test_a_bool_is_not_a_number_of_seconds_or_days(key: str, settings: Any, db: None) -> None:
    """E018 refuses ``True`` for its whole-number settings; the older checks take it as 1."""
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, key: True}
    assert _errors(), f"PAGERO_OAUTH[{key!r}] = True passes the system checks (read as 1)"
