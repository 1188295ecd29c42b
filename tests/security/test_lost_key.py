"""A lost encryption key, and ciphertexts bound to their row (items 20 and 21).

After the key changes without a fallback, a stored token is "authorization required" everywhere
(never a 500), and logging in to Pagero again overwrites the row without decrypting it. A
ciphertext copied into another user's row (or another column) does not decrypt there. Real
flows against the strict mock over real sockets.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from django_pagero_oauth import crypto, get_client, get_valid_token
from django_pagero_oauth.exceptions import PageroAuthorizationRequired
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.testing.mock import MockPageroServer

from .conftest import Browser, raw_token_row

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
JSON = {"HTTP_ACCEPT": "application/json"}


def use_keys(settings: Any, *keys: str) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": list(keys)}


def raw_update(pk: Any, **columns: str) -> None:
    """Write columns with raw SQL, as an attacker with write access to the database would."""
    table = connection.ops.quote_name(PageroToken._meta.db_table)
    assignments = ", ".join(f"{connection.ops.quote_name(name)} = %s" for name in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {assignments} WHERE id = %s",  # noqa: S608
            [*columns.values(), pk],
        )


@pytest.fixture
def lost_key_token(
    settings: Any, user: Any, pagero_mock: MockPageroServer, pagero_token_factory: Any
) -> PageroToken:
    """A token written under key A; key B is now the only key (no fallback)."""
    use_keys(settings, KEY_A)
    token: PageroToken = pagero_token_factory(user)
    use_keys(settings, KEY_B)
    return token


# --- item 20: a lost key means "connect again", never a 500 -----------------------------------


@pytest.mark.parametrize(
    "path", ["/protected/", "/protected-async/", "/protected-cbv/", "/protected-by-middleware/"]
)
def test_protected_page_redirects_to_reconnect_when_the_key_is_lost(
    lost_key_token: PageroToken, user_client: Client, path: str
) -> None:
    response = user_client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/pagero/login/?next=")


@pytest.mark.parametrize("path", ["/protected/", "/protected-cbv/", "/api-data/"])
def test_json_callers_get_401_when_the_key_is_lost(
    lost_key_token: PageroToken, user_client: Client, pagero_mock: MockPageroServer, path: str
) -> None:
    response = user_client.get(path, **JSON)
    assert response.status_code == 401
    assert response.json()["error"] == "pagero_authorization_required"
    assert pagero_mock.mock.counts["api"] == 0


def test_lazy_request_token_is_none_when_the_key_is_lost(
    lost_key_token: PageroToken, user_client: Client
) -> None:
    assert user_client.get("/token-info/?use=1").json() == {"ok": True, "fingerprint": None}
    assert user_client.get("/token-info-async/").json() == {"ok": True, "fingerprint": None}


def test_get_client_and_get_valid_token_raise_authorization_required(
    lost_key_token: PageroToken, user: Any, pagero_mock: MockPageroServer
) -> None:
    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(user)
    with pytest.raises(PageroAuthorizationRequired):
        get_client(user).get("v1/me")
    assert pagero_mock.mock.counts["api"] == 0
    assert pagero_mock.mock.counts["refresh_token"] == 0


def test_an_expired_access_token_under_a_lost_key_is_not_refreshed(
    lost_key_token: PageroToken, user: Any, user_client: Client, pagero_mock: MockPageroServer
) -> None:
    """The refresh token cannot be read either: the user must connect again."""
    PageroToken.objects.filter(pk=lost_key_token.pk).update(
        access_token_expires_at=lost_key_token.access_token_issued_at
    )
    assert user_client.get("/protected/")["Location"].startswith("/pagero/login/")
    assert pagero_mock.mock.counts["refresh_token"] == 0


def test_the_lost_key_is_logged_once_at_warning_without_secrets(
    lost_key_token: PageroToken, user_client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    raw = raw_token_row(lost_key_token.pk)
    with caplog.at_level(logging.DEBUG, logger="django_pagero_oauth"):
        user_client.get("/protected/")
    warnings = [r for r in caplog.records if "cannot be decrypted" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    message = warnings[0].getMessage()
    assert lost_key_token.fingerprint in message and f"#{lost_key_token.user_id}" in message
    for secret in (
        lost_key_token.access_token,
        lost_key_token.refresh_token,
        raw["access_token"],
        raw["refresh_token"],
    ):
        assert secret not in caplog.text


def test_reconnecting_overwrites_the_row_without_decrypting_it(
    lost_key_token: PageroToken,
    user: Any,
    browser: Browser,
    pagero_mock: MockPageroServer,
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
) -> None:
    """The issue: the code was exchanged, then storing failed with a 500, leaving a live refresh
    token at Pagero that nothing stored. Now the row is replaced and works at once."""
    # Without REVOKE_URL: nothing wants the old refresh token (revoking it would try to read it).
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "REVOKE_URL": ""}
    decrypted: list[str] = []
    real_decrypt = crypto.decrypt

    def spy(value: str, context: str = "") -> str:
        decrypted.append(context)
        return real_decrypt(value, context)

    monkeypatch.setattr(crypto, "decrypt", spy)
    response = browser.login("/protected/")
    assert response.status_code == 302 and response["Location"] == "/protected/"
    assert decrypted == []  # the old row was overwritten unread
    assert pagero_mock.mock.counts["authorization_code"] == 1

    token = PageroToken.objects.get(user=user)
    assert token.pk == lost_key_token.pk  # the same row, replaced
    assert token.refresh_token == pagero_mock.mock.issued_refresh_tokens[-1]
    assert token.refresh_token != lost_key_token.refresh_token
    assert browser.client.get("/protected/").status_code == 200
    assert browser.client.get("/api-data/").json()["status"] == 200


# --- item 21: a ciphertext is bound to its row and column -------------------------------------


@pytest.fixture
def two_tokens(user: Any, other_user: Any, pagero_token_factory: Any) -> list[PageroToken]:
    return [pagero_token_factory(user), pagero_token_factory(other_user)]


def test_a_ciphertext_copied_into_another_users_row_does_not_decrypt(
    two_tokens: list[PageroToken],
    other_user: Any,
    pagero_mock: MockPageroServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    alice, mallory = two_tokens
    alices = raw_token_row(alice.pk)
    raw_update(
        mallory.pk, access_token=alices["access_token"], refresh_token=alices["refresh_token"]
    )

    copied = PageroToken.objects.get(pk=mallory.pk)
    with pytest.raises(PageroAuthorizationRequired):
        copied.access_token  # noqa: B018
    with pytest.raises(PageroAuthorizationRequired):
        copied.refresh_token  # noqa: B018
    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(other_user)
    client = Client()
    client.force_login(other_user)
    assert client.get("/api-data/", **JSON).status_code == 401
    assert pagero_mock.mock.counts["api"] == 0  # Alice's token was not used for Mallory
    assert alice.access_token not in caplog.text
    # Alice's own row is untouched and still works.
    assert PageroToken.objects.get(pk=alice.pk).refresh_token == alice.refresh_token


def test_a_ciphertext_copied_into_another_column_does_not_decrypt(
    two_tokens: list[PageroToken], user: Any
) -> None:
    alice = two_tokens[0]
    raw_update(alice.pk, access_token=raw_token_row(alice.pk)["refresh_token"])
    with pytest.raises(PageroAuthorizationRequired):
        PageroToken.objects.get(pk=alice.pk).access_token  # noqa: B018


def test_a_row_moved_to_another_user_does_not_decrypt(
    two_tokens: list[PageroToken], db: None
) -> None:
    """Re-pointing the row itself (its user column) is the same attack."""
    alice = two_tokens[0]
    PageroToken.objects.filter(pk=two_tokens[1].pk).delete()
    third = get_user_model().objects.create_user("eve", "eve@example.com", "pw")
    raw_update(alice.pk, user_id=third.pk)
    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(third)


def test_a_bare_fernet_token_of_a_configured_key_is_not_read(
    user: Any, pagero_token_factory: Any, settings: Any
) -> None:
    """A value bound to nothing (a bare Fernet token) is undecryptable, under any key: its
    user connects again, and it is counted and pruned like a value whose key is gone."""
    use_keys(settings, KEY_A)
    token: PageroToken = pagero_token_factory(user)
    raw_update(
        token.pk,
        **{
            name: Fernet(KEY_A.encode()).encrypt(getattr(token, name).encode()).decode()
            for name in ("access_token", "refresh_token")
        },
    )
    use_keys(settings, KEY_B, KEY_A)
    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(user)
    assert list(PageroToken.objects.undecryptable()) == [token]


def test_fingerprint_in_logs_and_admin_is_keyed(
    user: Any, pagero_token_factory: Any, settings: Any
) -> None:
    """Holding a candidate refresh token does not confirm it against a logged fingerprint."""
    import hashlib

    use_keys(settings, KEY_A)
    token: PageroToken = pagero_token_factory(user)
    assert token.fingerprint != hashlib.sha256(token.refresh_token.encode()).hexdigest()[:12]
    assert token.fingerprint == crypto.fingerprint(token.refresh_token)
    assert PageroToken.objects.filter(fingerprint=token.fingerprint).get() == token


def test_the_token_loaded_with_the_user_is_checked_too(
    lost_key_token: PageroToken, user: Any, settings: Any
) -> None:
    """With ``PageroModelBackend`` the token comes with ``request.user``: the same answer."""
    settings.AUTHENTICATION_BACKENDS = ["django_pagero_oauth.backends.PageroModelBackend"]
    client = Client()
    client.force_login(user, backend=settings.AUTHENTICATION_BACKENDS[0])
    assert client.get("/protected/")["Location"].startswith("/pagero/login/")
    assert client.get("/protected/", **JSON).status_code == 401


def test_a_forced_refresh_raises_authorization_required(
    lost_key_token: PageroToken, pagero_mock: MockPageroServer
) -> None:
    """``refresh_now`` (admin action, ``pagero_refresh_tokens``) and the client's retry after a
    401 go through ``refresh``: the refresh token cannot be read, nothing is sent."""
    from django_pagero_oauth.tokens import refresh_now

    token = PageroToken.objects.select_related("user").get(pk=lost_key_token.pk)
    with pytest.raises(PageroAuthorizationRequired):
        refresh_now(token)
    assert pagero_mock.mock.counts["refresh_token"] == 0
    assert raw_token_row(token.pk)["status"] == PageroToken.Status.ACTIVE  # nothing written


def test_a_bare_fernet_token_copied_into_another_users_row_is_not_read(
    two_tokens: list[PageroToken], other_user: Any
) -> None:
    """Alice's token as a bare Fernet token of the key in force (bound to nothing), written
    into Mallory's row: Mallory gets "authorization required", never Alice's token."""
    alice, mallory = two_tokens
    key = crypto.configured_keys()[0]
    raw_update(
        mallory.pk,
        **{
            name: Fernet(key.encode()).encrypt(getattr(alice, name).encode()).decode()
            for name in ("access_token", "refresh_token")
        },
    )
    with pytest.raises(PageroAuthorizationRequired):
        get_valid_token(other_user)
    client = Client()
    client.force_login(other_user)
    assert client.get("/protected/", **JSON).status_code == 401
    assert PageroToken.objects.count_undecryptable() == 1


def test_reconnecting_with_revoke_url_skips_revoking_the_unreadable_token(
    lost_key_token: PageroToken, user: Any, browser: Browser, pagero_mock: MockPageroServer
) -> None:
    """Revoke-on-reconnect cannot read the old refresh token: it sends nothing, logs, and the
    login still replaces the row."""
    response = browser.login("/protected/")
    assert response.status_code == 302 and response["Location"] == "/protected/"
    assert pagero_mock.mock.counts["revoke"] == 0
    stored = PageroToken.objects.get(user=user)
    assert pagero_mock.mock.is_refresh_token_valid(stored.refresh_token)


# --- saving a loaded row never loses a stored value (pinned by ./scripts/mutation) -------------

SECRETS = ("access_token", "refresh_token", "id_token")


def test_a_full_save_of_a_loaded_untouched_row_keeps_every_ciphertext(
    settings: Any, user: Any, pagero_mock: MockPageroServer, pagero_token_factory: Any
) -> None:
    """Under the current key nothing needs rotating: the stored bytes stay exactly as they were
    (no NULL, no re-encryption), and the row still decrypts to the same tokens."""
    use_keys(settings, KEY_A)
    token = pagero_token_factory(user, id_token="an-id-token")
    before = raw_token_row(token.pk)
    assert all(before[name] for name in SECRETS)
    loaded = PageroToken.objects.get(pk=token.pk)
    loaded.save()
    after = raw_token_row(token.pk)
    assert after.pop("updated") >= before.pop("updated")  # auto_now: the one column that moves
    assert after == before
    again = PageroToken.objects.get(pk=token.pk)
    assert [getattr(again, name) for name in SECRETS] == [getattr(token, name) for name in SECRETS]


def test_a_value_under_a_lost_key_is_kept_on_save_and_reads_once_the_key_is_back(
    settings: Any, lost_key_token: PageroToken
) -> None:
    """The row can be saved (other columns change) while its key is missing; the ciphertexts
    stay as stored, so putting the key back makes the token readable again."""
    before = raw_token_row(lost_key_token.pk)
    loaded = PageroToken.objects.get(pk=lost_key_token.pk)
    loaded.scope = "changed while the key was lost"
    loaded.save()
    after = raw_token_row(lost_key_token.pk)
    assert after["scope"] == "changed while the key was lost"
    assert {name: after[name] for name in SECRETS} == {name: before[name] for name in SECRETS}
    use_keys(settings, KEY_B, KEY_A)  # the key comes back, as a fallback
    again = PageroToken.objects.get(pk=lost_key_token.pk)
    assert again.access_token == lost_key_token.access_token
    assert again.refresh_token == lost_key_token.refresh_token


def test_an_empty_value_is_stored_and_read_as_empty(
    settings: Any, user: Any, pagero_mock: MockPageroServer, pagero_token_factory: Any
) -> None:
    """Nothing to hide in "no ID token": stored as "" (not a ciphertext of ""), read as ""."""
    use_keys(settings, KEY_A)
    token = pagero_token_factory(user)
    token.id_token = ""
    token.save()
    assert raw_token_row(token.pk)["id_token"] == ""
    assert PageroToken.objects.get(pk=token.pk).id_token == ""


def test_a_deferred_value_is_fetched_and_decrypted_on_first_access(
    settings: Any, user: Any, pagero_mock: MockPageroServer, pagero_token_factory: Any
) -> None:
    use_keys(settings, KEY_A)
    token = pagero_token_factory(user)
    before = raw_token_row(token.pk)
    deferred = PageroToken.objects.defer(*SECRETS).get(pk=token.pk)
    assert deferred.refresh_token == token.refresh_token
    deferred = PageroToken.objects.defer(*SECRETS).get(pk=token.pk)
    deferred.save()  # a full save of a row loaded without its secrets keeps them
    after = raw_token_row(token.pk)
    assert {name: after[name] for name in SECRETS} == {name: before[name] for name in SECRETS}
