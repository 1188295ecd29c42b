"""The one migration, ``0001_initial``: it creates what the models declare and is reversible."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from django_pagero_oauth.models import PageroIdentity, PageroToken

APP = "django_pagero_oauth"
INITIAL = (APP, "0001_initial")
MODELS = (PageroToken, PageroIdentity)


def migrate(target: tuple[str, str | None]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


@pytest.mark.django_db
def test_the_app_has_one_migration() -> None:
    executor = MigrationExecutor(connection)
    assert executor.loader.graph.leaf_nodes(APP) == [INITIAL]
    assert [key for key in executor.loader.disk_migrations if key[0] == APP] == [INITIAL]


def tables() -> set[str]:
    with connection.cursor() as cursor:
        return set(connection.introspection.table_names(cursor))


def schema(model: Any) -> tuple[set[str], dict[str, Any]]:
    """The table's columns and its constraints and indexes, as the database reports them."""
    table = model._meta.db_table
    with connection.cursor() as cursor:
        columns = {c.name for c in connection.introspection.get_table_description(cursor, table)}
        return columns, connection.introspection.get_constraints(cursor, table)


def assert_matches_the_model(model: Any) -> None:
    columns, constraints = schema(model)
    assert columns == {field.column for field in model._meta.concrete_fields}
    indexed = {
        tuple(info["columns"])
        for info in constraints.values()
        if info["index"] or info["unique"] or info["primary_key"]
    }
    for field in model._meta.concrete_fields:
        if field.db_index or field.unique:
            assert (field.column,) in indexed, f"{model.__name__}.{field.name} has no index"
    for constraint in model._meta.constraints:
        (found,) = [info for name, info in constraints.items() if name == constraint.name]
        assert found["unique"]
        assert found["columns"] == [model._meta.get_field(f).column for f in constraint.fields]


@pytest.mark.django_db(transaction=True)
def test_the_migration_creates_every_column_index_and_constraint_and_is_reversible(
    user: Any, pagero_token_factory: Any
) -> None:
    names = {model._meta.db_table for model in MODELS}
    for model in MODELS:
        assert_matches_the_model(model)
    assert {"refresh_lease_until", "refresh_lease_owner"} <= schema(PageroToken)[0]
    try:
        migrate((APP, None))
        assert not names & tables()
    finally:
        migrate(INITIAL)
    assert names <= tables()
    for model in MODELS:
        assert_matches_the_model(model)
    token = pagero_token_factory(user)
    assert PageroToken.objects.get(pk=token.pk).refresh_token == token.refresh_token
    PageroIdentity.objects.create(user=user, issuer="https://issuer.example", subject="s")
