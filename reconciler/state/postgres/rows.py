"""A workspace's rows: its identity (lineage, serial, salt) in `workspaces` and one row per account in
`accounts`, read as one consistent snapshot and written whole or for some accounts."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

import psycopg
from psycopg import sql

from reconciler.errors import StateError
from reconciler.model import AccountRecord, Recorded
from reconciler.state.base import new_salt
from reconciler.state.document import record_problem
from reconciler.state.postgres.database import fetch_value
from reconciler.state.postgres.schema import Schema


def storable(account_id: str) -> bool:
    """Whether PostgreSQL's text can hold `account_id` (no NUL, valid UTF-8): one it cannot is recorded nowhere,
    so a read of it asks for nothing rather than failing (a saved plan's targets come from a file)."""
    if "\0" in account_id:
        return False
    try:
        account_id.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


class WorkspaceRows:
    """The rows of `workspace` in `schema`; each method takes the connection to use, and reads in a transaction
    of its own (repeatable read: one snapshot) or writes in one."""

    def __init__(self, schema: Schema, workspace: str) -> None:
        self.schema = schema
        self.workspace = workspace

    # -- reading ---------------------------------------------------------------------------------------------
    def identity(self, connection: psycopg.Connection[Any]) -> tuple[str, int, str] | None:
        """First in a transaction (it makes it repeatable read): the workspace's lineage, serial and salt, or None
        where nothing was ever written (absent tables included: reading creates nothing)."""
        connection.execute("set transaction isolation level repeatable read")
        present = self.schema.present_tables(connection)
        if not {"workspaces", "accounts"} <= present:
            return None
        if "schema_version" in present:
            self.schema.version(connection)
        row = connection.execute(
            sql.SQL("select lineage, serial, salt from {} where workspace = %s").format(
                self.schema.workspaces
            ),
            (self.workspace,),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def snapshot(
        self, connection: psycopg.Connection[Any], account_ids: Iterable[str] | None, failed: bool
    ) -> Recorded:
        """One consistent snapshot: every account, or only `account_ids` (those recorded), or only the accounts
        whose last failure holds a message (`failed`). An account's record is the same whichever is asked."""
        query = sql.SQL("select account_id, record from {} where workspace = %s").format(self.schema.accounts)
        parameters: tuple[Any, ...] = (self.workspace,)
        if account_ids is not None:
            query += sql.SQL(" and account_id = any(%s)")
            parameters += ([i for i in dict.fromkeys(account_ids) if storable(i)],)
        if failed:
            query += sql.SQL(" and jsonb_typeof(record -> 'last_failure' -> 'message') = 'string'")
        with connection.transaction():
            identity = self.identity(connection)
            if identity is None:
                return Recorded(lineage=None, serial=0, salt=new_salt())
            rows = connection.execute(query, parameters).fetchall()
        for account_id, record in rows:
            problem = record_problem(account_id, record)
            if problem:
                raise StateError(
                    f"{self.schema.shown}: an account row is not a valid reconciler record: {problem}"
                )
        lineage, serial, salt = identity
        return Recorded(
            lineage=lineage,
            serial=serial,
            salt=salt,
            accounts={account_id: AccountRecord.from_json(record) for account_id, record in rows},
        )

    def account_ids(self, connection: psycopg.Connection[Any]) -> set[str]:
        with connection.transaction():
            if self.identity(connection) is None:
                return set()
            rows = connection.execute(
                sql.SQL("select account_id from {} where workspace = %s").format(self.schema.accounts),
                (self.workspace,),
            ).fetchall()
        return {row[0] for row in rows}

    def count(self, connection: psycopg.Connection[Any]) -> int:
        with connection.transaction():
            if self.identity(connection) is None:
                return 0
            count = fetch_value(
                connection.execute(
                    sql.SQL("select count(*) from {} where workspace = %s").format(self.schema.accounts),
                    (self.workspace,),
                )
            )
        return int(count)

    def other_workspaces(
        self, connection: psycopg.Connection[Any], wanted: list[str] | None
    ) -> dict[str, int]:
        """One `group by workspace` over the rows of `wanted` (storable ids; None: every row) in the other
        workspaces of this schema."""
        only = sql.SQL("") if wanted is None else sql.SQL(" and account_id = any(%(wanted)s)")
        with connection.transaction():
            if not {"workspaces", "accounts"} <= self.schema.present_tables(connection):
                return {}
            rows = connection.execute(
                sql.SQL(
                    "select workspace, count(*) from {} where workspace <> %(workspace)s{} group by workspace"
                ).format(self.schema.accounts, only),
                {"workspace": self.workspace, "wanted": wanted},
            ).fetchall()
        return {workspace: int(count) for workspace, count in rows}

    # -- writing ---------------------------------------------------------------------------------------------
    def create(self, connection: psycopg.Connection[Any], serial: int, salt: str) -> None:
        """Insert the workspace's row (a new lineage) where there is none: `on conflict do nothing`, never an
        update, so that of holders creating it at once, the first wins and the others keep its values."""
        with connection.transaction():
            connection.execute(
                sql.SQL("insert into {} values (%s, %s, %s, %s) on conflict (workspace) do nothing").format(
                    self.schema.workspaces
                ),
                (self.workspace, str(uuid.uuid4()), serial, salt),
            )

    def write(
        self, connection: psycopg.Connection[Any], recorded: Recorded, accounts: Iterable[str] | None = None
    ) -> None:
        """The workspace's row, then every account's row; with `accounts`, only their rows (`recorded` may hold
        only theirs: see `Backend.write`)."""
        if accounts is not None:
            wanted = [i for i in dict.fromkeys(accounts) if storable(i)]
            records = {i: recorded.accounts[i] for i in wanted if i in recorded.accounts}
            only = sql.SQL(" and account_id = any(%s)")
            parameters: tuple[Any, ...] = (self.workspace, wanted)
        else:
            records, only, parameters = recorded.accounts, sql.SQL(""), (self.workspace,)
        recorded.serial += 1
        with connection.transaction():
            connection.execute(
                sql.SQL(
                    "insert into {} values (%s, %s, %s, %s) on conflict (workspace) do update set lineage = "
                    "excluded.lineage, serial = excluded.serial, salt = excluded.salt"
                ).format(self.schema.workspaces),
                (self.workspace, recorded.lineage, recorded.serial, recorded.salt),
            )
            connection.execute(
                sql.SQL("delete from {} where workspace = %s{}").format(self.schema.accounts, only),
                parameters,
            )
            with (
                connection.cursor() as cursor,
                cursor.copy(
                    sql.SQL("copy {} (workspace, account_id, record) from stdin").format(self.schema.accounts)
                ) as copy,
            ):
                for account_id, record in records.items():
                    copy.write_row((self.workspace, account_id, json.dumps(record.to_json())))
