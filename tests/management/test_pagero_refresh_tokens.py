"""``manage.py pagero_refresh_tokens`` against the real mock server, over real sockets.

Threads use their own database connections, so these tests commit (``transactional_db``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.utils import timezone

from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import Fault

from .conftest import FakeTerminal, Outcome, assert_no_secret

pytestmark = pytest.mark.usefixtures("transactional_db")

COMMAND = "pagero_refresh_tokens"
User = get_user_model()


@pytest.fixture
def make_tokens(pagero_token_factory: Callable[..., PageroToken]) -> Callable[..., list[Any]]:
    """``make_tokens(n, days=10, **fields)``: n users whose refresh token dies in ``days``."""
    counter = iter(range(10**6))

    def make(count: int, days: float = 10, **fields: Any) -> list[PageroToken]:
        made = []
        for _ in range(count):
            user = User.objects.create_user(f"user{next(counter)}", password="pw")
            expires = timezone.now() + timedelta(days=days)
            made.append(pagero_token_factory(user, refresh_token_expires_at=expires, **fields))
        return made

    return make


def reload(token: PageroToken) -> PageroToken:
    return PageroToken.objects.get(pk=token.pk)


def test_refreshes_only_tokens_expiring_within_the_window(
    run_command: Callable[..., Outcome], make_tokens: Any, pagero_mock: Any
) -> None:
    (soon,) = make_tokens(1, days=10)
    (later,) = make_tokens(1, days=100)
    (dead,) = make_tokens(1, days=10, status=PageroToken.Status.REAUTHORIZATION_REQUIRED)
    result = run_command(COMMAND, "--within-days", "30")
    assert result.code == 0, result
    assert pagero_mock.mock.counts["refresh_token"] == 1
    fresh = reload(soon)
    assert fresh.fingerprint != soon.fingerprint
    assert fresh.refresh_token_expires_at > timezone.now() + timedelta(days=3 * 365 - 1)
    assert pagero_mock.mock.is_refresh_token_valid(fresh.refresh_token)
    assert reload(later).fingerprint == later.fingerprint
    assert reload(dead).fingerprint == dead.fingerprint
    assert "Refreshed 1 of 1 Pagero token in" in result.out
    assert "1 token needs re-authorization" in result.out
    assert "\r" not in result.out  # no progress when not on a terminal


def test_all_refreshes_every_active_token_of_an_active_user(
    run_command: Callable[..., Outcome], make_tokens: Any, pagero_mock: Any
) -> None:
    tokens = make_tokens(2, days=10) + make_tokens(2, days=900)
    make_tokens(1, days=-1)  # refresh token expired: cannot be refreshed
    inactive = make_tokens(1)[0]
    User.objects.filter(pk=inactive.user_id).update(is_active=False)
    result = run_command(COMMAND, "--all")
    assert result.code == 0, result
    assert pagero_mock.mock.counts["refresh_token"] == 4
    assert all(reload(t).fingerprint != t.fingerprint for t in tokens)
    assert reload(inactive).fingerprint == inactive.fingerprint


def test_concurrent_run_refreshes_each_token_exactly_once(
    run_command: Callable[..., Outcome], make_tokens: Any, pagero_mock: Any
) -> None:
    tokens = make_tokens(40)
    result = run_command(COMMAND, "--concurrency", "16")
    assert result.code == 0, result
    counts = pagero_mock.mock.counts
    assert counts["refresh_token"] == 40 and counts["refresh_token_failed"] == 0
    for token in tokens:
        assert pagero_mock.mock.is_refresh_token_valid(reload(token).refresh_token)
    assert "Refreshed 40 of 40" in result.out


def test_some_failures_exit_1_and_keep_the_tokens(
    run_command: Callable[..., Outcome], make_tokens: Any, pagero_mock: Any
) -> None:
    tokens = make_tokens(3)
    pagero_mock.mock.add_fault(Fault("token", grant_type="refresh_token", status=503))
    result = run_command(COMMAND, "--concurrency", "1")
    assert result.code == 1, result
    assert "Refreshed 2 of 3" in result.out and "Failed: Pagero unavailable (1)." in result.out
    assert "Pagero is unavailable (HTTP 503); the token was kept" in result.err
    unchanged = [t for t in tokens if reload(t).refresh_token == t.refresh_token]
    assert len(unchanged) == 1
    assert pagero_mock.mock.is_refresh_token_valid(unchanged[0].refresh_token)
    assert_no_secret(result.text, *(t.refresh_token for t in tokens))


def test_a_rejected_refresh_token_is_a_failure_and_is_marked(
    run_command: Callable[..., Outcome], make_tokens: Any, pagero_mock: Any
) -> None:
    (token,) = make_tokens(1)
    pagero_mock.mock.reset()  # Pagero no longer knows the refresh token
    result = run_command(COMMAND)
    assert result.code == 1, result
    assert "needs re-authorization (invalid_grant)" in result.err
    assert reload(token).needs_reauthorization


def test_an_undecryptable_token_fails_alone(
    run_command: Callable[..., Outcome], make_tokens: Any, pagero_mock: Any, settings: Any
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": [old]}
    (lost,) = make_tokens(1)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": [new]}
    readable = make_tokens(2)
    result = run_command(COMMAND, "--concurrency", "1")
    assert result.code == 1, result
    assert "Refreshed 2 of 3" in result.out and "Failed: cannot be decrypted (1)." in result.out
    # The row still loads (only its tokens cannot be read): it is named like any other.
    assert f"user #{lost.user_id} (fingerprint {lost.fingerprint}): " in result.err
    assert "cannot be decrypted" in result.err
    assert all(reload(t).fingerprint != t.fingerprint for t in readable)
    assert pagero_mock.mock.counts["refresh_token"] == 2


def test_rejected_client_credentials_stop_the_run_with_exit_2(
    run_command: Callable[..., Outcome], make_tokens: Any, pagero_mock: Any, settings: Any
) -> None:
    tokens = make_tokens(5)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "CLIENT_SECRET": "wrong-secret"}
    result = run_command(COMMAND, "--concurrency", "1")
    assert result.code == 2, result
    assert pagero_mock.mock.counts["refresh_token"] == 1  # the others were not tried
    assert "4 tokens were not tried" in result.err
    assert all(reload(t).refresh_token == t.refresh_token for t in tokens)
    assert "wrong-secret" not in result.text


def test_configuration_error_exits_2_before_any_request(
    run_command: Callable[..., Outcome], make_tokens: Any, pagero_mock: Any, settings: Any
) -> None:
    make_tokens(1)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "CLIENT_ID": ""}
    result = run_command(COMMAND)
    assert result.code == 2, result
    assert "django_pagero_oauth.E001" in result.err
    assert pagero_mock.mock.counts["refresh_token"] == 0


def test_dry_run_makes_no_request(
    run_command: Callable[..., Outcome], make_tokens: Any, pagero_mock: Any
) -> None:
    make_tokens(2)
    result = run_command(COMMAND, "--dry-run")
    assert result.code == 0 and "Would refresh 2 Pagero tokens." in result.out
    assert pagero_mock.mock.counts["refresh_token"] == 0


def test_progress_only_on_a_terminal(
    run_command: Callable[..., Outcome],
    make_tokens: Any,
    pagero_mock: Any,
    terminal: FakeTerminal,
) -> None:
    make_tokens(2)
    result = run_command(COMMAND, stdout=terminal)
    assert result.code == 0
    assert "\rRefreshing Pagero tokens: 2/2" in result.out
    assert result.out.rstrip().splitlines()[-1].startswith("Refreshed 2 of 2")


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["--within-days", "5", "--all"], 2),
        (["--within-days", "-1"], 2),
        (["--concurrency", "0"], 2),
        (["--concurrency", "many"], 2),
        (["--all"], 0),
    ],
)
def test_exit_codes_from_the_command_line(
    run_cli: Callable[..., Outcome], pagero_mock: Any, argv: list[str], code: int
) -> None:
    result = run_cli(COMMAND, *argv)
    assert result.code == code, result
    if code == 0:
        assert "Refreshed 0 of 0" in result.out


def test_exit_1_from_the_command_line(
    run_cli: Callable[..., Outcome], make_tokens: Any, pagero_mock: Any
) -> None:
    make_tokens(1)
    pagero_mock.mock.add_fault(Fault("token", drop=True))
    result = run_cli(COMMAND)
    assert result.code == 1, result
    assert "1 of 1 Pagero token could not be refreshed" in result.err
