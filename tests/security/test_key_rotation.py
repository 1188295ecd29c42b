"""Rotating the encryption key (item 18): rows written under the old key stay readable with the
new key list (new key first, old key after it), and the next write re-encrypts them under the
new key, so that the old key can then be dropped. Checked on the raw column with each key
alone.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken

from django_pagero_oauth import crypto
from django_pagero_oauth.crypto import derive_key
from django_pagero_oauth.exceptions import TokenDecryptionError
from django_pagero_oauth.models import PageroToken
from django_pagero_oauth.tokens import get_valid_token

from .conftest import raw_token_row

ENCRYPTED = ("access_token", "refresh_token", "id_token")
OLD_SECRET_KEY = "old-secret-key-" + "o" * 40
NEW_SECRET_KEY = "new-secret-key-" + "n" * 40


def _decrypts_with(key: bytes, ciphertext: str, context: str) -> str | None:
    """``ciphertext`` decrypted with ``key`` alone (and bound to ``context``), or None."""
    ring = crypto._keyring_for((key.decode(),))
    prefix, key_id, token = ciphertext.split("$")
    assert prefix + "$" == crypto.PREFIX
    if key_id not in ring.by_id:
        return None
    try:
        bound, _, plain = ring.by_id[key_id].decrypt(token.encode()).partition(b"\0")
    except InvalidToken:
        return None
    assert bound.decode() == context
    return plain.decode()


def _context(token: PageroToken, name: str) -> str:
    return crypto.bound_context(PageroToken, name, token.user_id)


class Keys:
    """Switches between "old key only", "new key first, old kept" and "new key only"."""

    def __init__(self, kind: str, settings: Any) -> None:
        self.kind, self.settings = kind, settings
        if kind == "ENCRYPTION_KEYS":
            self.old, self.new = Fernet.generate_key(), Fernet.generate_key()
        else:  # keys derived from SECRET_KEY, rotated with SECRET_KEY_FALLBACKS
            self.old = derive_key(OLD_SECRET_KEY)
            self.new = derive_key(NEW_SECRET_KEY)

    def use(self, *which: str) -> None:
        if self.kind == "ENCRYPTION_KEYS":
            keys = [getattr(self, name).decode() for name in which]
            self.settings.PAGERO_OAUTH = {**self.settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": keys}
        else:
            secrets = {"old": OLD_SECRET_KEY, "new": NEW_SECRET_KEY}
            self.settings.SECRET_KEY = secrets[which[0]]
            self.settings.SECRET_KEY_FALLBACKS = [secrets[name] for name in which[1:]]


@pytest.fixture(params=["ENCRYPTION_KEYS", "SECRET_KEY"])
def keys(request: pytest.FixtureRequest, settings: Any, pagero_mock: Any) -> Keys:
    return Keys(request.param, settings)


def _store(user: Any, pagero_token_factory: Any) -> PageroToken:
    token: PageroToken = pagero_token_factory(user, expired=True)
    token.id_token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.id-token"
    token.save()
    return token


def test_old_rows_are_read_with_the_new_key_list_and_rewritten_under_the_new_key(
    keys: Keys, user: Any, pagero_token_factory: Any
) -> None:
    keys.use("old")
    token = _store(user, pagero_token_factory)
    plain = {name: getattr(token, name) for name in ENCRYPTED}
    raw = raw_token_row(token.pk)
    for name in ENCRYPTED:
        assert _decrypts_with(keys.old, raw[name], _context(token, name)) == plain[name]
        assert _decrypts_with(keys.new, raw[name], _context(token, name)) is None

    keys.use("new", "old")
    reread = PageroToken.objects.get(pk=token.pk)
    assert {name: getattr(reread, name) for name in ENCRYPTED} == plain
    assert raw_token_row(token.pk) == raw  # reading alone writes nothing

    reread.save()  # the next write, whatever it is for

    rewritten = raw_token_row(token.pk)
    for name in ENCRYPTED:
        assert _decrypts_with(keys.new, rewritten[name], _context(token, name)) == plain[name]
        assert _decrypts_with(keys.old, rewritten[name], _context(token, name)) is None
    keys.use("new")  # the old key can go now
    assert {
        name: getattr(PageroToken.objects.get(pk=token.pk), name) for name in ENCRYPTED
    } == plain


def test_a_refresh_writes_under_the_new_key(
    keys: Keys, user: Any, pagero_mock: Any, pagero_token_factory: Any
) -> None:
    keys.use("old")
    token = _store(user, pagero_token_factory)
    keys.use("new", "old")

    fresh = get_valid_token(user)

    assert pagero_mock.mock.counts["refresh_token"] == 1
    raw = raw_token_row(token.pk)
    for name, value in (
        ("access_token", fresh.access_token),
        ("refresh_token", fresh.refresh_token),
        # The ID token was not part of the answer; the row was written whole, so it moved too.
        ("id_token", token.id_token),
    ):
        assert _decrypts_with(keys.new, raw[name], _context(token, name)) == value


def test_dropping_the_old_key_too_early_fails_loudly_without_leaking(
    keys: Keys, user: Any, pagero_token_factory: Any
) -> None:
    keys.use("old")
    token = _store(user, pagero_token_factory)
    raw = raw_token_row(token.pk)
    keys.use("new")
    lost = PageroToken.objects.get(pk=token.pk)  # loads; reading a token fails
    with pytest.raises(TokenDecryptionError) as caught:
        lost.refresh_token  # noqa: B018
    message = str(caught.value)
    assert all(raw[name] not in message for name in ENCRYPTED)
    assert token.refresh_token not in message
    assert raw_token_row(token.pk) == raw  # nothing was overwritten or lost
    keys.use("new", "old")  # putting the key back repairs everything
    assert PageroToken.objects.get(pk=token.pk).refresh_token == token.refresh_token


def test_a_status_only_write_does_not_corrupt_old_columns(
    keys: Keys, user: Any, pagero_token_factory: Any
) -> None:
    """A partial save (``update_fields``) leaves the untouched columns as they were: still
    readable with the old key in the list."""
    keys.use("old")
    token = _store(user, pagero_token_factory)
    keys.use("new", "old")
    PageroToken.objects.get(pk=token.pk).mark_reauthorization_required("test")
    reread = PageroToken.objects.get(pk=token.pk)
    assert reread.refresh_token == token.refresh_token
    assert reread.needs_reauthorization
