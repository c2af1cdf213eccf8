"""Recording an apply in PostgreSQL: results are group-committed by a writer thread as they arrive.

The workspace's serial moves at the first commit, so a plan saved before the apply is refused afterwards even if
the apply was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import TYPE_CHECKING, Any

from psycopg import sql

from reconciler.errors import StateError
from reconciler.model import Recorded
from reconciler.state.events import fold
from reconciler.state.postgres.database import Database, fetch_value
from reconciler.state.postgres.schema import Schema

if TYPE_CHECKING:
    from reconciler.state.events import Event


class PostgresJournal:
    """Group commit: a writer thread with its own connection commits whatever results have arrived since its
    last commit, continuously. A result is durable one commit round-trip after it arrives, and the event loop
    never waits for the database. The results are those of `workspace` in `schema` of `database`.
    """

    def __init__(self, database: Database, schema: Schema, workspace: str, recorded: Recorded) -> None:
        self.database = database
        self.schema = schema
        self.workspace = workspace
        self.recorded = recorded
        self._writer = database.connect("reconciler apply (recording)")  # a StateError line if it fails
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
        message = self.database.message_of(self._failure) if self._failure else "unknown error"
        return StateError(f"recording to {self.database.shown} failed: {message}")

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
        table = self.schema.accounts
        workspace = self.workspace
        upserts = [(workspace, i, json.dumps(record)) for i, record in batch.items() if record is not None]
        deletes = [(workspace, i) for i, record in batch.items() if record is None]
        with self._writer.transaction(), self._writer.cursor() as cursor:
            if not self._serial_moved:  # `serial + 1` in SQL: shards applying at once each move it
                cursor.execute(
                    sql.SQL("update {} set serial = serial + 1 where workspace = %s returning serial").format(
                        self.schema.workspaces
                    ),
                    (workspace,),
                )
                self.recorded.serial = fetch_value(cursor)
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
