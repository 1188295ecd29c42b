"""``manage.py pagero_prune_tokens``: dead connections go, live ones stay."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.utils import timezone

from django_pagero_oauth.management.commands.pagero_prune_tokens import Command
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.signals import token_revoked

from .conftest import FakeTerminal, Outcome

COMMAND = "pagero_prune_tokens"
User = get_user_model()


@pytest.fixture
def population(pagero_token_factory: Callable[..., PageroToken]) -> dict[str, PageroToken]:
    """One token in each state."""
    now = timezone.now()

    def make(name: str, **fields: Any) -> PageroToken:
        return pagero_token_factory(User.objects.create_user(name, password="pw"), **fields)

    return {
        "valid": make("valid"),
        "access_expired": make("access_expired", expired=True),
        "expiring": make("expiring", refresh_token_expires_at=now + timedelta(days=3)),
        "reauthorization": make(
            "reauthorization", status=PageroToken.Status.REAUTHORIZATION_REQUIRED
        ),
        "refresh_expired": make("refresh_expired", refresh_token_expires_at=now),
    }


DEAD = {"reauthorization", "refresh_expired"}


def remaining() -> set[str]:
    return set(PageroToken.objects.values_list("user__username", flat=True))


@pytest.fixture
def revoked_signals() -> Any:
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    token_revoked.connect(receiver)
    yield received
    token_revoked.disconnect(receiver)


def test_deletes_only_dead_tokens_and_signals_each(
    run_command: Callable[..., Outcome],
    population: dict[str, PageroToken],
    revoked_signals: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        result = run_command(COMMAND)
    assert result.code == 0, result
    assert remaining() == set(population) - DEAD
    assert "Deleted 2 Pagero tokens" in result.out
    assert {signal["user"].username for signal in revoked_signals} == DEAD
    assert all(signal["remote"] is False for signal in revoked_signals)
    assert {signal["token"].pk for signal in revoked_signals} == {
        population[name].pk for name in DEAD
    }


def test_dry_run_deletes_nothing_and_lists_at_verbosity_2(
    run_command: Callable[..., Outcome], population: dict[str, PageroToken]
) -> None:
    result = run_command(COMMAND, "--dry-run", "--verbosity", "2")
    assert result.code == 0, result
    assert remaining() == set(population)
    assert "Would delete 2 Pagero tokens" in result.out
    for name in DEAD:
        assert population[name].fingerprint in result.out
    assert population["valid"].fingerprint not in result.out
    assert "needs re-authorization" in result.out and "refresh token expired" in result.out


def test_prunes_even_when_the_keys_cannot_decrypt_the_rows(
    run_command: Callable[..., Outcome], population: dict[str, PageroToken], settings: Any
) -> None:
    settings.PAGERO_OAUTH = {
        **settings.PAGERO_OAUTH,
        "ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
    }
    result = run_command(COMMAND)
    assert result.code == 0, result
    assert remaining() == set(population) - DEAD


def test_a_token_renewed_meanwhile_is_kept(population: dict[str, PageroToken]) -> None:
    listed = list(PageroToken.objects.needing_reauthorization().select_related("user"))
    renewed = population["reauthorization"]
    PageroToken.objects.filter(pk=renewed.pk).update(status=PageroToken.Status.ACTIVE)
    assert Command().delete_batch(listed) == 1
    assert remaining() == set(population) - {"refresh_expired"}


def test_many_tokens_in_batches_with_progress_on_a_terminal(
    run_command: Callable[..., Outcome], db: None, terminal: FakeTerminal, monkeypatch: Any
) -> None:
    from django_pagero_oauth.management.commands import pagero_prune_tokens

    monkeypatch.setattr(pagero_prune_tokens, "BATCH_SIZE", 7)
    now = timezone.now()
    users = User.objects.bulk_create([User(username=f"dead{i}") for i in range(30)])
    PageroToken.objects.bulk_create(
        PageroToken(
            user=user,
            access_token="a" * 20,
            refresh_token="r" * 20,
            access_token_issued_at=now,
            access_token_expires_at=now,
            refresh_token_expires_at=now - timedelta(days=i % 3),
        )
        for i, user in enumerate(users)
    )
    result = run_command(COMMAND, stdout=terminal)
    assert result.code == 0, result
    assert "\rPruning Pagero tokens: 30/30" in result.out
    assert "Deleted 30 Pagero tokens" in result.out
    assert not PageroToken.objects.exists()


def test_nothing_to_prune(run_command: Callable[..., Outcome], db: None) -> None:
    result = run_command(COMMAND)
    assert result.code == 0 and "Deleted 0 Pagero tokens" in result.out
    assert "\r" not in result.out


def test_exit_codes_from_the_command_line(
    run_cli: Callable[..., Outcome], pagero_token_factory: Any
) -> None:
    assert run_cli(COMMAND, "--dry-run").code == 0
    assert run_cli(COMMAND, "--unknown-option").code == 2


# --- --undecryptable ------------------------------------------------------------------------


@pytest.fixture
def lost_keys(
    settings: Any, population: dict[str, PageroToken], pagero_token_factory: Any
) -> dict[str, PageroToken]:
    """Besides ``population`` (written with the key in force): a token written with a key that
    is gone, and one holding bare Fernet tokens of the key in force (bound to no row)."""
    from django_pagero_oauth import crypto

    lost_key, key = Fernet.generate_key().decode(), Fernet.generate_key().decode()

    def use(*keys: str) -> None:
        settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": list(keys)}

    def make(name: str) -> PageroToken:
        return pagero_token_factory(User.objects.create_user(name, password="pw"))

    use(lost_key)
    made = {"lost": make("lost")}
    use(key)
    made["unbound"] = make("unbound")
    PageroToken.objects.filter(pk=made["unbound"].pk).update(
        **{
            name: crypto.Ciphertext(
                Fernet(key.encode()).encrypt(getattr(made["unbound"], name).encode()).decode()
            )
            for name in ("access_token", "refresh_token")
        }
    )
    for token in population.values():  # readable with the key in force, too
        token.save()  # their tokens are in memory: written again under ``key``
    return made


UNDECRYPTABLE = {"lost", "unbound"}


def test_undecryptable_tokens_are_deleted_only_when_asked(
    run_command: Callable[..., Outcome],
    population: dict[str, PageroToken],
    lost_keys: dict[str, PageroToken],
    revoked_signals: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    everyone = set(population) | set(lost_keys)
    result = run_command(COMMAND, "--dry-run")
    assert "Would delete 2 Pagero tokens that need" in result.out
    assert "cannot be decrypted" not in result.out and remaining() == everyone

    result = run_command(COMMAND, "--undecryptable", "--dry-run", "--verbosity", "2")
    assert result.code == 0, result
    assert remaining() == everyone
    assert "Would delete 2 Pagero tokens that cannot be decrypted with the configured keys." in (
        result.out
    )
    for name in UNDECRYPTABLE:
        assert (
            f"user #{lost_keys[name].user_id} (fingerprint {lost_keys[name].fingerprint}): "
            "cannot be decrypted with the configured keys" in result.out
        )

    with django_capture_on_commit_callbacks(execute=True):
        result = run_command(COMMAND, "--undecryptable")
    assert result.code == 0, result
    assert "Deleted 2 Pagero tokens that could not be decrypted" in result.out
    assert remaining() == everyone - DEAD - UNDECRYPTABLE
    assert {signal["user"].username for signal in revoked_signals} == DEAD | UNDECRYPTABLE


def test_an_undecryptable_token_replaced_meanwhile_is_kept(
    population: dict[str, PageroToken],
    lost_keys: dict[str, PageroToken],
    pagero_token_factory: Any,
) -> None:
    command = Command()
    found = list(PageroToken.objects.undecryptable().defer("id_token"))
    assert {token.user.username for token in found} == UNDECRYPTABLE
    pagero_token_factory(lost_keys["lost"].user)  # the user connected again
    assert command.delete_batch(found, command.still_undecryptable) == 1
    assert remaining() == set(population) | set(lost_keys) - {"unbound"}


def test_an_undecryptable_token_without_an_access_token_is_deleted_too(
    population: dict[str, PageroToken], lost_keys: dict[str, PageroToken]
) -> None:
    """A row stored from a rotated answer whose access token was dropped holds ``""`` there:
    it is still undecryptable (its refresh token) and pruned, not taken for a reconnect."""
    PageroToken.objects.filter(pk=lost_keys["lost"].pk).update(access_token="")
    command = Command()
    found = list(PageroToken.objects.undecryptable().defer("id_token"))
    assert lost_keys["lost"].pk in {token.pk for token in found}
    assert command.delete_batch(found, command.still_undecryptable) == len(UNDECRYPTABLE)
    assert not UNDECRYPTABLE & remaining()
