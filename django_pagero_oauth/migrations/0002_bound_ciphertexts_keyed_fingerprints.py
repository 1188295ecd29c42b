"""Re-encrypt the stored tokens bound to their row and column, and key the fingerprints.

Values in the old format are bare Fernet tokens of the configured keys, bound to nothing, and
the fingerprint was an unkeyed SHA-256. Each value that decrypts with the keys configured now is
re-encrypted in the bound format (``crypto`` module docstring); a row whose refresh token
decrypts gets its keyed fingerprint. A value that does not decrypt is left exactly as it is
(and so is the row's fingerprint): it stays readable ("read-both") if its key comes back, and
``pagero_check`` counts it. ``updated`` is not touched. Reversible.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import migrations, models

TOKEN_COLUMNS = ("access_token", "refresh_token", "id_token")
BATCH_SIZE = 500


def _rows(apps: Any, schema_editor: Any) -> Any:
    """``(manager, batches)``: every row's pk, user id and raw token columns, by pk."""
    token_model = apps.get_model("django_pagero_oauth", "PageroToken")
    manager = token_model._base_manager.using(schema_editor.connection.alias)

    def batches() -> Any:
        last = None
        while True:
            query = manager.order_by("pk").values_list("pk", "user_id", *TOKEN_COLUMNS)
            if last is not None:
                query = query.filter(pk__gt=last)
            batch = list(query[:BATCH_SIZE])
            if not batch:
                return
            last = batch[-1][0]
            yield from batch

    return token_model, manager, batches()


def _usable_keys() -> bool:
    from django_pagero_oauth import crypto
    from django_pagero_oauth.exceptions import TokenDecryptionError

    try:
        crypto.get_keyring()
    except TokenDecryptionError:
        return False  # no usable key: nothing can be decrypted, so nothing changes
    return True


def bind_to_rows(apps: Any, schema_editor: Any) -> None:
    from django_pagero_oauth import crypto
    from django_pagero_oauth.exceptions import TokenDecryptionError

    if not _usable_keys():
        return
    token_model, manager, rows = _rows(apps, schema_editor)
    for pk, user_id, *values in rows:
        changes: dict[str, str] = {}
        for name, value in zip(TOKEN_COLUMNS, values, strict=True):
            if not value or not crypto.is_legacy(value):
                continue
            try:
                plain = crypto.decrypt_old_format(value)
            except TokenDecryptionError:
                continue
            context = crypto.bound_context(token_model, name, user_id)
            changes[name] = crypto.Ciphertext(crypto.encrypt(plain, context))
            if name == "refresh_token":
                changes["fingerprint"] = crypto.fingerprint(plain)
        if changes:
            manager.filter(pk=pk).update(**changes)


def unbind(apps: Any, schema_editor: Any) -> None:
    """Back to the old format (bare Fernet tokens, SHA-256 fingerprints)."""
    from django_pagero_oauth import crypto
    from django_pagero_oauth.exceptions import TokenDecryptionError

    if not _usable_keys():
        return
    token_model, manager, rows = _rows(apps, schema_editor)
    for pk, user_id, *values in rows:
        changes: dict[str, str] = {}
        for name, value in zip(TOKEN_COLUMNS, values, strict=True):
            if not value or crypto.is_legacy(value):
                continue
            try:
                plain = crypto.decrypt(value, crypto.bound_context(token_model, name, user_id))
            except TokenDecryptionError:
                continue
            changes[name] = crypto.Ciphertext(crypto.get_fernet().encrypt(plain.encode()).decode())
            if name == "refresh_token":
                changes["fingerprint"] = hashlib.sha256(plain.encode()).hexdigest()[:12]
        if changes:
            manager.filter(pk=pk).update(**changes)


class Migration(migrations.Migration):
    dependencies = [
        ("django_pagero_oauth", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="pagerotoken",
            name="fingerprint",
            field=models.CharField(
                blank=True,
                default="",
                help_text=(
                    "12 hex digits of a keyed hash (HMAC) of the refresh token. Reveals nothing."
                ),
                max_length=12,
                verbose_name="fingerprint",
            ),
        ),
        migrations.RunPython(bind_to_rows, unbind, elidable=False),
    ]
