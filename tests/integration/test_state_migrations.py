"""The PostgreSQL schema's numbered migrations: a fresh schema gets them all, a schema that lacks the last one gets
it, running them again changes nothing, and a schema as reconciler made it before the migrations were numbered is
at the current version (read, never written). Schemas are compared by their catalog: tables, columns, keys and
the recorded versions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.errors import StateError
from reconciler.state.postgres.schema import MIGRATIONS, SCHEMA_VERSION, TABLES, Schema
from tests.helpers import PG_URL, fresh_postgres_state

#: The tables as reconciler created them before its migrations were numbered (version 1, lock_holders added
#: later without a new version): the format an existing database has.
BEFORE_NUMBERED_MIGRATIONS = (
    'create schema "{s}"',
    'create table "{s}".schema_version (version integer not null)',
    'create table "{s}".workspaces (workspace text primary key, lineage text not null, serial bigint not null, '
    "salt text not null)",
    'create table "{s}".accounts (workspace text not null, account_id text not null, record jsonb not null, '
    "primary key (workspace, account_id))",
    'insert into "{s}".schema_version values (1)',
    'create table "{s}".lock_holders (lock_key bigint not null, pid integer not null, holder text not null, '
    "primary key (lock_key, pid))",
)
LOCK_KEY = 4242


@pytest.fixture
def schema() -> Iterator[str]:
    """The name of a schema that does not exist yet, dropped afterwards."""
    with fresh_postgres_state("migrations") as url:
        yield parse_qs(urlsplit(url).query)["schema"][0]


@pytest.fixture
def connection() -> Iterator[Any]:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as connection:
        yield connection


def catalog(connection: Any, schema: str) -> dict[str, Any]:
    """What a schema is made of, without its name: each table's columns (in order, with type and nullability),
    its indexes, and the versions recorded."""
    columns = connection.execute(
        "select table_name, ordinal_position, column_name, data_type, is_nullable from information_schema.columns "
        "where table_schema = %s order by table_name, ordinal_position",
        (schema,),
    ).fetchall()
    indexes = connection.execute(
        "select tablename, replace(indexdef, %s, 'S') from pg_indexes where schemaname = %s order by 1, 2",
        (f'"{schema}"' if schema != schema.lower() else schema, schema),
    ).fetchall()
    present = {row[0] for row in columns}
    versions = (
        connection.execute(f'select version from "{schema}".schema_version order by 1').fetchall()
        if "schema_version" in present
        else None
    )
    return {"columns": columns, "indexes": indexes, "versions": versions}


def _read_only(connection: Any) -> None:
    """From here on, any write on `connection` fails: what runs after writes nothing if it succeeds."""
    connection.execute("set default_transaction_read_only = on")


def test_the_migrations_are_numbered_in_order_and_every_statement_is_idempotent() -> None:
    assert [migration.number for migration in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert [migration.version for migration in MIGRATIONS] == sorted(
        migration.version for migration in MIGRATIONS
    )
    assert SCHEMA_VERSION == MIGRATIONS[-1].version == 1  # a new version makes older reconcilers refuse
    for migration in MIGRATIONS:
        assert all(statement.startswith("create table if not exists ") for statement in migration.statements)
    assert set(TABLES) == {"schema_version"}.union(*(migration.tables for migration in MIGRATIONS))


def test_a_fresh_schema_gets_every_migration_and_the_format_it_always_had(schema, connection) -> None:
    Schema(schema, "state").migrate(connection, LOCK_KEY)
    made = catalog(connection, schema)
    assert {row[0] for row in made["columns"]} == set(TABLES)
    assert made["versions"] == [(SCHEMA_VERSION,)]
    before = f"{schema}_before"
    try:
        for statement in BEFORE_NUMBERED_MIGRATIONS:
            connection.execute(statement.format(s=before))
        assert catalog(connection, before) == made
    finally:
        connection.execute(f'drop schema if exists "{before}" cascade')


def test_a_schema_at_the_current_version_is_read_and_never_written(schema, connection) -> None:
    for statement in BEFORE_NUMBERED_MIGRATIONS:
        connection.execute(statement.format(s=schema))
    existing = catalog(connection, schema)
    _read_only(connection)
    Schema(schema, "state").migrate(connection, LOCK_KEY)
    assert catalog(connection, schema) == existing


def test_a_schema_without_the_last_migration_is_brought_to_the_current_one(schema, connection) -> None:
    """A database made before lock_holders existed: version 1, without that table."""
    Schema(schema, "state").migrate(connection, LOCK_KEY, upto=len(MIGRATIONS) - 1)
    earlier = catalog(connection, schema)
    assert {row[0] for row in earlier["columns"]} == set(TABLES) - MIGRATIONS[-1].tables
    assert earlier["versions"] == [(MIGRATIONS[-2].version,)]
    Schema(schema, "state").migrate(connection, LOCK_KEY)
    fresh = f"{schema}_fresh"
    try:
        Schema(fresh, "state").migrate(connection, LOCK_KEY)
        assert catalog(connection, schema) == catalog(connection, fresh)
    finally:
        connection.execute(f'drop schema if exists "{fresh}" cascade')


def test_migrating_twice_changes_nothing(schema, connection) -> None:
    Schema(schema, "state").migrate(connection, LOCK_KEY)
    once = catalog(connection, schema)
    _read_only(connection)
    Schema(schema, "state").migrate(connection, LOCK_KEY)
    assert catalog(connection, schema) == once


def test_a_newer_schema_version_is_refused(schema, connection) -> None:
    Schema(schema, "state").migrate(connection, LOCK_KEY)
    connection.execute(f'insert into "{schema}".schema_version values (%s)', (SCHEMA_VERSION + 1,))
    with pytest.raises(
        StateError, match=f"^state: state schema version {SCHEMA_VERSION + 1} is newer than this"
    ):
        Schema(schema, "state").migrate(connection, LOCK_KEY)
