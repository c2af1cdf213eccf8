"""The other schemas of the state's database that hold reconciler state: where a state whose schema holds nothing
(a mistyped `schema=`, or none given) looks for the accounts it would create.

Two reads at most, and nothing read unless the state's own schema holds no account: one query over the catalogue
(the schemas that have the state's tables, readable by this role), then one count of the wanted ids per
candidate, all candidates in one statement. A schema this role may not read is not looked at.
"""

from __future__ import annotations

import difflib
from typing import Any

import psycopg
from psycopg import sql

from reconciler.state.postgres.schema import Schema

#: At most this many other schemas are counted (the closest names first): a database holding many states
#: costs no more than one scan of each of these.
MAX_CANDIDATES = 100

_RECONCILER_SCHEMAS = (
    "select n.nspname from pg_catalog.pg_namespace n join pg_catalog.pg_class c on c.relnamespace = n.oid "
    "where c.relname in ('accounts', 'workspaces') and c.relkind in ('r', 'p') "
    "and has_schema_privilege(n.oid, 'USAGE') and has_table_privilege(c.oid, 'SELECT') "
    "group by n.nspname having count(distinct c.relname) = 2"
)


def reconciler_schemas(connection: psycopg.Connection[Any]) -> list[str]:
    """Every schema of the database that has the state's tables (`accounts`, `workspaces`) and that this role
    may read."""
    return [row[0] for row in connection.execute(_RECONCILER_SCHEMAS).fetchall()]


def holds_accounts(connection: psycopg.Connection[Any], schema: Schema) -> bool:
    """Whether `schema`'s `accounts` table holds a row, in any workspace (its tables exist)."""
    row = connection.execute(sql.SQL("select exists (select 1 from {})").format(schema.accounts)).fetchone()
    return bool(row and row[0])


def other_schemas(
    connection: psycopg.Connection[Any], schema: Schema, wanted: list[str] | None
) -> dict[str, dict[str, int]]:
    """For a state whose `schema` holds no account (absent, without the tables, or with none recorded): each
    other schema of the database that holds reconciler state, and each of its workspaces that holds some of
    `wanted` (storable ids; None: any account) with how many. {} when `schema` holds accounts."""
    with connection.transaction():
        connection.execute("set transaction isolation level repeatable read")
        found = reconciler_schemas(connection)
        if schema.name in found and holds_accounts(connection, schema):
            return {}
        others = sorted(
            (name for name in found if name != schema.name),
            key=lambda name: (-difflib.SequenceMatcher(None, schema.name, name).ratio(), name),
        )[:MAX_CANDIDATES]
        held: dict[str, dict[str, int]] = {name: {} for name in others}
        if not others or wanted == []:
            return held
        only = sql.SQL("") if wanted is None else sql.SQL(" where account_id = any(%(wanted)s)")
        counts = sql.SQL(" union all ").join(
            sql.SQL("select {name}, workspace, count(*) from {table}{only} group by workspace").format(
                name=sql.Literal(name), table=Schema(name, "").accounts, only=only
            )
            for name in others
        )
        for name, workspace, count in connection.execute(
            counts, None if wanted is None else {"wanted": wanted}
        ).fetchall():
            held[name][workspace] = int(count)
    return held
