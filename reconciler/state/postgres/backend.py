"""The PostgreSQL state backend: the `Backend` interface over a workspace's rows, its lock and its journal.

Each read takes a connection of its own for one consistent snapshot; the lock holds a connection for as long as
it is held, and every change under the lock goes through it, the journal's commits excepted (a writer thread
with a connection of its own). Every database error becomes one StateError line, the URL's password never in it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict

from reconciler.errors import StateError
from reconciler.model import Recorded
from reconciler.reference import StateReference
from reconciler.secrets.redaction import Redactor
from reconciler.state.locking import LockInfo
from reconciler.state.postgres.beside import other_schemas
from reconciler.state.postgres.database import Database
from reconciler.state.postgres.journal import PostgresJournal
from reconciler.state.postgres.lock import AdvisoryLock
from reconciler.state.postgres.rows import WorkspaceRows, storable
from reconciler.state.postgres.schema import Schema
from reconciler.state.postgres.url import split_url


class PostgresBackend:
    """The state at `postgresql://USER@HOST:PORT/DB?schema=NAME&workspace=NAME` (schema default `reconciler`,
    workspace `default`)."""

    shards = True
    partial_reads = True  # read_accounts selects only the rows asked for

    def __init__(self, url: str, redactor: Redactor | None = None) -> None:
        self.conninfo, schema, self.workspace = split_url(url)
        self.database = Database(url, self.conninfo, redactor)
        self.schema = Schema(schema, self.database.shown)
        self.rows = WorkspaceRows(self.schema, self.workspace)
        self.advisory = AdvisoryLock(self.schema, self.workspace)
        self._lock_connection: psycopg.Connection[Any] | None = None
        self._schema_ready = False

    def describe(self) -> str:
        return self.database.shown

    def reference(self) -> StateReference:
        """Server, database, schema and workspace, as the URL gives them (absent ones: libpq's defaults, unnamed);
        never the user, the password or any other parameter."""
        with self.database.errors("cannot read the URL"):
            params = {key: str(value) for key, value in conninfo_to_dict(self.conninfo).items() if value}
        return StateReference(
            "postgresql",
            host=params.get("host") or params.get("hostaddr"),
            port=params.get("port"),
            service=params.get("service"),
            database=params.get("dbname"),
            schema=self.schema.name,
            workspace=self.workspace,
        )

    def message_of(self, exc: BaseException) -> str:
        """An exception's text as one line, without the URL's password (libpq quotes parts of the URL)."""
        return self.database.message_of(exc)

    # -- reading ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of its own for one read, closed after it; a database error is one StateError line."""
        connection = self.database.connect()
        try:
            with self.database.errors("cannot read the state"):
                yield connection
        finally:
            connection.close()

    def read(self) -> Recorded:
        with self._reading() as connection:
            return self._read(connection)

    def read_accounts(self, account_ids: Iterable[str]) -> Recorded:
        """One `account_id = any(...)` select: the rows of `account_ids`, never the others."""
        with self._reading() as connection:
            return self._read(connection, account_ids)

    def read_failed(self) -> Recorded:
        with self._reading() as connection:
            return self._read(connection, failed=True)

    def account_ids(self) -> set[str]:
        with self._reading() as connection:
            return self.rows.account_ids(connection)

    def count_accounts(self) -> int:
        with self._reading() as connection:
            return self.rows.count(connection)

    def other_workspaces(self, account_ids: Iterable[str] | None) -> dict[str, int]:
        """One `group by workspace` over the rows of `account_ids` (None: every row) in the other workspaces of
        this schema."""
        wanted = None if account_ids is None else [i for i in dict.fromkeys(account_ids) if storable(i)]
        if wanted == []:
            return {}
        with self._reading() as connection:
            return self.rows.other_workspaces(connection, wanted)

    def other_schemas(self, account_ids: Iterable[str] | None) -> dict[str, dict[str, int]]:
        """When this schema holds no account: the other schemas of the database that hold reconciler state, and
        how many of `account_ids` (None: any account) each of their workspaces holds (see
        `beside.other_schemas`)."""
        wanted = None if account_ids is None else [i for i in dict.fromkeys(account_ids) if storable(i)]
        with self._reading() as connection:
            return other_schemas(connection, self.schema, wanted)

    def _read(
        self,
        connection: psycopg.Connection[Any],
        account_ids: Iterable[str] | None = None,
        failed: bool = False,
    ) -> Recorded:
        """Every read of the state's rows goes through here (see `WorkspaceRows.snapshot`)."""
        return self.rows.snapshot(connection, account_ids, failed)

    # -- locking ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(
        self, timeout: float = 0.0, command: str = "apply", shard: tuple[int, int] | None = None
    ) -> Iterator[None]:
        """A whole apply locks the workspace exclusively; shard K of N locks it shared plus shard K exclusively.
        The schema is migrated first (`Schema.migrate`): a command that locks is one that writes."""
        holder = LockInfo.now(command, shard).describe()
        connection = self.database.connect(f"reconciler {holder}")
        wanted = self.advisory.wanted(shard)
        try:
            with self.database.errors("cannot lock the state"):
                connection.autocommit = True
                if not self._schema_ready:
                    self.schema.migrate(connection, self.advisory.key ^ 1)
                    self._schema_ready = True
                self.advisory.take(connection, wanted, timeout, holder, self.database.shown)
            self._lock_connection = connection
            yield
        finally:
            self._lock_connection = None
            with contextlib.suppress(psycopg.Error):
                self.advisory.release(connection, wanted)
            connection.close()  # ending the session releases the advisory lock

    def _locked(self) -> psycopg.Connection[Any]:
        if self._lock_connection is None:
            raise StateError("internal error: the state was changed without holding its lock")
        return self._lock_connection

    # -- writing ---------------------------------------------------------------------------------------------
    def create_if_absent(self, salt: str | None = None, accounts: Iterable[str] | None = None) -> Recorded:
        connection = self._locked()
        with self.database.errors("cannot create the state"):
            return self._create_if_absent(connection, salt, accounts)

    def _create_if_absent(
        self, connection: psycopg.Connection[Any], salt: str | None, accounts: Iterable[str] | None
    ) -> Recorded:
        """The workspace's row is inserted only where there is none and then read back: shards that race to
        create it all read the one row that won. With `accounts`, only their rows are read."""
        accounts = None if accounts is None else list(accounts)
        recorded = self._read(connection, accounts)
        if recorded.exists:
            return recorded
        self.rows.create(connection, recorded.serial, salt or recorded.salt)
        return self._read(connection, accounts)

    def open_journal(
        self, salt: str | None = None, accounts: Iterable[str] | None = None
    ) -> tuple[Recorded, PostgresJournal]:
        connection = self._locked()
        with self.database.errors("cannot start recording"):
            recorded = self._create_if_absent(connection, salt, accounts)
        return recorded, PostgresJournal(self.database, self.schema, self.workspace, recorded)

    def write(self, recorded: Recorded, accounts: Iterable[str] | None = None) -> None:
        connection = self._locked()
        with self.database.errors("cannot write the state"):
            self.rows.write(connection, recorded, accounts)
