"""Encryption of tokens at rest (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``).

Keys come from ``PAGERO_OAUTH["ENCRYPTION_KEYS"]`` (Fernet keys, newest first). Without them they
are derived with HKDF-SHA256 from ``SECRET_KEY`` and then ``SECRET_KEY_FALLBACKS``, so rotating
Django's secret key the documented way keeps old rows readable. The first key encrypts; every key
decrypts; :func:`rotate` re-encrypts a value under the first key.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from .conf import app_settings
from .exceptions import TokenDecryptionError

_HKDF_SALT = b"django-pagero-oauth"
_HKDF_INFO = b"token-encryption-v1"


@lru_cache(maxsize=16)
@sensitive_variables()
def derive_key(secret: str) -> bytes:
    """A Fernet key derived from a Django ``SECRET_KEY`` (HKDF-SHA256, RFC 5869)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


@sensitive_variables()
def configured_keys() -> tuple[str, ...]:
    """The key list in force, newest first."""
    keys = app_settings.ENCRYPTION_KEYS
    if keys:
        return tuple(keys)
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return tuple(derive_key(str(secret)).decode() for secret in secrets if secret)


@lru_cache(maxsize=8)
@sensitive_variables()
def _fernet_for(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError):
        # Not "from exc": the frames of cryptography's error hold the key.
        raise TokenDecryptionError(
            "PAGERO_OAUTH['ENCRYPTION_KEYS'] must hold Fernet keys "
            "(32 url-safe base64-encoded bytes, e.g. from Fernet.generate_key())."
        ) from None


@sensitive_variables()
def get_fernet() -> MultiFernet:
    """The MultiFernet for the settings in force (cached per key list, so rotation applies)."""
    keys = configured_keys()
    if not keys:
        raise TokenDecryptionError(
            "No encryption key: set SECRET_KEY or PAGERO_OAUTH['ENCRYPTION_KEYS']."
        )
    return _fernet_for(keys)


def encrypt(value: str) -> str:
    return get_fernet().encrypt(value.encode()).decode("ascii")


def decrypt(value: str) -> str:
    try:
        return get_fernet().decrypt(value.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise TokenDecryptionError(
            "A stored Pagero token cannot be decrypted with the configured keys. Was SECRET_KEY "
            "or ENCRYPTION_KEYS changed without keeping the old key in the list?"
        ) from exc


def rotate(value: str) -> str:
    """Re-encrypt a ciphertext under the newest key (it must decrypt under one of the keys)."""
    try:
        return get_fernet().rotate(value.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError) as exc:
        raise TokenDecryptionError(
            "A stored Pagero token cannot be decrypted for rotation."
        ) from exc


def is_encrypted_with_current_key(value: str) -> bool:
    """True when ``value`` decrypts under the newest key alone (no rotation needed)."""
    keys = configured_keys()
    try:
        Fernet(keys[0].encode()).decrypt(value.encode("ascii"))
    except (InvalidToken, IndexError, ValueError):
        return False
    return True


def fingerprint(value: str) -> str:
    """A short, non-reversible label for a token: the first 12 hex digits of its SHA-256.

    Safe to show to staff: it identifies a token without revealing any part of it.
    """
    return hashlib.sha256(value.encode()).hexdigest()[:12] if value else ""


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """A text column that holds Fernet ciphertext; Python code sees the plaintext.

    Empty strings are stored as empty strings (there is nothing to hide in "no id token").
    """

    description = _("Encrypted text")

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return decrypt(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt(str(value))
