"""Tests of ``models.py``: PageroToken's storage (encrypted at rest) and behaviour."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.db import close_old_connections, connection, connections, transaction
from django.utils import timezone
from django.utils.functional import Promise

from django_pagero_oauth.crypto import fingerprint
from django_pagero_oauth.exceptions import InvalidTokenResponse, TokenDecryptionError
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.oauth import TokenResponse
from django_pagero_oauth.testing.mock import MockPageroServer

TOKEN_COLUMNS = ("access_token", "refresh_token", "id_token")


def response_from(mock_server: MockPageroServer, **kwargs: Any) -> TokenResponse:
    return TokenResponse.from_json(mock_server.mock.issue_tokens(**kwargs))


def store(user: Any, response: TokenResponse) -> PageroToken:
    with transaction.atomic():
        return PageroToken.store_for_user(user, response)


def raw_columns(pk: int) -> dict[str, str]:
    """The token columns exactly as the database holds them."""
    table = connection.ops.quote_name(PageroToken._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(name) for name in TOKEN_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {columns} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        row = cursor.fetchone()
    return dict(zip(TOKEN_COLUMNS, row, strict=True))


# --- what the database holds ------------------------------------------------------------


def test_no_plaintext_token_in_the_database(user: Any, pagero_mock: MockPageroServer) -> None:
    response = response_from(pagero_mock, scope="all openid")
    token = store(user, response)
    raw = raw_columns(token.pk)
    plain = {
        "access_token": response.access_token,
        "refresh_token": response.refresh_token,
        "id_token": response.id_token,
    }
    assert all(plain.values())
    for column, value in raw.items():
        assert value.startswith("pgo2$") and "$gAAAAA" in value, column  # a bound Fernet token
        for secret in plain.values():
            assert secret not in value
            assert secret[-16:] not in value
    reloaded = PageroToken.objects.get(pk=token.pk)
    assert {name: getattr(reloaded, name) for name in TOKEN_COLUMNS} == plain


def test_tokens_are_not_searchable_in_clear(user: Any, pagero_token_factory: Any) -> None:
    token = pagero_token_factory(user)
    with pytest.raises(TypeError, match="cannot be searched"):
        PageroToken.objects.filter(refresh_token=token.refresh_token).exists()
    assert PageroToken.objects.filter(fingerprint=fingerprint(token.refresh_token)).exists()


def test_rows_written_under_an_old_key_stay_readable(
    user: Any, pagero_token_factory: Any, settings: Any
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": [old]}
    token = pagero_token_factory(user)
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": [new, old]}
    reloaded = PageroToken.objects.get(pk=token.pk)
    assert reloaded.refresh_token == token.refresh_token
    reloaded.save()  # written again: under the new key
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": [new]}
    assert PageroToken.objects.get(pk=token.pk).access_token == token.access_token


def test_rows_survive_secret_key_rotation(
    user: Any, pagero_token_factory: Any, settings: Any
) -> None:
    settings.SECRET_KEY = "the-old-secret-key-" + "x" * 40
    settings.SECRET_KEY_FALLBACKS = []
    token = pagero_token_factory(user)
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = (
        "a-new-secret-key-" + "y" * 40,
        [settings.SECRET_KEY],
    )
    assert PageroToken.objects.get(pk=token.pk).refresh_token == token.refresh_token
    settings.SECRET_KEY_FALLBACKS = []
    lost = PageroToken.objects.get(pk=token.pk)  # loads: only reading a token decrypts
    with pytest.raises(TokenDecryptionError):
        lost.refresh_token  # noqa: B018


def test_str_and_repr_show_no_token(user: Any, pagero_mock: MockPageroServer) -> None:
    token = store(user, response_from(pagero_mock, scope="all openid"))
    texts = [str(token), repr(token), f"{token!s} {token!r}"]
    for text in texts:
        for name in TOKEN_COLUMNS:
            assert getattr(token, name) not in text
            assert getattr(token, name)[:20] not in text
    assert str(user.pk) in str(token)
    assert token.fingerprint in repr(token)


def test_every_label_is_translatable() -> None:
    assert isinstance(PageroToken._meta.verbose_name, Promise)
    assert isinstance(PageroToken._meta.verbose_name_plural, Promise)
    for field in PageroToken._meta.get_fields():
        if field.concrete and not field.auto_created:
            assert isinstance(field.verbose_name, Promise), field.name
        if getattr(field, "help_text", ""):
            assert isinstance(field.help_text, Promise), field.name
    for _, label in PageroToken.Status.choices:
        assert isinstance(label, Promise)


# --- behaviour --------------------------------------------------------------------------


def make_token(user: Any, **fields: Any) -> PageroToken:
    now = timezone.now()
    values: dict[str, Any] = {
        "access_token": "at",
        "refresh_token": "rt",
        "access_token_issued_at": now,
        "access_token_expires_at": now + timedelta(seconds=600),
        "refresh_token_expires_at": now + timedelta(days=1000),
        **fields,
    }
    return PageroToken(user=user, **values)


def test_access_token_expiry(user: Any) -> None:
    now = timezone.now()
    token = make_token(
        user, access_token_issued_at=now, access_token_expires_at=now + timedelta(seconds=100)
    )
    assert not token.is_access_token_expired(now)
    assert token.is_access_token_expired(now + timedelta(seconds=100))
    assert not token.access_token_expires_within(99, now)
    assert token.access_token_expires_within(100, now)


def test_needs_refresh_within_the_leeway(user: Any, settings: Any) -> None:
    now = timezone.now()
    token = make_token(
        user, access_token_issued_at=now, access_token_expires_at=now + timedelta(seconds=600)
    )
    assert not token.access_token_needs_refresh(now=now)
    assert not token.access_token_needs_refresh(now=now + timedelta(seconds=539))
    assert token.access_token_needs_refresh(now=now + timedelta(seconds=540))
    assert token.access_token_needs_refresh(leeway=600, now=now + timedelta(seconds=300))
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REFRESH_LEEWAY": 10}
    assert not token.access_token_needs_refresh(now=now + timedelta(seconds=589))


def test_leeway_is_capped_at_half_a_short_lifetime(user: Any) -> None:
    now = timezone.now()
    token = make_token(
        user, access_token_issued_at=now, access_token_expires_at=now + timedelta(seconds=30)
    )
    assert not token.access_token_needs_refresh(leeway=60, now=now)
    assert token.access_token_needs_refresh(leeway=60, now=now + timedelta(seconds=15))


def test_refresh_token_expiry_and_reauthorization(user: Any) -> None:
    now = timezone.now()
    token = make_token(user, refresh_token_expires_at=now + timedelta(days=10))
    assert not token.is_refresh_token_expired(now)
    assert not token.needs_reauthorization
    token.save()
    expiring = PageroToken.objects.refresh_token_expiring_within
    assert list(expiring(timedelta(days=10))) == [token]
    assert not expiring(timedelta(days=9)).exists()
    assert token.is_refresh_token_expired(now + timedelta(days=10))
    token.status = PageroToken.Status.REAUTHORIZATION_REQUIRED
    assert token.needs_reauthorization
    expired = make_token(user, refresh_token_expires_at=now - timedelta(seconds=1))
    assert expired.needs_reauthorization


def test_jwt_header_and_claims(user: Any, pagero_mock: MockPageroServer) -> None:
    token = make_token(user)
    token.apply_token_response(response_from(pagero_mock, publicid="acme"))
    decoded = token.jwt_header_and_claims()
    assert decoded is not None
    assert decoded[0]["kid"]
    assert decoded[1]["publicid"] == "acme"
    assert make_token(user, access_token="opaque").jwt_header_and_claims() is None


def test_apply_token_response(user: Any, pagero_mock: MockPageroServer) -> None:
    now = timezone.now()
    token = make_token(user, status=PageroToken.Status.REAUTHORIZATION_REQUIRED)
    token.status_reason = "invalid_grant"
    response = response_from(pagero_mock, publicid="acme", expires_in=300)
    token.apply_token_response(response, now=now)
    assert token.access_token == response.access_token
    assert token.refresh_token == response.refresh_token
    assert token.fingerprint == fingerprint(response.refresh_token or "")
    assert token.publicid == "acme"
    assert token.claims == "publicid"
    assert token.access_token_issued_at == now
    assert token.access_token_expires_at == now + timedelta(seconds=300)
    assert token.refresh_token_expires_at == now + timedelta(days=3 * 365)
    assert (token.status, token.status_reason) == (PageroToken.Status.ACTIVE, "")


def test_apply_a_response_without_refresh_token_keeps_the_old_one(user: Any) -> None:
    token = make_token(user, refresh_token="old-rt", fingerprint=fingerprint("old-rt"))
    token.apply_token_response(
        TokenResponse(access_token="new-at", token_type="bearer", expires_in=600)
    )
    assert (token.access_token, token.refresh_token) == ("new-at", "old-rt")
    assert token.fingerprint == fingerprint("old-rt")


def test_oversized_informational_values_are_cut(user: Any) -> None:
    token = make_token(user)
    token.apply_token_response(
        TokenResponse(
            access_token="at",
            token_type="bearer",
            expires_in=600,
            scope="s" * 5000,
            claims="c" * 5000,
        )
    )
    token.save()  # PostgreSQL enforces max_length: this must not raise
    token.refresh_from_db()
    assert token.scope == "s" * 1024
    assert token.claims == "c" * 1024


def test_mark_reauthorization_required_saves_only_the_status(
    user: Any, pagero_token_factory: Any
) -> None:
    token = pagero_token_factory(user)
    stored_access_token = token.access_token
    token.access_token = "changed in memory only"
    token.mark_reauthorization_required("invalid_grant" + "x" * 300)
    token = PageroToken.objects.get(pk=token.pk)
    assert token.access_token == stored_access_token
    assert token.status == PageroToken.Status.REAUTHORIZATION_REQUIRED
    assert token.status_reason.startswith("invalid_grant")
    assert len(token.status_reason) == 255


# --- store_for_user ---------------------------------------------------------------------


def test_store_creates_then_replaces(user: Any, pagero_mock: MockPageroServer) -> None:
    first = store(user, response_from(pagero_mock, publicid="first", scope="all openid"))
    first.last_refreshed = timezone.now()
    first.save()
    opaque = TokenResponse(
        access_token="opaque-at", token_type="bearer", expires_in=600, refresh_token="rt-2"
    )
    second = store(user, opaque)
    assert second.pk == first.pk
    assert PageroToken.objects.filter(user=user).count() == 1
    reloaded = PageroToken.objects.get(user=user)
    assert (reloaded.access_token, reloaded.refresh_token) == ("opaque-at", "rt-2")
    # Nothing of the previous login survives the new one.
    assert (reloaded.id_token, reloaded.publicid, reloaded.last_refreshed) == ("", "", None)


def test_store_without_refresh_token_changes_nothing(user: Any, pagero_token_factory: Any) -> None:
    token = pagero_token_factory(user)
    response = TokenResponse(access_token="at-only", token_type="bearer", expires_in=600)
    with pytest.raises(InvalidTokenResponse, match="refresh_token"):
        store(user, response)
    assert PageroToken.objects.get(user=user).access_token == token.access_token


def test_store_for_one_user_leaves_others_alone(
    user: Any, other_user: Any, pagero_token_factory: Any, pagero_mock: MockPageroServer
) -> None:
    theirs = pagero_token_factory(other_user)
    store(user, response_from(pagero_mock))
    assert PageroToken.objects.get(user=other_user).refresh_token == theirs.refresh_token


def run_in_threads(count: int, target: Callable[[int], None]) -> list[BaseException]:
    """Run ``target(i)`` in ``count`` threads, each with its own DB connection; return errors."""
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            target(index)
        except BaseException as exc:  # reported to the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_logins_of_one_user_both_succeed(
    user: Any, pagero_mock: MockPageroServer
) -> None:
    responses = [response_from(pagero_mock, publicid=f"tab{i}") for i in range(2)]
    barrier = threading.Barrier(2, timeout=30)

    def login(index: int) -> None:
        close_old_connections()
        barrier.wait()
        store(user, responses[index])

    assert run_in_threads(2, login) == []
    token = PageroToken.objects.get(user=user)
    assert token.refresh_token in {response.refresh_token for response in responses}


@pytest.mark.django_db(transaction=True)
def test_a_row_inserted_between_read_and_insert_is_replaced(
    user: Any, pagero_mock: MockPageroServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forces the race: another login inserts the row after this one found none.

    Only possible where reads do not take the write lock (PostgreSQL); on SQLite the store
    takes the database write lock first, so the other login would wait instead.
    """
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises the two logins with its database write lock")
    other, mine = response_from(pagero_mock, publicid="other"), response_from(pagero_mock)
    apply = PageroToken.apply_token_response
    interfered: list[bool] = []

    def apply_after_interference(self: PageroToken, *args: Any, **kwargs: Any) -> None:
        if self.pk is None and not interfered:
            interfered.append(True)
            assert run_in_threads(1, lambda _: store(user, other)) == []
        apply(self, *args, **kwargs)

    monkeypatch.setattr(PageroToken, "apply_token_response", apply_after_interference)
    token = store(user, mine)
    assert interfered
    assert (
        PageroToken.objects.get(user=user).refresh_token
        == mine.refresh_token
        == (token.refresh_token)
    )


# --- queries ----------------------------------------------------------------------------


def test_querysets(user: Any, other_user: Any, pagero_token_factory: Any) -> None:
    from django.contrib.auth import get_user_model

    third = get_user_model().objects.create_user("carol", "carol@example.com", "pw")
    now = timezone.now()
    active = pagero_token_factory(user, refresh_token_expires_at=now + timedelta(days=5))
    dead = pagero_token_factory(other_user, status=PageroToken.Status.REAUTHORIZATION_REQUIRED)
    old = pagero_token_factory(third, refresh_token_expires_at=now - timedelta(seconds=1))
    assert set(PageroToken.objects.active()) == {active}
    assert set(PageroToken.objects.needing_reauthorization()) == {dead, old}
    assert set(PageroToken.objects.refresh_token_expiring_within(timedelta(days=6))) == {active}
    assert not PageroToken.objects.refresh_token_expiring_within(timedelta(days=4)).exists()
