"""Take the write lock first: the one rule for a transaction that reads rows it will write.

PostgreSQL (and every database with row locks) locks the rows read with ``SELECT ... FOR
UPDATE``. SQLite has none: there a transaction that reads first and writes later fails at once
("database is locked") when another one wrote meanwhile, so a no-op ``UPDATE`` takes the
database's write lock before anything is read, and a concurrent writer waits instead.
"""

from __future__ import annotations

from typing import TypeVar

from django.db import connections, models

Q = TypeVar("Q", bound=models.QuerySet)  # type: ignore[type-arg]


def has_row_locks(using: str) -> bool:
    """The database ``using`` locks single rows (``SELECT ... FOR UPDATE``); SQLite does not."""
    return bool(connections[using].features.has_select_for_update)


def write_locked(queryset: Q) -> Q:
    """``queryset``'s rows, write-locked until the current transaction ends. Call inside one.

    With row locks the rows are locked as the returned queryset reads them (of its own model
    only, where the database can say so). Without (SQLite) the database's write lock is taken
    now, by a no-op ``UPDATE`` of the same rows, which takes it even when no row matches.
    """
    using = queryset.select_for_update().db  # the write database, as update() would use
    if has_row_locks(using):
        of = ("self",) if connections[using].features.has_select_for_update_of else ()
        return queryset.select_for_update(of=of)
    pk = queryset.model._meta.pk.name
    queryset.update(**{pk: models.F(pk)})
    return queryset
