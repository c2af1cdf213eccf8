"""The PostgreSQL state backend: one row per account per workspace, an advisory lock, batched commits.

`postgresql://USER@HOST:PORT/DB?schema=NAME&workspace=NAME` (schema default `reconciler`, workspace `default`).

* Tables are created on first use and versioned in `schema_version`.
* The lock is a session-level advisory lock held by a dedicated connection whose `application_name` names the
  holder; PostgreSQL releases it when that session ends, so a killed apply leaves no stale lock.
* During an apply, results are committed in small batches (at most every 50 ms); the workspace's serial moves at
  the first commit, so a plan saved before the apply is refused afterwards even if the apply was killed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql

from reconciler.errors import LockHeld, StateError
from reconciler.model import AccountRecord, Recorded
from reconciler.state.events import fold
from reconciler.state.file import new_salt

SCHEMA_VERSION = 1
FLUSH_INTERVAL = 0.05
FLUSH_EVENTS = 500


def _split_url(url: str) -> tuple[str, str, str]:
    """(connection URL without our parameters, schema, workspace)."""
    parts = urlsplit(url)
    params = dict(parse_qsl(parts.query))
    schema = params.pop("schema", "reconciler")
    workspace = params.pop("workspace", "default")
    return urlunsplit(parts._replace(query=urlencode(params))), schema, workspace


class PostgresBackend:
    def __init__(self, url: str) -> None:
        self.conninfo, self.schema, self.workspace = _split_url(url)
        parts = urlsplit(self.conninfo)
        self._where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
        key = hashlib.sha256(f"{self.schema}\0{self.workspace}".encode()).digest()
        self.lock_key = int.from_bytes(key[:8], "big") & ((1 << 62) - 1)
        self._lock_connection: psycopg.Connection[Any] | None = None

    def describe(self) -> str:
        return f"postgresql://{self._where}?schema={self.schema}&workspace={self.workspace}"

    # -- connections and tables ------------------------------------------------------------------------------
    def connect(self, application_name: str = "reconciler") -> psycopg.Connection[Any]:
        try:
            connection = psycopg.connect(self.conninfo, application_name=application_name[:63], connect_timeout=10)
        except psycopg.Error as exc:
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise StateError(f"cannot connect to PostgreSQL at {self._where}: {message}") from None
        self._ensure_tables(connection)
        return connection

    def _ensure_tables(self, connection: psycopg.Connection[Any]) -> None:
        schema = sql.Identifier(self.schema)
        with connection.transaction():
            connection.execute("select pg_advisory_xact_lock(%s)", (self.lock_key ^ 1,))
            connection.execute(sql.SQL("create schema if not exists {}").format(schema))
            connection.execute(sql.SQL("create table if not exists {}.schema_version (version integer not null)")
                               .format(schema))
            row = connection.execute(sql.SQL("select max(version) from {}.schema_version").format(schema)).fetchone()
            version = row[0] if row else None
            if version is None:
                connection.execute(sql.SQL(
                    "create table {s}.workspaces (workspace text primary key, lineage text not null, "
                    "serial bigint not null, salt text not null)").format(s=schema))
                connection.execute(sql.SQL(
                    "create table {s}.accounts (workspace text not null, account_id text not null, "
                    "record jsonb not null, primary key (workspace, account_id))").format(s=schema))
                connection.execute(sql.SQL("insert into {}.schema_version values (%s)").format(schema),
                                   (SCHEMA_VERSION,))
            elif version > SCHEMA_VERSION:
                raise StateError(f"{self.describe()}: state schema version {version} is newer than this reconciler")

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    # -- reading ---------------------------------------------------------------------------------------------
    def read(self) -> Recorded:
        with self.connect() as connection:
            return self._read(connection)

    def _read(self, connection: psycopg.Connection[Any]) -> Recorded:
        with connection.transaction():
            connection.execute("set transaction isolation level repeatable read")
            row = connection.execute(sql.SQL("select lineage, serial, salt from {} where workspace = %s")
                                     .format(self._table("workspaces")), (self.workspace,)).fetchone()
            if row is None:
                return Recorded(lineage=None, serial=0, salt=new_salt())
            rows = connection.execute(sql.SQL("select account_id, record from {} where workspace = %s")
                                      .format(self._table("accounts")), (self.workspace,)).fetchall()
        return Recorded(lineage=row[0], serial=row[1], salt=row[2],
                        accounts={account_id: AccountRecord.from_json(record) for account_id, record in rows})

    # -- locking ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, timeout: float = 0.0, command: str = "apply", shard: tuple[int, int] | None = None) -> Iterator[None]:
        """A whole apply locks the workspace exclusively; shard K of N locks it shared plus shard K exclusively."""
        since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        what = f"{command} shard {shard[0]}/{shard[1]}" if shard else command
        holder = f"reconciler {what} pid {os.getpid()} on {socket.gethostname()} since {since}"
        connection = self.connect(holder)
        connection.autocommit = True
        deadline = time.monotonic() + max(timeout, 0.0)
        wanted = [("pg_try_advisory_lock", self.lock_key)] if shard is None else [
            ("pg_try_advisory_lock_shared", self.lock_key), ("pg_try_advisory_lock", self._shard_key(shard))]
        try:
            for function, key in wanted:
                while not connection.execute(f"select {function}(%s)", (key,)).fetchone()[0]:
                    if time.monotonic() >= deadline:
                        raise LockHeld(f"the state {self.describe()} is locked by {self._holder(connection, key)}")
                    time.sleep(0.1)
            self._lock_connection = connection
            yield
        finally:
            self._lock_connection = None
            connection.close()  # ending the session releases the advisory lock

    def _shard_key(self, shard: tuple[int, int]) -> int:
        digest = hashlib.sha256(f"{self.schema}\0{self.workspace}\0shard {shard[0]}/{shard[1]}".encode()).digest()
        return int.from_bytes(digest[:8], "big") & ((1 << 62) - 1)

    def _holder(self, connection: psycopg.Connection[Any], key: int) -> str:
        row = connection.execute(
            "select a.application_name from pg_locks l join pg_stat_activity a on a.pid = l.pid "
            "where l.locktype = 'advisory' and l.granted and ((l.classid::bigint << 32) | l.objid::bigint) = %s "
            "and a.pid <> pg_backend_pid()", (key,)).fetchone()
        name = row[0] if row else ""
        return name.removeprefix("reconciler ") if name else "another session (no details)"

    def _locked(self) -> psycopg.Connection[Any]:
        if self._lock_connection is None:
            raise StateError("internal error: the state was changed without holding its lock")
        return self._lock_connection

    # -- writing ---------------------------------------------------------------------------------------------
    def open_journal(self, salt: str | None = None) -> tuple[Recorded, PostgresJournal]:
        connection = self._locked()
        recorded = self._read(connection)
        if not recorded.exists:
            recorded.lineage = str(uuid.uuid4())
            recorded.salt = salt or recorded.salt
            with connection.transaction():  # shards may race to create it: the first one wins
                connection.execute(sql.SQL("insert into {} values (%s, %s, %s, %s) on conflict do nothing")
                                   .format(self._table("workspaces")),
                                   (self.workspace, recorded.lineage, recorded.serial, recorded.salt))
            recorded = self._read(connection)
        return recorded, PostgresJournal(self, connection, recorded)

    def write(self, recorded: Recorded) -> None:
        connection = self._locked()
        recorded.serial += 1
        with connection.transaction():
            connection.execute(sql.SQL(
                "insert into {} values (%s, %s, %s, %s) on conflict (workspace) do update set lineage = "
                "excluded.lineage, serial = excluded.serial, salt = excluded.salt").format(self._table("workspaces")),
                (self.workspace, recorded.lineage, recorded.serial, recorded.salt))
            connection.execute(sql.SQL("delete from {} where workspace = %s").format(self._table("accounts")),
                               (self.workspace,))
            with connection.cursor() as cursor, cursor.copy(sql.SQL(
                    "copy {} (workspace, account_id, record) from stdin").format(self._table("accounts"))) as copy:
                for account_id, record in recorded.accounts.items():
                    copy.write_row((self.workspace, account_id, json.dumps(record.to_json())))


class PostgresJournal:
    """Commits recorded results in small batches; see the module docstring."""

    def __init__(self, backend: PostgresBackend, connection: psycopg.Connection[Any], recorded: Recorded) -> None:
        self.backend = backend
        self.connection = connection
        self.recorded = recorded
        self._dirty: set[str] = set()
        self._serial_moved = False
        self._last_flush = time.monotonic()

    def append(self, event: dict[str, Any]) -> None:
        fold(self.recorded, event)
        self._dirty.add(event["id"])
        if len(self._dirty) >= FLUSH_EVENTS or time.monotonic() - self._last_flush >= FLUSH_INTERVAL:
            self.flush()

    def flush(self) -> None:
        self._last_flush = time.monotonic()
        if not self._dirty:
            return
        table = self.backend._table("accounts")
        workspace = self.backend.workspace
        upserts = [(workspace, i, json.dumps(self.recorded.accounts[i].to_json()))
                   for i in self._dirty if i in self.recorded.accounts]
        deletes = [(workspace, i) for i in self._dirty if i not in self.recorded.accounts]
        with self.connection.transaction(), self.connection.cursor() as cursor:
            if not self._serial_moved:  # `serial + 1` in SQL: shards applying at once each move it
                cursor.execute(sql.SQL("update {} set serial = serial + 1 where workspace = %s returning serial")
                               .format(self.backend._table("workspaces")), (workspace,))
                self.recorded.serial = cursor.fetchone()[0]
            if upserts:
                cursor.executemany(sql.SQL("insert into {} values (%s, %s, %s) on conflict (workspace, account_id) "
                                           "do update set record = excluded.record").format(table), upserts)
            if deletes:
                cursor.executemany(sql.SQL("delete from {} where workspace = %s and account_id = %s").format(table),
                                   deletes)
        self._serial_moved = True
        self._dirty.clear()

    def close(self) -> Recorded:
        self.flush()
        return self.recorded
