"""Attack (race): migration ``0002`` overwrites a refresh token rotated while it runs.

``0002.bind_to_rows`` reads the rows in batches of 500 (no lock), decrypts and re-encrypts each
value, then writes it back with ``manager.filter(pk=pk).update(...)``: no ``select_for_update``,
no compare-and-set on the value it read. During a rolling deployment the old processes (and the
keep-alive jobs) keep refreshing. A refresh that commits between the migration's read of a row
and its ``UPDATE`` of that row has already spent the old single-use refresh token at Pagero; the
migration then writes the OLD (dead) refresh token back over the new one, re-encrypted in the new
format. The new refresh token is gone: the user's connection is lost (the next refresh is
``invalid_grant``). SECURITY.rst: "a rotated refresh token must never be lost".

Reproduced on PostgreSQL: the "old process" is another connection in another thread that
stores a rotated token in the old format (as version 0.1 does) while the migration is between
its read and its write of the row.

Impact: silent loss of connections during the upgrade, for every row refreshed in that window
(a batch of 500 rows is read at once, so the window per row grows with the batch). Severity:
medium.

Fix (suggested): in ``migrations/0002...bind_to_rows`` (and ``unbind``) write each row only if
it still holds what was read: ``manager.filter(pk=pk, **{name: value for the columns read})
.update(...)`` (re-read and retry, or skip, when 0 rows match), or lock each batch with
``select_for_update()`` inside the migration's transaction.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from cryptography.fernet import Fernet
from django.db import connection, connections
from django.db.migrations.executor import MigrationExecutor

from django_pagero_oauth import crypto
from django_pagero_oauth.models import PageroToken

from ..test_migrations import AFTER, BEFORE, KEY, migrate, write_old_format

ROTATED = "_1XBPWQQ_rotated-by-an-old-process-while-0002-runs"


@pytest.mark.django_db(transaction=True)
def test_a_refresh_token_rotated_while_0002_runs_is_not_overwritten(
    user: Any, pagero_token_factory: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the concurrent writer needs a database with row-level concurrency")
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": [KEY]}
    token = pagero_token_factory(user)
    write_old_format(token, KEY)
    migrate(BEFORE)

    real_decrypt_old_format = crypto.decrypt_old_format
    rotated = threading.Event()

    def old_process_refreshes_now() -> None:
        try:  # what version 0.1 writes after Pagero rotated the refresh token
            PageroToken.objects.filter(pk=token.pk).update(
                refresh_token=crypto.Ciphertext(
                    Fernet(KEY.encode()).encrypt(ROTATED.encode()).decode()
                )
            )
        finally:
            connections.close_all()

    def decrypt_old_format(value: str) -> str:
        # The migration has read the batch and now works on it: the old process commits a
        # refresh of this row just then (before the migration's UPDATE of it).
        if not rotated.is_set():
            rotated.set()
            writer = threading.Thread(target=old_process_refreshes_now)
            writer.start()
            writer.join(10)
        return real_decrypt_old_format(value)

    monkeypatch.setattr(crypto, "decrypt_old_format", decrypt_old_format)
    try:
        migrate(AFTER)
        monkeypatch.setattr(crypto, "decrypt_old_format", real_decrypt_old_format)
        assert rotated.is_set()
        stored = PageroToken.objects.get(pk=token.pk)
        assert stored.refresh_token == ROTATED, "0002 wrote the spent refresh token back"
    finally:
        monkeypatch.setattr(crypto, "decrypt_old_format", real_decrypt_old_format)
        migrate(_latest())


def _latest() -> tuple[str, str]:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    return next(node for node in executor.loader.graph.leaf_nodes() if node[0] == AFTER[0])
