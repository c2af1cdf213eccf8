"""The state's schema: its tables, its version, and the numbered migrations that make it.

A schema holds `schema_version` (one row per version reached: a reader checks the highest is one it knows),
`workspaces` (lineage, serial and salt of each workspace), `accounts` (one row per account per workspace) and
`lock_holders` (who holds each advisory lock, in full). Reading creates nothing: absent tables are an empty state.
The first command that writes migrates the schema: each migration in `MIGRATIONS`, in order, that the schema
lacks, under a transaction-level advisory lock, so that writers starting at once on a new schema make it once.

A migration is idempotent (every statement `if not exists`), and belongs to a schema version: applying a
migration of a version above the recorded one records that version. A migration that only adds what earlier
reconcilers of its version never read keeps that version (lock_holders, added to version 1 after it was
released), so that they can still use the schema; a database made before it lacks its tables, and gets them.
A schema at the latest version with every table present needs nothing: it is read, never written.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from reconciler.errors import StateError
from reconciler.plain import Plain


class Migration(Plain):
    """One step towards the current schema: `statements` (each idempotent, `{s}` for the schema) create
    `tables`; `version` is the schema version it belongs to, recorded in `schema_version`."""

    __slots__ = ("number", "version", "does", "tables", "statements")

    def __init__(
        self, number: int, version: int, does: str, tables: frozenset[str], statements: tuple[str, ...]
    ) -> None:
        self.number = number
        self.version = version
        self.does = does
        self.tables = tables
        self.statements = statements


#: Every migration, in the order they apply; `number` is the position (from 1).
MIGRATIONS = (
    Migration(
        1,
        1,
        "the workspaces (lineage, serial, salt) and each workspace's accounts",
        frozenset(("workspaces", "accounts")),
        (
            "create table if not exists {s}.workspaces (workspace text primary key, lineage text not null, "
            "serial bigint not null, salt text not null)",
            "create table if not exists {s}.accounts (workspace text not null, account_id text not null, "
            "record jsonb not null, primary key (workspace, account_id))",
        ),
    ),
    Migration(
        2,
        1,
        "who holds each lock, in full (application_name is cut at 63 bytes); earlier reconcilers never read it",
        frozenset(("lock_holders",)),
        (
            "create table if not exists {s}.lock_holders (lock_key bigint not null, pid integer not null, "
            "holder text not null, primary key (lock_key, pid))",
        ),
    ),
)
#: The schema version this reconciler writes, and the newest it reads.
SCHEMA_VERSION = max(migration.version for migration in MIGRATIONS)
TABLES = ("schema_version", *sorted(set().union(*(migration.tables for migration in MIGRATIONS))))


class Schema:
    """The schema `name` of a state shown as `shown` in messages: its tables as SQL (`accounts`, `workspaces`,
    `lock_holders`), what it holds (`present_tables`, `version`), and its migrations (`migrate`)."""

    def __init__(self, name: str, shown: str) -> None:
        self.name = name
        self.shown = shown
        self.identifier = sql.Identifier(name)
        self.accounts = self.table("accounts")
        self.workspaces = self.table("workspaces")
        self.lock_holders = self.table("lock_holders")

    def table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(self.identifier, sql.Identifier(name))

    def present_tables(self, connection: psycopg.Connection[Any]) -> set[str]:
        """Which of the state's tables exist."""
        rows = connection.execute(
            "select c.relname from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relname = any(%s)",
            (self.name, list(TABLES)),
        ).fetchall()
        return {row[0] for row in rows}

    def version(self, connection: psycopg.Connection[Any]) -> int | None:
        """The recorded version (None when none is), once `schema_version` exists; StateError if it is newer
        than this reconciler's."""
        row = connection.execute(
            sql.SQL("select max(version) from {}").format(self.table("schema_version"))
        ).fetchone()
        version = row[0] if row else None
        if version is not None and version > SCHEMA_VERSION:
            raise StateError(f"{self.shown}: state schema version {version} is newer than this reconciler")
        return version

    def migrate(self, connection: psycopg.Connection[Any], lock_key: int, upto: int | None = None) -> None:
        """Apply the migrations the schema lacks (those up to number `upto`, when given), in order, holding the
        advisory lock `lock_key` for the transaction; nothing is written when none is lacking."""
        migrations = MIGRATIONS[:upto] if upto is not None else MIGRATIONS
        wanted = {"schema_version"}.union(*(migration.tables for migration in migrations))
        latest = max(migration.version for migration in migrations)
        present = self.present_tables(connection)
        if wanted <= present and self.version(connection) == latest:
            return
        with connection.transaction():
            connection.execute("select pg_advisory_xact_lock(%s)", (lock_key,))
            connection.execute(sql.SQL("create schema if not exists {}").format(self.identifier))
            connection.execute(
                sql.SQL("create table if not exists {}.schema_version (version integer not null)").format(
                    self.identifier
                )
            )
            recorded = self.version(connection) or 0
            for migration in migrations:
                # `present` was read before the lock: a table made since by another writer is made again,
                # which `if not exists` makes nothing; the versions are read under the lock.
                if migration.version <= recorded and migration.tables <= present:
                    continue
                for statement in migration.statements:
                    connection.execute(sql.SQL(statement).format(s=self.identifier))
                if migration.version > recorded:
                    connection.execute(
                        sql.SQL("insert into {} values (%s)").format(self.table("schema_version")),
                        (migration.version,),
                    )
                    recorded = migration.version
