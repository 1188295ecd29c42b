"""Encryption of tokens at rest (Fernet: AES-128-CBC + HMAC-SHA256, from ``cryptography``).

Keys come from ``PAGERO_OAUTH["ENCRYPTION_KEYS"]`` (Fernet keys, newest first). Without them they
are derived with HKDF-SHA256 from ``SECRET_KEY`` and then ``SECRET_KEY_FALLBACKS``, so rotating
Django's secret key the documented way keeps old rows readable. The first key encrypts; every key
decrypts; saving a row re-encrypts a value :func:`needs_rotation` finds under the first key.

A stored value is ``pgo2$<key id>$<Fernet token>``. The Fernet plaintext is
``<context> NUL <value>``: the context names the model, the column and the row's owner
(``django_pagero_oauth.pagerotoken.refresh_token:42``), so Fernet's HMAC authenticates the value
*together with where it belongs*, and a ciphertext copied into another user's row, or into
another column, does not decrypt. The key id (8 hex digits of an HMAC under the key) says which
key wrote the value: decryption goes straight to that key, and a value whose key is no longer
configured is found with SQL alone (:func:`unknown_key_condition`), without decrypting anything.

Each configured key serves through keys derived from it with HKDF (RFC 5869), one per purpose
(its own ``info``): the bound encryption key and the fingerprint key; the key id is an HMAC
under the key. The configured key itself encrypts nothing, so a bare Fernet token (a value
stripped of its prefix, or one bound to nothing) does not decrypt.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from dataclasses import dataclass
from functools import lru_cache, reduce
from operator import or_
from typing import TYPE_CHECKING, Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import models
from django.db.models.query_utils import DeferredAttribute
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from .conf import app_settings
from .exceptions import TokenDecryptionError, UndecryptableToken

if TYPE_CHECKING:
    from django.db.models import Q

logger = logging.getLogger("django_pagero_oauth")

_HKDF_SALT = b"django-pagero-oauth"
_HKDF_INFO = b"token-encryption-v1"
_BOUND_INFO = b"token-encryption-v2-bound"
_KEY_ID_INFO = b"key-id-v1"
_FINGERPRINT_INFO = b"token-fingerprint-v1"

#: How every value in the bound format begins (``pgo2$<key id>$``).
PREFIX = "pgo2$"
#: Length of a key id (hex digits).
KEY_ID_LENGTH = 8

_UNDECRYPTABLE = (
    "A stored Pagero token cannot be decrypted with the configured keys. Was SECRET_KEY "
    "or ENCRYPTION_KEYS changed without keeping the old key in the list?"
)


def _hkdf(material: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=info).derive(material)


@lru_cache(maxsize=16)
@sensitive_variables()
def derive_key(secret: str) -> bytes:
    """A Fernet key derived from a Django ``SECRET_KEY`` (HKDF-SHA256, RFC 5869)."""
    return base64.urlsafe_b64encode(_hkdf(secret.encode(), _HKDF_INFO))


@sensitive_variables()
def configured_keys() -> tuple[str, ...]:
    """The key list in force, newest first."""
    keys = app_settings.ENCRYPTION_KEYS
    if keys:
        return tuple(keys)
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return tuple(derive_key(str(secret)).decode() for secret in secrets if secret)


@dataclass(frozen=True)
class Keyring:
    """The keys in force, with what is derived from each (computed once per key list)."""

    #: Bound-value encryption key per key id.
    by_id: dict[str, Fernet]
    #: The id of the newest key: new values are written with it.
    newest_id: str
    #: The HMAC key of :func:`fingerprint` (from the newest key).
    fingerprint_key: bytes


@lru_cache(maxsize=8)
@sensitive_variables()
def _keyring_for(keys: tuple[str, ...]) -> Keyring:
    try:
        raw = [base64.urlsafe_b64decode(key.encode()) for key in keys]
        if any(len(material) != 32 for material in raw):
            raise ValueError("not a Fernet key")
    except (ValueError, TypeError):
        # Not "from exc": the frames of the decoder's error hold the key.
        raise TokenDecryptionError(
            "PAGERO_OAUTH['ENCRYPTION_KEYS'] must hold Fernet keys "
            "(32 url-safe base64-encoded bytes, e.g. from Fernet.generate_key())."
        ) from None
    by_id: dict[str, Fernet] = {}
    for material in raw:
        key_id = hmac.new(material, _KEY_ID_INFO, hashlib.sha256).hexdigest()[:KEY_ID_LENGTH]
        by_id.setdefault(key_id, Fernet(base64.urlsafe_b64encode(_hkdf(material, _BOUND_INFO))))
    return Keyring(
        by_id=by_id,
        newest_id=next(iter(by_id)),
        fingerprint_key=_hkdf(raw[0], _FINGERPRINT_INFO),
    )


@sensitive_variables()
def get_keyring() -> Keyring:
    """The :class:`Keyring` for the settings in force (cached per key list, so rotation applies)."""
    keys = configured_keys()
    if not keys:
        raise TokenDecryptionError(
            "No encryption key: set SECRET_KEY or PAGERO_OAUTH['ENCRYPTION_KEYS']."
        )
    return _keyring_for(keys)


def configured_key_ids() -> tuple[str, ...]:
    return tuple(get_keyring().by_id)


@sensitive_variables()
def encrypt(value: str, context: str = "") -> str:
    """``value`` encrypted under the newest key, bound to ``context`` (see the module doc)."""
    if "\0" in context:
        raise ValueError("The context of an encrypted value cannot contain NUL.")
    ring = get_keyring()
    token = ring.by_id[ring.newest_id].encrypt(context.encode() + b"\0" + value.encode())
    return f"{PREFIX}{ring.newest_id}${token.decode('ascii')}"


@sensitive_variables()
def decrypt(value: str, context: str = "") -> str:
    """The plaintext of ``value``, which must have been encrypted for ``context``.

    Raises :class:`UndecryptableToken` (a :class:`TokenDecryptionError`) when no configured
    key wrote it, when it was altered or is not in the bound format, or when it belongs to
    another context (another row or column).
    """
    key_id, separator, token = value.removeprefix(PREFIX).partition("$")
    fernet = get_keyring().by_id.get(key_id)
    if not value.startswith(PREFIX) or not separator or fernet is None:
        raise UndecryptableToken(_UNDECRYPTABLE)
    try:
        bound, nul, plain = fernet.decrypt(token.encode("ascii")).partition(b"\0")
        if not nul or not hmac.compare_digest(bound, context.encode()):
            raise UndecryptableToken(
                "A stored Pagero token was encrypted for another row or column; it is not used."
            )
        return plain.decode()
    except (InvalidToken, UnicodeError) as exc:
        raise UndecryptableToken(_UNDECRYPTABLE) from exc


def needs_rotation(value: str) -> bool:
    """True when ``value`` was not written in the current format with the newest key."""
    return not value.startswith(f"{PREFIX}{get_keyring().newest_id}$")


@sensitive_variables()
def fingerprint(value: str) -> str:
    """A short label for a token: 12 hex digits of its HMAC-SHA256 under a key of its own.

    Safe to show to staff and to log: it identifies a token without revealing any part of it,
    and, being keyed (HKDF from the newest encryption key, its own ``info``), it does not let
    someone who holds a candidate token confirm it against logs. Stable while the newest key
    is; existing rows keep theirs until their next write.
    """
    if not value:
        return ""
    key = get_keyring().fingerprint_key
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:12]


def bound_context(model: type[models.Model], field_name: str, owner: Any) -> str:
    """What a value of ``model.field_name`` belonging to ``owner`` is bound to."""
    return f"{model._meta.label_lower}.{field_name}:{owner}"


def unknown_key_condition(field_name: str) -> Q:
    """Rows whose ``field_name`` holds a value that no configured key wrote (or that is not in
    the bound format at all). Plain SQL on the key id prefix: nothing is decrypted."""
    known = [
        models.Q(**{f"{field_name}__startswith": f"{PREFIX}{key_id}$"})
        for key_id in configured_key_ids()
    ]
    return ~models.Q(**{field_name: ""}) & ~reduce(or_, known)


class Ciphertext(str):
    """A value exactly as the database holds it: not decrypted (yet)."""

    __slots__ = ()


class EncryptedAttribute(DeferredAttribute):
    """The descriptor of an :class:`EncryptedTextField`: decrypts on first access, not on load.

    A row whose key is lost therefore loads (and can be shown, overwritten or deleted); only
    reading the value raises :class:`UndecryptableToken`. Deferred values are fetched raw.
    """

    field: EncryptedTextField

    @sensitive_variables()
    def __get__(self, instance: Any, cls: Any = None) -> Any:
        if instance is None:
            return self
        data = instance.__dict__
        name = self.field.attname
        if name not in data:
            data[name] = self.field.load_raw(instance)
        value = data[name]
        if isinstance(value, Ciphertext):
            value = data[name] = self.field.decrypt_for(instance, value)
        return value

    @sensitive_variables()
    def __set__(self, instance: Any, value: Any) -> None:
        instance.__dict__[self.field.attname] = value


class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """A text column that holds Fernet ciphertext bound to its row; Python code sees plaintext.

    The value is bound to ``(model, field, getattr(instance, bind_to))``; ``bind_to`` (default
    ``"user_id"``) must be set before the row is saved and must not change afterwards. It is
    written only through ``save()`` (or ``create()``, ``bulk_create()``): ``QuerySet.update()``
    and lookups know no row, so they accept no plain value. Empty strings are stored as empty
    strings (there is nothing to hide in "no ID token").
    """

    description = _("Encrypted text")
    descriptor_class = EncryptedAttribute

    def __init__(self, *args: Any, bind_to: str = "user_id", **kwargs: Any) -> None:
        self.bind_to = bind_to
        super().__init__(*args, **kwargs)

    def deconstruct(self) -> Any:
        name, path, args, kwargs = super().deconstruct()
        if self.bind_to != "user_id":
            kwargs["bind_to"] = self.bind_to
        return name, path, args, kwargs

    def context_for(self, instance: models.Model) -> str:
        return bound_context(type(instance), self.name, getattr(instance, self.bind_to))

    def load_raw(self, instance: models.Model) -> Any:
        """A deferred value, fetched as stored (one query, nothing decrypted)."""
        manager = type(instance)._base_manager.db_manager(instance._state.db)
        return manager.filter(pk=instance.pk).values_list(self.attname, flat=True).get()

    @sensitive_variables()
    def decrypt_for(self, instance: models.Model, value: str) -> str:
        try:
            return decrypt(value, self.context_for(instance))
        except UndecryptableToken:
            flag = f"_pagero_undecryptable_{self.attname}"
            if not instance.__dict__.get(flag):
                instance.__dict__[flag] = True
                logger.warning(
                    "Pagero token of user #%s (fingerprint %s): the %s cannot be decrypted with "
                    "the configured keys; the user must connect to Pagero again",
                    getattr(instance, self.bind_to, "?"),
                    instance.__dict__.get("fingerprint") or "-",
                    self.name.replace("_", " "),
                )
            raise

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value
        return Ciphertext(value)

    @sensitive_variables()
    def pre_save(self, model_instance: models.Model, add: bool) -> Any:
        """The value to store: plaintext encrypted for this row; a loaded, untouched value as
        it is, or moved to the newest key and format when it can be decrypted."""
        data = model_instance.__dict__
        value = data[self.attname] if self.attname in data else self.load_raw(model_instance)
        if value is None or value == "":
            return value
        if not isinstance(value, Ciphertext):
            return Ciphertext(encrypt(str(value), self.context_for(model_instance)))
        if not needs_rotation(value):
            return value
        context = self.context_for(model_instance)
        try:
            return Ciphertext(encrypt(decrypt(value, context), context))
        except TokenDecryptionError:
            return value  # cannot be read now, but it must not be lost: the key may come back

    @sensitive_variables()
    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "" or isinstance(value, Ciphertext):
            return value
        raise TypeError(
            "An encrypted column is written only by saving its row (the value is bound to the "
            "row); it cannot be searched, or set with QuerySet.update(), by plaintext."
        )
