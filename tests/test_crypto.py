"""Tests of ``crypto.py``: Fernet at rest, keys from settings, rotation without data loss."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.fernet import Fernet
from hypothesis import given
from hypothesis import strategies as st

from django_pagero_oauth import crypto
from django_pagero_oauth.exceptions import TokenDecryptionError

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
    assert not crypto.is_encrypted_with_current_key(ciphertext)
    rotated = crypto.rotate(ciphertext)
    assert crypto.is_encrypted_with_current_key(rotated)
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
    with pytest.raises(TokenDecryptionError):
        crypto.rotate(garbage)
    assert not crypto.is_encrypted_with_current_key(garbage)


@pytest.mark.parametrize("bad", ["short", "x" * 44])
def test_invalid_configured_keys_raise_a_clear_error(keys: Any, bad: str) -> None:
    keys(bad)
    with pytest.raises(TokenDecryptionError, match="Fernet keys"):
        crypto.encrypt("x")
    assert not crypto.is_encrypted_with_current_key("x")


def test_fingerprint_is_a_short_hash_that_reveals_nothing() -> None:
    token = "_1XBPWQQ_0123456789abcdef"
    label = crypto.fingerprint(token)
    assert label == hashlib.sha256(token.encode()).hexdigest()[:12]
    assert len(label) == 12
    assert not any(token[i : i + 4] in label for i in range(len(token) - 3))
    assert crypto.fingerprint("") == ""


class TestEncryptedTextField:
    field = crypto.EncryptedTextField()

    def test_prep_value_encrypts(self) -> None:
        stored = self.field.get_prep_value("secret value")
        assert stored != "secret value"
        assert crypto.decrypt(stored) == "secret value"

    def test_from_db_value_decrypts(self) -> None:
        stored = crypto.encrypt("secret value")
        assert self.field.from_db_value(stored, None, None) == "secret value"

    @pytest.mark.parametrize("value", [None, ""])
    def test_empty_values_pass_through(self, value: str | None) -> None:
        assert self.field.get_prep_value(value) == value
        assert self.field.from_db_value(value, None, None) == value
