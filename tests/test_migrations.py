"""Tests of the data migration ``0002``: old-format rows re-encrypted bound, fingerprints keyed."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from django_pagero_oauth import crypto
from django_pagero_oauth.models import PageroToken

APP = "django_pagero_oauth"
BEFORE = (APP, "0001_initial")
AFTER = (APP, "0002_bound_ciphertexts_keyed_fingerprints")
COLUMNS = ("access_token", "refresh_token", "id_token")
KEY = Fernet.generate_key().decode()
LOST_KEY = Fernet.generate_key().decode()


def latest() -> tuple[str, str]:
    """The app's last migration."""
    executor = MigrationExecutor(connection)
    (leaf,) = executor.loader.graph.leaf_nodes(APP)
    return leaf


def migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def raw_row(pk: Any) -> dict[str, Any]:
    return dict(PageroToken.objects.filter(pk=pk).values(*COLUMNS, "fingerprint", "updated").get())


def write_old_format(token: PageroToken, key: str) -> dict[str, Any]:
    """Store ``token`` as version 0.1 did: bare Fernet tokens, an unkeyed SHA-256 fingerprint."""
    plain = {name: getattr(token, name) for name in COLUMNS}
    PageroToken.objects.filter(pk=token.pk).update(
        fingerprint=hashlib.sha256(plain["refresh_token"].encode()).hexdigest()[:12],
        **{
            name: crypto.Ciphertext(Fernet(key.encode()).encrypt(value.encode()).decode())
            for name, value in plain.items()
        },
    )
    return plain


@pytest.mark.django_db(transaction=True)
def test_old_rows_are_bound_and_get_keyed_fingerprints_and_back(
    user: Any, other_user: Any, pagero_token_factory: Any, settings: Any
) -> None:
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": [KEY]}
    readable = pagero_token_factory(user, id_token="eyJ.eyJ.id-token")
    lost = pagero_token_factory(other_user)
    plain = write_old_format(readable, KEY)
    write_old_format(lost, LOST_KEY)  # its key is gone: the migration cannot read it
    before = raw_row(readable.pk)
    lost_before = raw_row(lost.pk)
    migrate(BEFORE)
    # Even a site that refuses old-format values at run time gets them converted.
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ACCEPT_UNBOUND_CIPHERTEXTS": False}
    try:
        migrate(AFTER)

        after = raw_row(readable.pk)
        for name in COLUMNS:
            assert after[name].startswith(crypto.PREFIX), name
            context = crypto.bound_context(PageroToken, name, user.pk)
            assert crypto.decrypt(after[name], context) == plain[name]
        assert after["fingerprint"] == crypto.fingerprint(plain["refresh_token"])
        assert after["fingerprint"] != before["fingerprint"]
        assert after["updated"] == before["updated"]
        assert raw_row(lost.pk) == lost_before  # left exactly as it was
        # The model of today, on the columns that migration 0002 knows.
        reread = PageroToken.objects.only("user", *COLUMNS).get(pk=readable.pk)
        assert {name: getattr(reread, name) for name in COLUMNS} == plain

        migrate(BEFORE)  # reversible: back to bare Fernet tokens and SHA-256 fingerprints
        reverted = raw_row(readable.pk)
        for name in COLUMNS:
            assert Fernet(KEY.encode()).decrypt(reverted[name].encode()).decode() == plain[name]
        assert reverted["fingerprint"] == before["fingerprint"]
        assert raw_row(lost.pk) == lost_before
    finally:
        migrate(latest())
