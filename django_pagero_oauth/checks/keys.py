"""The checks of the encryption keys: they are Fernet keys (``E009``), and they decrypt the
stored tokens (``W003``, with a database)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.core.checks import CheckMessage, Error, Warning
from django.db import DatabaseError, router

from ..conf import app_settings


def _keys_valid() -> bool:
    from ..crypto import get_keyring
    from ..exceptions import TokenDecryptionError

    try:
        get_keyring()
    except (TokenDecryptionError, TypeError, ValueError, AttributeError):
        return False
    return True


def check_encryption_keys(**kwargs: Any) -> list[CheckMessage]:
    if "ENCRYPTION_KEYS" not in app_settings.user_settings or _keys_valid():
        return []
    return [
        Error(
            "PAGERO_OAUTH['ENCRYPTION_KEYS'] does not hold valid Fernet keys.",
            hint="Generate keys with cryptography.fernet.Fernet.generate_key(), newest first.",
            id="django_pagero_oauth.E009",
        )
    ]


def check_stored_tokens_decrypt(
    app_configs: Sequence[AppConfig] | None = None,
    databases: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[CheckMessage]:
    """Count the stored tokens the configured keys cannot decrypt (``W003``): one ``COUNT`` on
    the key id every value starts with. A warning: for their users it means "connect again".
    Runs with ``manage.py check --database`` (every ``check`` from Django 6.1) and in
    ``pagero_check``."""
    from ..models import PageroToken

    if not databases or not _keys_valid():
        return []  # E009 reports unusable keys
    messages: list[CheckMessage] = []
    for alias in databases:
        if not router.allow_migrate_model(alias, PageroToken):
            continue
        try:
            count = PageroToken.objects.using(alias).count_undecryptable()
        except DatabaseError:
            continue  # not migrated yet: nothing stored to check
        if count:
            messages.append(
                Warning(
                    f"{count} stored Pagero token(s) in database {alias!r} cannot be decrypted "
                    "with the configured keys; their users must connect to Pagero again.",
                    hint="Put the key (or SECRET_KEY) they were written with back into "
                    "ENCRYPTION_KEYS (or SECRET_KEY_FALLBACKS), after the new one; or delete "
                    "them with 'manage.py pagero_prune_tokens --undecryptable'.",
                    id="django_pagero_oauth.W003",
                )
            )
    return messages
