"""Re-encrypt the stored tokens bound to their row and column, and key the fingerprints.

Values in the old format are bare Fernet tokens of the configured keys, bound to nothing, and
the fingerprint was an unkeyed SHA-256. Each value that decrypts with the keys configured now is
re-encrypted in the bound format (``crypto`` module docstring); a row whose refresh token
decrypts gets its keyed fingerprint. A value that does not decrypt is left exactly as it is
(and so is the row's fingerprint): it stays readable ("read-both") if its key comes back, and
``pagero_check`` counts it. ``updated`` is not touched. Reversible.

Processes of the previous version keep refreshing while this runs (a rolling deployment), and
each refresh spends a single-use refresh token: a row is written only if it still holds the
values that were read (compare-and-set), else it is read again, so a token rotated meanwhile is
never overwritten by the spent one.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import migrations, models

TOKEN_COLUMNS = ("access_token", "refresh_token", "id_token")
BATCH_SIZE = 500
#: How often a row that keeps changing under the migration is read again; then it is left in
#: the old format (still read, and rewritten by its next save).
ATTEMPTS = 5


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


def _rewrite(manager: Any, pk: Any, user_id: Any, values: list[Any], convert: Any) -> None:
    """Write ``convert(user_id, values)`` to row ``pk`` only while it holds ``values``."""
    for _attempt in range(ATTEMPTS):
        changes = convert(user_id, values)
        if not changes:
            return
        read = dict(zip(TOKEN_COLUMNS, values, strict=True))
        if manager.filter(pk=pk, **read).update(**changes):
            return
        # Another process wrote the row after it was read (a refresh rotated the token).
        row = manager.filter(pk=pk).values_list("user_id", *TOKEN_COLUMNS).first()
        if row is None:
            return
        user_id, *values = row


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

    def convert(user_id: Any, values: list[Any]) -> dict[str, str]:
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
        return changes

    for pk, user_id, *values in rows:
        _rewrite(manager, pk, user_id, values, convert)


def unbind(apps: Any, schema_editor: Any) -> None:
    """Back to the old format (bare Fernet tokens, SHA-256 fingerprints)."""
    from django_pagero_oauth import crypto
    from django_pagero_oauth.exceptions import TokenDecryptionError

    if not _usable_keys():
        return
    token_model, manager, rows = _rows(apps, schema_editor)

    def convert(user_id: Any, values: list[Any]) -> dict[str, str]:
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
        return changes

    for pk, user_id, *values in rows:
        _rewrite(manager, pk, user_id, values, convert)


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
