"""Migration ``0002`` never writes a spent refresh token back over one rotated while it runs.

During a rolling deployment the processes of the other version (and keep-alive jobs) keep
refreshing while ``0002`` re-encrypts every row (forwards: old format to bound; backwards: bound
to old). A refresh that commits between the migration's read of a row and its write has spent
the refresh token the migration read. What this proves, on PostgreSQL (another connection in
another thread writes the rotated token just then): the migration writes a row only while it
still holds what was read (compare-and-set), reads it again otherwise, and the rotated token is
what is stored afterwards, in the migration's target format, in both directions.
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
        # The model of today, on the columns that migration 0002 knows.
        stored = PageroToken.objects.only("user", "refresh_token").get(pk=token.pk)
        assert stored.refresh_token == ROTATED, "0002 wrote the spent refresh token back"
    finally:
        monkeypatch.setattr(crypto, "decrypt_old_format", real_decrypt_old_format)
        migrate(_latest())


@pytest.mark.django_db(transaction=True)
def test_a_refresh_token_rotated_while_0002_is_reversed_is_not_overwritten(
    user: Any, pagero_token_factory: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the concurrent writer needs a database with row-level concurrency")
    settings.PAGERO_OAUTH = {**settings.PAGERO_OAUTH, "ENCRYPTION_KEYS": [KEY]}
    token = pagero_token_factory(user)  # in the bound format, as the new version writes it

    real_decrypt = crypto.decrypt
    rotated = threading.Event()

    def new_process_refreshes_now() -> None:
        try:
            context = crypto.bound_context(PageroToken, "refresh_token", user.pk)
            PageroToken.objects.filter(pk=token.pk).update(
                refresh_token=crypto.Ciphertext(crypto.encrypt(ROTATED, context))
            )
        finally:
            connections.close_all()

    def decrypt(value: str, context: str) -> str:
        if not rotated.is_set():
            rotated.set()
            writer = threading.Thread(target=new_process_refreshes_now)
            writer.start()
            writer.join(10)
        return real_decrypt(value, context)

    monkeypatch.setattr(crypto, "decrypt", decrypt)
    try:
        migrate(BEFORE)
        monkeypatch.setattr(crypto, "decrypt", real_decrypt)
        assert rotated.is_set()
        raw = PageroToken.objects.filter(pk=token.pk).values_list("refresh_token", flat=True).get()
        assert Fernet(KEY.encode()).decrypt(raw.encode()).decode() == ROTATED, (
            "reversing 0002 wrote the spent refresh token back"
        )
    finally:
        monkeypatch.setattr(crypto, "decrypt", real_decrypt)
        migrate(_latest())


def _latest() -> tuple[str, str]:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    return next(node for node in executor.loader.graph.leaf_nodes() if node[0] == AFTER[0])
