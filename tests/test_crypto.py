"""Tests of ``crypto.py``: Fernet at rest, keys from settings, rotation without data loss."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

from django_pagero_oauth import crypto
from django_pagero_oauth.exceptions import TokenDecryptionError, UndecryptableToken

OLD_KEY = Fernet.generate_key().decode()
NEW_KEY = Fernet.generate_key().decode()


@pytest.fixture
def keys(settings: Any) -> Any:
    """Set ``ENCRYPTION_KEYS`` for one test: ``keys(newest, ..., oldest)``."""

    def set_(*values: str) -> None:
        settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": list(values)}

    return set_


@given(st.text())
def test_encrypt_decrypt_round_trip(value: str) -> None:
    ciphertext = crypto.encrypt(value)
    assert crypto.decrypt(ciphertext) == value
    assert ciphertext.isascii()
    assert ciphertext != value


@given(st.text(alphabet=st.characters(codec="ascii"), min_size=16))
def test_ciphertext_does_not_contain_the_plaintext(value: str) -> None:
    assert value not in crypto.encrypt(value)


def test_encryption_is_randomised() -> None:
    assert crypto.encrypt("same") != crypto.encrypt("same")


def test_derived_key_is_a_deterministic_fernet_key() -> None:
    key = crypto.derive_key("a secret")
    assert key == crypto.derive_key("a secret")
    assert key != crypto.derive_key("another secret")
    Fernet(key)  # a valid Fernet key: 32 url-safe base64 bytes


def test_keys_derived_from_secret_key_then_fallbacks(settings: Any) -> None:
    settings.SECRET_KEY = "current"
    settings.SECRET_KEY_FALLBACKS = ["previous", ""]
    assert crypto.configured_keys() == (
        crypto.derive_key("current").decode(),
        crypto.derive_key("previous").decode(),
    )


def test_explicit_keys_replace_derived_ones(keys: Any) -> None:
    keys(NEW_KEY, OLD_KEY)
    assert crypto.configured_keys() == (NEW_KEY, OLD_KEY)


def test_rotation_of_encryption_keys(keys: Any) -> None:
    keys(OLD_KEY)
    ciphertext = crypto.encrypt("refresh-token")
    keys(NEW_KEY, OLD_KEY)
    assert crypto.decrypt(ciphertext) == "refresh-token"
    assert crypto.needs_rotation(ciphertext)
    # What saving a row does with such a value (tests/security/test_key_rotation.py).
    rotated = crypto.encrypt(crypto.decrypt(ciphertext))
    assert not crypto.needs_rotation(rotated)
    keys(NEW_KEY)
    assert crypto.decrypt(rotated) == "refresh-token"
    with pytest.raises(TokenDecryptionError):
        crypto.decrypt(ciphertext)


def test_rotation_of_secret_key(settings: Any) -> None:
    settings.SECRET_KEY = "old-secret-key"
    settings.SECRET_KEY_FALLBACKS = []
    ciphertext = crypto.encrypt("refresh-token")
    settings.SECRET_KEY = "new-secret-key"
    settings.SECRET_KEY_FALLBACKS = ["old-secret-key"]
    assert crypto.decrypt(ciphertext) == "refresh-token"
    settings.SECRET_KEY_FALLBACKS = []
    with pytest.raises(TokenDecryptionError, match="SECRET_KEY"):
        crypto.decrypt(ciphertext)


@pytest.mark.parametrize("garbage", ["not-a-token", "gAAAA" + "x" * 80, "é"])
def test_undecryptable_values_raise_a_clear_error(garbage: str) -> None:
    with pytest.raises(TokenDecryptionError) as info:
        crypto.decrypt(garbage)
    assert garbage not in str(info.value)
    assert crypto.needs_rotation(garbage)


@pytest.mark.parametrize("bad", ["short", "x" * 44])
def test_invalid_configured_keys_raise_a_clear_error(keys: Any, bad: str) -> None:
    keys(bad)
    with pytest.raises(TokenDecryptionError, match="Fernet keys"):
        crypto.encrypt("x")
    with pytest.raises(TokenDecryptionError, match="Fernet keys"):
        crypto.needs_rotation("x")


def test_fingerprint_is_a_short_keyed_hash_that_reveals_nothing(keys: Any) -> None:
    token = "_1XBPWQQ_0123456789abcdef"
    keys(OLD_KEY)
    label = crypto.fingerprint(token)
    assert len(label) == 12 and int(label, 16) >= 0
    assert label != hashlib.sha256(token.encode()).hexdigest()[:12]  # holding it confirms nothing
    assert not any(token[i : i + 4] in label for i in range(len(token) - 3))
    assert crypto.fingerprint(token) == label  # stable per key
    assert crypto.fingerprint("another token") != label
    keys(OLD_KEY, NEW_KEY)
    assert crypto.fingerprint(token) == label  # the newest key decides
    keys(NEW_KEY, OLD_KEY)
    assert crypto.fingerprint(token) != label
    assert crypto.fingerprint("") == ""


def test_fingerprint_key_is_derived_for_its_own_purpose(keys: Any) -> None:
    """Neither the encryption key itself nor a plain hash: HKDF with its own info string."""
    import hmac

    keys(OLD_KEY)
    token = "_1XBPWQQ_0123456789abcdef"
    key = crypto.get_keyring().fingerprint_key
    assert crypto.fingerprint(token) == hmac.new(key, token.encode(), "sha256").hexdigest()[:12]
    assert key != base64.urlsafe_b64decode(OLD_KEY)
    assert key not in {fernet._signing_key for fernet in crypto.get_keyring().by_id.values()}


def test_fingerprint_from_secret_key_changes_with_it(settings: Any) -> None:
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = "one secret", []
    first = crypto.fingerprint("rt")
    settings.SECRET_KEY = "another secret"
    assert crypto.fingerprint("rt") != first


# --- values bound to their row ---------------------------------------------------------------


def test_a_value_decrypts_only_for_its_own_context() -> None:
    stored = crypto.encrypt("refresh-token", "django_pagero_oauth.pagerotoken.refresh_token:1")
    assert crypto.decrypt(stored, "django_pagero_oauth.pagerotoken.refresh_token:1") == (
        "refresh-token"
    )
    for other in (
        "django_pagero_oauth.pagerotoken.refresh_token:2",  # another user's row
        "django_pagero_oauth.pagerotoken.access_token:1",  # another column
        "django_pagero_oauth.pagerotoken.refresh_token:11",
        "",
    ):
        with pytest.raises(UndecryptableToken, match="encrypted for another row or column"):
            crypto.decrypt(stored, other)


def test_the_context_is_inside_the_authenticated_envelope(keys: Any) -> None:
    """No part of the stored value can be changed to move it: key id, token, anything."""
    keys(NEW_KEY, OLD_KEY)
    stored = crypto.encrypt("secret", "ctx:1")
    prefix, key_id, token = stored.split("$")
    assert (prefix + "$", len(key_id)) == (crypto.PREFIX, crypto.KEY_ID_LENGTH)
    assert "ctx" not in stored and "secret" not in stored
    other_key_id = next(k for k in crypto.configured_key_ids() if k != key_id)
    for altered in (
        f"{prefix}${other_key_id}${token}",
        f"{prefix}$00000000${token}",
        token,  # the bare Fernet token, as if in the old format
        f"{prefix}${key_id}${token[:-4]}AAAA",
    ):
        with pytest.raises(UndecryptableToken):
            crypto.decrypt(altered, "ctx:1")


def test_a_value_without_the_bound_format_never_decrypts(keys: Any) -> None:
    """A bare Fernet token of a configured key is bound to nothing: it is not read."""
    keys(NEW_KEY, OLD_KEY)
    for key in (NEW_KEY, OLD_KEY):
        bare = Fernet(key.encode()).encrypt(b"ctx:7\0refresh-token").decode()
        assert crypto.needs_rotation(bare)
        for value in (bare, f"{crypto.PREFIX}{bare}", "plain text"):
            with pytest.raises(UndecryptableToken):
                crypto.decrypt(value, "ctx:7")


def test_key_ids_are_stable_and_do_not_reveal_the_key(keys: Any) -> None:
    keys(NEW_KEY, OLD_KEY)
    new_id, old_id = crypto.configured_key_ids()
    keys(OLD_KEY)
    assert crypto.configured_key_ids() == (old_id,)
    assert new_id != old_id
    assert new_id not in NEW_KEY and old_id not in OLD_KEY


class TestEncryptedTextField:
    field = crypto.EncryptedTextField()

    def test_plain_values_are_refused_outside_a_save(self) -> None:
        """Without the row there is nothing to bind to: no update(), no lookup by plaintext."""
        with pytest.raises(TypeError, match="bound to the row"):
            self.field.get_prep_value("secret value")

    def test_ciphertexts_pass_through_unchanged(self) -> None:
        stored = crypto.Ciphertext(crypto.encrypt("secret value"))
        assert self.field.get_prep_value(stored) == stored

    def test_from_db_value_does_not_decrypt(self) -> None:
        stored = crypto.encrypt("secret value")
        loaded = self.field.from_db_value(stored, None, None)
        assert isinstance(loaded, crypto.Ciphertext) and loaded == stored

    @pytest.mark.parametrize("value", [None, ""])
    def test_empty_values_pass_through(self, value: str | None) -> None:
        assert self.field.get_prep_value(value) == value
        assert self.field.from_db_value(value, None, None) == value


@pytest.mark.parametrize("context", ["\x00", "PageroToken.access_token\x00user:1", "a\x00"])
def test_a_context_with_nul_is_refused(context: str) -> None:
    """NUL separates the context from the value inside the envelope: it cannot be in either."""
    with pytest.raises(ValueError, match="The context of an encrypted value cannot contain NUL"):
        crypto.encrypt("a-token", context)


def test_a_value_bound_to_no_row_is_refused_even_under_a_configured_key(keys: Any) -> None:
    """Only ``pgo2$<key id>$...`` is read: a bare Fernet token of a configured key is not."""
    keys(OLD_KEY)
    unbound = Fernet(OLD_KEY.encode()).encrypt(b"old-refresh-token").decode()
    with pytest.raises(UndecryptableToken, match="cannot be decrypted with the configured keys"):
        crypto.decrypt(unbound, "ctx:1")


def test_the_field_deconstructs_bind_to_only_when_not_the_default() -> None:
    """What migrations record: a field bound to ``user_id`` (the default) says nothing more."""
    _, path, _, kwargs = crypto.EncryptedTextField(blank=True).deconstruct()
    assert path == "django_pagero_oauth.crypto.EncryptedTextField"
    assert "bind_to" not in kwargs
    _, _, _, kwargs = crypto.EncryptedTextField(bind_to="owner_id").deconstruct()
    assert kwargs["bind_to"] == "owner_id"


def test_the_class_attribute_is_the_descriptor_of_its_field() -> None:
    from django_pagero_oauth.models import PageroToken

    attribute = PageroToken.access_token
    assert isinstance(attribute, crypto.EncryptedAttribute)
    assert attribute.field is PageroToken._meta.get_field("access_token")
