"""The PostgreSQL state backend: one row per account per workspace, an advisory lock, batched commits.

`postgresql://USER@HOST:PORT/DB?schema=NAME&workspace=NAME` (schema default `reconciler`, workspace `default`).

* Reading creates nothing: absent tables are an empty state, so a role that may only read can plan. The tables
  are created (and versioned in `schema_version`) by the first command that writes.
* The lock is a session-level advisory lock held by a dedicated connection; PostgreSQL releases it when that
  session ends, so a killed apply leaves no stale lock. The holder's description (command, pid, host, since) is
  kept whole in `lock_holders`, one row per lock and session (`application_name` carries it too, for anyone
  looking at pg_stat_activity, but PostgreSQL cuts that at 63 bytes).
* During an apply, results are group-committed by a writer thread as they arrive (see PostgresJournal); the
  workspace's serial moves at the first commit, so a plan saved before the apply is refused afterwards even if
  the apply was killed.
* Every database error becomes one StateError line: whitespace collapsed, the URL's password never in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from reconciler.errors import MESSAGE_LIMIT, LockHeld, StateError
from reconciler.model import AccountRecord, Recorded
from reconciler.reference import StateReference
from reconciler.secrets.redaction import Redactor
from reconciler.state.document import record_problem
from reconciler.state.events import fold
from reconciler.state.file import new_salt
from reconciler.urls import BAD_PERCENT, REDACTED, display_url, redact_credentials, url_passwords

if TYPE_CHECKING:
    from reconciler.state.events import Event

SCHEMA_VERSION = 1
#: psycopg logs a warning ("error ignored terminating <psycopg.Pipeline>...") when a connection is lost inside
#: a pipeline; without --verbose, logging's last-resort handler would print it beside our own one-line error.
#: With --verbose it still reaches the log (a NullHandler does not stop propagation).
logging.getLogger("psycopg").addHandler(logging.NullHandler())
#: PostgreSQL's identifier limit (NAMEDATALEN - 1): a longer schema name is cut silently, so two long names
#: would share tables while their locks (keyed on the whole name) differ.
MAX_IDENTIFIER_BYTES = 63
TABLES = ("schema_version", "workspaces", "accounts", "lock_holders")


def _split_url(url: str) -> tuple[str, str, str]:
    """(connection URL without our parameters, schema, workspace); StateError for a URL libpq would misread."""
    shown = display_url(url)
    if BAD_PERCENT.search(url):
        raise StateError(
            f"the state URL {shown} is malformed: a '%' not followed by two hex digits (write %25)"
        )
    # The user and password end at the last '@'; libpq ends them at the first '@' or '/': a URL they read
    # apart would send part of the password as a host, a port or a database name (and quote it back).
    userinfo = url.split("://", 1)[1].rpartition("@")[0]
    if any(character in userinfo for character in "@/?#"):
        raise StateError(
            f"the state URL {shown} is malformed: percent-encode '@', '/', '?' and '#' in its user and password "
            "(%40, %2F, %3F, %23), and '@' after the host (%40)"
        )
    try:
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))  # `schema=` is refused, not ignored
    except ValueError as exc:
        raise StateError(f"the state URL {shown} is malformed: {exc}") from None
    schema = params.pop("schema", "reconciler")
    workspace = params.pop("workspace", "default")
    if not schema or "\0" in schema or len(schema.encode()) > MAX_IDENTIFIER_BYTES:
        raise StateError(
            f"the state URL {shown} names a schema PostgreSQL cannot hold: a schema name is 1 to "
            f"{MAX_IDENTIFIER_BYTES} bytes without NUL (this one: {len(schema.encode())} bytes"
            f"{', with NUL' if chr(0) in schema else ''})"
        )
    if not workspace or "\0" in workspace:
        raise StateError(f"the state URL {shown} names an empty workspace or one holding NUL")
    libpq_params = {key: value for key, value in params.items() if value}
    return urlunsplit(parts._replace(query=urlencode(libpq_params))), schema, workspace


# long: its split by job (URL, schema and migrations, lock, journal) is a change of its own, under way
class PostgresBackend:
    shards = True
    partial_reads = True  # read_accounts selects only the rows asked for

    def __init__(self, url: str, redactor: Redactor | None = None) -> None:
        self.conninfo, self.schema, self.workspace = _split_url(url)
        #: The run's: the server's messages are redacted of every secret it knows (`message_of`).
        self._redactor = Redactor() if redactor is None else redactor
        self._display = display_url(url)
        self._secrets = url_passwords(url)
        for password in self._secrets:  # so that any outside text quoting it, or a piece of it, is redacted
            self._redactor.register(password)
        key = hashlib.sha256(f"{self.schema}\0{self.workspace}".encode()).digest()
        self.lock_key = int.from_bytes(key[:8], "big") & ((1 << 62) - 1)
        self._lock_connection: psycopg.Connection[Any] | None = None
        self._tables_ready = False

    def describe(self) -> str:
        return self._display

    def reference(self) -> StateReference:
        """Server, database, schema and workspace, as the URL gives them (absent ones: libpq's defaults, unnamed);
        never the user, the password or any other parameter."""
        with self._errors("cannot read the URL"):
            params = {key: str(value) for key, value in conninfo_to_dict(self.conninfo).items() if value}
        return StateReference(
            "postgresql",
            host=params.get("host") or params.get("hostaddr"),
            port=params.get("port"),
            service=params.get("service"),
            database=params.get("dbname"),
            schema=self.schema,
            workspace=self.workspace,
        )

    # -- errors ----------------------------------------------------------------------------------------------
    def message_of(self, exc: BaseException) -> str:
        """An exception's text as one line, without the URL's password (libpq quotes parts of the URL)."""
        text = str(exc) or type(exc).__name__
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        text = " ".join(self._redactor.redact(redact_credentials(text)).split())
        return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "…"

    @contextlib.contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn a database error inside the block into one StateError line: `<location>: <doing>: <why>`."""
        try:
            yield
        except psycopg.Error as exc:
            raise StateError(f"{self._display}: {doing}: {self.message_of(exc)}") from None

    # -- connections and tables ------------------------------------------------------------------------------
    def connect(self, application_name: str = "reconciler") -> psycopg.Connection[Any]:
        name = application_name.encode()[:MAX_IDENTIFIER_BYTES].decode(errors="ignore")
        try:
            return psycopg.connect(self.conninfo, application_name=name, connect_timeout=10)
        except psycopg.Error as exc:
            raise StateError(
                f"cannot connect to PostgreSQL at {self._display}: {self.message_of(exc)}"
            ) from None

    def _present_tables(self, connection: psycopg.Connection[Any]) -> set[str]:
        rows = connection.execute(
            "select c.relname from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relname = any(%s)",
            (self.schema, list(TABLES)),
        ).fetchall()
        return {row[0] for row in rows}

    def _check_version(self, connection: psycopg.Connection[Any]) -> int | None:
        row = connection.execute(
            sql.SQL("select max(version) from {}").format(self._table("schema_version"))
        ).fetchone()
        version = row[0] if row else None
        if version is not None and version > SCHEMA_VERSION:
            raise StateError(f"{self._display}: state schema version {version} is newer than this reconciler")
        return version

    def _ensure_tables(self, connection: psycopg.Connection[Any]) -> None:
        """Create what is missing (only a writer calls this: reading creates nothing)."""
        if self._tables_ready:
            return
        if self._present_tables(connection) == set(TABLES):
            self._check_version(connection)
            self._tables_ready = True
            return
        schema = sql.Identifier(self.schema)
        with connection.transaction():
            connection.execute("select pg_advisory_xact_lock(%s)", (self.lock_key ^ 1,))
            connection.execute(sql.SQL("create schema if not exists {}").format(schema))
            connection.execute(
                sql.SQL("create table if not exists {}.schema_version (version integer not null)").format(
                    schema
                )
            )
            if self._check_version(connection) is None:
                connection.execute(
                    sql.SQL(
                        "create table {s}.workspaces (workspace text primary key, lineage text not null, "
                        "serial bigint not null, salt text not null)"
                    ).format(s=schema)
                )
                connection.execute(
                    sql.SQL(
                        "create table {s}.accounts (workspace text not null, account_id text not null, "
                        "record jsonb not null, primary key (workspace, account_id))"
                    ).format(s=schema)
                )
                connection.execute(
                    sql.SQL("insert into {}.schema_version values (%s)").format(schema), (SCHEMA_VERSION,)
                )
            # Added after version 1 without changing its tables: earlier versions never read it.
            connection.execute(
                sql.SQL(
                    "create table if not exists {}.lock_holders (lock_key bigint not null, pid integer not null, "
                    "holder text not null, primary key (lock_key, pid))"
                ).format(schema)
            )
        self._tables_ready = True

    def _table(self, name: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(name))

    # -- reading ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _reading(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of its own for one read, closed after it; a database error is one StateError line."""
        connection = self.connect()
        try:
            with self._errors("cannot read the state"):
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
        with self._reading() as connection, connection.transaction():
            if self._identity(connection) is None:
                return set()
            rows = connection.execute(
                sql.SQL("select account_id from {} where workspace = %s").format(self._table("accounts")),
                (self.workspace,),
            ).fetchall()
        return {row[0] for row in rows}

    def count_accounts(self) -> int:
        with self._reading() as connection, connection.transaction():
            if self._identity(connection) is None:
                return 0
            count = _fetch_value(
                connection.execute(
                    sql.SQL("select count(*) from {} where workspace = %s").format(self._table("accounts")),
                    (self.workspace,),
                )
            )
        return int(count)

    def other_workspaces(self, account_ids: Iterable[str]) -> dict[str, int]:
        """One `group by workspace` over the rows of `account_ids` in the other workspaces of this schema."""
        wanted = [i for i in dict.fromkeys(account_ids) if _storable(i)]
        if not wanted:
            return {}
        with self._reading() as connection, connection.transaction():
            if not {"workspaces", "accounts"} <= self._present_tables(connection):
                return {}
            rows = connection.execute(
                sql.SQL(
                    "select workspace, count(*) from {} where workspace <> %s and account_id = any(%s) "
                    "group by workspace"
                ).format(self._table("accounts")),
                (self.workspace, wanted),
            ).fetchall()
        return {workspace: int(count) for workspace, count in rows}

    def _identity(self, connection: psycopg.Connection[Any]) -> tuple[str, int, str] | None:
        """First in a transaction (it makes it repeatable read): the workspace's lineage, serial and salt, or None
        where nothing was ever written (absent tables included: reading creates nothing)."""
        connection.execute("set transaction isolation level repeatable read")
        present = self._present_tables(connection)
        if not {"workspaces", "accounts"} <= present:
            return None
        if "schema_version" in present:
            self._check_version(connection)
        row = connection.execute(
            sql.SQL("select lineage, serial, salt from {} where workspace = %s").format(
                self._table("workspaces")
            ),
            (self.workspace,),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def _read(
        self,
        connection: psycopg.Connection[Any],
        account_ids: Iterable[str] | None = None,
        failed: bool = False,
    ) -> Recorded:
        """One consistent snapshot: every account, or only `account_ids` (those recorded), or only the accounts
        whose last failure holds a message (`failed`). An account's record is the same whichever is asked."""
        query = sql.SQL("select account_id, record from {} where workspace = %s").format(
            self._table("accounts")
        )
        parameters: tuple[Any, ...] = (self.workspace,)
        if account_ids is not None:
            query += sql.SQL(" and account_id = any(%s)")
            parameters += ([i for i in dict.fromkeys(account_ids) if _storable(i)],)
        if failed:
            query += sql.SQL(" and jsonb_typeof(record -> 'last_failure' -> 'message') = 'string'")
        with connection.transaction():
            identity = self._identity(connection)
            if identity is None:
                return Recorded(lineage=None, serial=0, salt=new_salt())
            rows = connection.execute(query, parameters).fetchall()
        for account_id, record in rows:
            problem = record_problem(account_id, record)
            if problem:
                raise StateError(
                    f"{self._display}: an account row is not a valid reconciler record: {problem}"
                )
        lineage, serial, salt = identity
        return Recorded(
            lineage=lineage,
            serial=serial,
            salt=salt,
            accounts={account_id: AccountRecord.from_json(record) for account_id, record in rows},
        )

    # -- locking ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(
        self, timeout: float = 0.0, command: str = "apply", shard: tuple[int, int] | None = None
    ) -> Iterator[None]:
        """A whole apply locks the workspace exclusively; shard K of N locks it shared plus shard K exclusively."""
        since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        what = f"{command} shard {shard[0]}/{shard[1]}" if shard else command
        holder = f"{what} (pid {os.getpid()} on {socket.gethostname()}) since {since}"  # as the file lock
        connection = self.connect(f"reconciler {holder}")
        wanted = (
            [("pg_try_advisory_lock", self.lock_key)]
            if shard is None
            else [
                ("pg_try_advisory_lock_shared", self.lock_key),
                ("pg_try_advisory_lock", self._shard_key(shard)),
            ]
        )
        try:
            with self._errors("cannot lock the state"):
                connection.autocommit = True
                self._ensure_tables(connection)
                deadline = time.monotonic() + max(timeout, 0.0)
                for function, key in wanted:
                    while not _fetch_value(connection.execute(f"select {function}(%s)", (key,))):
                        if time.monotonic() >= deadline:
                            raise LockHeld.by(self._display, self._holder(connection, key))
                        time.sleep(0.1)
                self._record_holder(connection, [key for _, key in wanted], holder)
            self._lock_connection = connection
            yield
        finally:
            self._lock_connection = None
            with contextlib.suppress(psycopg.Error):
                connection.execute(
                    sql.SQL("delete from {} where pid = pg_backend_pid() and lock_key = any(%s)").format(
                        self._table("lock_holders")
                    ),
                    ([key for _, key in wanted],),
                )
            connection.close()  # ending the session releases the advisory lock

    def _shard_key(self, shard: tuple[int, int]) -> int:
        digest = hashlib.sha256(
            f"{self.schema}\0{self.workspace}\0shard {shard[0]}/{shard[1]}".encode()
        ).digest()
        return int.from_bytes(digest[:8], "big") & ((1 << 62) - 1)

    def _record_holder(self, connection: psycopg.Connection[Any], keys: list[int], holder: str) -> None:
        """Note who holds `keys`, replacing rows of sessions that no longer hold them (killed ones)."""
        table = self._table("lock_holders")
        with connection.transaction():
            connection.execute(
                sql.SQL(
                    "delete from {} h where h.lock_key = any(%s) and not exists (select 1 from pg_locks l "
                    "where l.locktype = 'advisory' and l.granted and l.pid = h.pid "
                    "and ((l.classid::bigint << 32) | l.objid::bigint) = h.lock_key)"
                ).format(table),
                (keys,),
            )
            for key in keys:
                connection.execute(
                    sql.SQL(
                        "insert into {} values (%s, pg_backend_pid(), %s) on conflict (lock_key, pid) "
                        "do update set holder = excluded.holder"
                    ).format(table),
                    (key, holder),
                )

    def _holder(self, connection: psycopg.Connection[Any], key: int) -> str:
        row = connection.execute(
            sql.SQL(
                "select h.holder, a.application_name from pg_locks l "
                "left join pg_stat_activity a on a.pid = l.pid "
                "left join {} h on h.lock_key = %s and h.pid = l.pid "
                "where l.locktype = 'advisory' and l.granted and ((l.classid::bigint << 32) | l.objid::bigint) = %s "
                "and l.pid <> pg_backend_pid() order by h.holder is null, l.pid limit 1"
            ).format(self._table("lock_holders")),
            (key, key),
        ).fetchone()
        if row is None:
            return "another session (no details)"
        if row[0]:
            return str(row[0])
        name = row[1] or ""  # a holder that has not written its row yet: its application_name, maybe cut
        return (
            name.removeprefix("reconciler ")
            if name.startswith("reconciler ")
            else "another session (no details)"
        )

    def _locked(self) -> psycopg.Connection[Any]:
        if self._lock_connection is None:
            raise StateError("internal error: the state was changed without holding its lock")
        return self._lock_connection

    # -- writing ---------------------------------------------------------------------------------------------
    def create_if_absent(self, salt: str | None = None, accounts: Iterable[str] | None = None) -> Recorded:
        connection = self._locked()
        with self._errors("cannot create the state"):
            return self._create_if_absent(connection, salt, accounts)

    def _create_if_absent(
        self, connection: psycopg.Connection[Any], salt: str | None, accounts: Iterable[str] | None
    ) -> Recorded:
        """The workspace's row is inserted only where there is none (`on conflict do nothing`, never an
        update) and then read back: shards that race to create it all read the one row that won. With
        `accounts`, only their rows are read."""
        accounts = None if accounts is None else list(accounts)
        recorded = self._read(connection, accounts)
        if recorded.exists:
            return recorded
        with connection.transaction():
            connection.execute(
                sql.SQL("insert into {} values (%s, %s, %s, %s) on conflict (workspace) do nothing").format(
                    self._table("workspaces")
                ),
                (self.workspace, str(uuid.uuid4()), recorded.serial, salt or recorded.salt),
            )
        return self._read(connection, accounts)

    def open_journal(
        self, salt: str | None = None, accounts: Iterable[str] | None = None
    ) -> tuple[Recorded, PostgresJournal]:
        connection = self._locked()
        with self._errors("cannot start recording"):
            recorded = self._create_if_absent(connection, salt, accounts)
        return recorded, PostgresJournal(self, connection, recorded)

    def write(self, recorded: Recorded, accounts: Iterable[str] | None = None) -> None:
        connection = self._locked()
        with self._errors("cannot write the state"):
            self._write(connection, recorded, accounts)

    def _write(
        self, connection: psycopg.Connection[Any], recorded: Recorded, accounts: Iterable[str] | None = None
    ) -> None:
        """The workspace's row, then every account's row; with `accounts`, only their rows (`recorded` may hold
        only theirs: see `Backend.write`)."""
        if accounts is not None:
            wanted = [i for i in dict.fromkeys(accounts) if _storable(i)]
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
                ).format(self._table("workspaces")),
                (self.workspace, recorded.lineage, recorded.serial, recorded.salt),
            )
            connection.execute(
                sql.SQL("delete from {} where workspace = %s{}").format(self._table("accounts"), only),
                parameters,
            )
            with (
                connection.cursor() as cursor,
                cursor.copy(
                    sql.SQL("copy {} (workspace, account_id, record) from stdin").format(
                        self._table("accounts")
                    )
                ) as copy,
            ):
                for account_id, record in records.items():
                    copy.write_row((self.workspace, account_id, json.dumps(record.to_json())))


def _storable(account_id: str) -> bool:
    """Whether PostgreSQL's text can hold `account_id` (no NUL, valid UTF-8): one it cannot is recorded nowhere,
    so a read of it asks for nothing rather than failing (a saved plan's targets come from a file)."""
    if "\0" in account_id:
        return False
    try:
        account_id.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _fetch_value(cursor: psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    return row[0] if row else None


class PostgresJournal:
    """Group commit: a writer thread with its own connection commits whatever results have arrived since its
    last commit, continuously. A result is durable one commit round-trip after it arrives, and the event loop
    never waits for the database.
    """

    def __init__(
        self, backend: PostgresBackend, connection: psycopg.Connection[Any], recorded: Recorded
    ) -> None:
        self.backend = backend
        self.recorded = recorded
        self._writer = backend.connect("reconciler apply (recording)")  # a StateError line if it fails
        self._condition = threading.Condition()
        self._pending: dict[str, dict[str, Any] | None] = {}  # account id -> record to write, None to delete
        self._appended = 0
        self._committed = 0
        self._closing = False
        self._failure: BaseException | None = None
        self._serial_moved = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []  # (appended count, future) of durable()
        self._thread = threading.Thread(target=self._run, name="reconciler-pg-recording", daemon=True)
        self._thread.start()

    def append(self, event: Event) -> None:
        fold(self.recorded, event)
        record = self.recorded.accounts.get(event["id"])
        with self._condition:
            if self._failure is not None:
                raise self._failed()
            self._pending[event["id"]] = record.to_json() if record else None
            self._appended += 1
            self._condition.notify()

    async def durable(self) -> None:
        """Wait, without blocking the event loop, for the commit that holds everything appended so far."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        with self._condition:
            if self._failure is not None:
                raise self._failed()
            if self._committed >= self._appended:
                return
            self._waiters.append((self._appended, future))
        await future

    def _wake(self) -> None:
        """Settle the durable() waiters the last commit (or failure) answers; called holding the condition."""
        still_waiting = []
        for target, future in self._waiters:
            if self._failure is None and target > self._committed:
                still_waiting.append((target, future))
                continue
            outcome = self._failed() if self._failure is not None else None
            # The run may have ended (its loop closed) while this commit failed: nobody waits any more, and the
            # failure is reported by close() or flush().
            with contextlib.suppress(RuntimeError):
                future.get_loop().call_soon_threadsafe(_settle, future, outcome)
        self._waiters = still_waiting

    def _failed(self) -> StateError:
        message = self.backend.message_of(self._failure) if self._failure else "unknown error"
        return StateError(f"recording to {self.backend.describe()} failed: {message}")

    def flush(self) -> None:
        """Wait until everything appended so far is committed."""
        with self._condition:
            target = self._appended
            while self._committed < target and self._failure is None:
                self._condition.wait(0.5)
            if self._failure is not None:
                raise self._failed()

    def close(self) -> Recorded:
        try:
            self.flush()
        finally:
            with self._condition:
                self._closing = True
                self._condition.notify()
            self._thread.join()
            self._writer.close()
        return self.recorded

    def _run(self) -> None:
        while True:
            with self._condition:
                while not self._pending and not self._closing:
                    self._condition.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending, {}
                count = self._appended
            try:
                self._commit(batch)
            except BaseException as exc:  # reported by the next append/flush/close
                with self._condition:
                    self._failure = exc
                    self._wake()
                    self._condition.notify_all()
                return
            with self._condition:
                self._committed = count
                self._wake()
                self._condition.notify_all()

    def _commit(self, batch: dict[str, dict[str, Any] | None]) -> None:
        table = self.backend._table("accounts")
        workspace = self.backend.workspace
        upserts = [(workspace, i, json.dumps(record)) for i, record in batch.items() if record is not None]
        deletes = [(workspace, i) for i, record in batch.items() if record is None]
        with self._writer.transaction(), self._writer.cursor() as cursor:
            if not self._serial_moved:  # `serial + 1` in SQL: shards applying at once each move it
                cursor.execute(
                    sql.SQL("update {} set serial = serial + 1 where workspace = %s returning serial").format(
                        self.backend._table("workspaces")
                    ),
                    (workspace,),
                )
                self.recorded.serial = _fetch_value(cursor)
            if upserts:
                cursor.executemany(
                    sql.SQL(
                        "insert into {} values (%s, %s, %s) on conflict (workspace, account_id) "
                        "do update set record = excluded.record"
                    ).format(table),
                    upserts,
                )
            if deletes:
                cursor.executemany(
                    sql.SQL("delete from {} where workspace = %s and account_id = %s").format(table), deletes
                )
        self._serial_moved = True


def _settle(future: asyncio.Future[None], failure: BaseException | None) -> None:
    if future.done():  # the waiting task was cancelled
        return
    if failure is None:
        future.set_result(None)
    else:
        future.set_exception(failure)
