"""The state's lock in PostgreSQL: session-level advisory locks, and who holds them (`lock_holders`).

The lock is held by a connection of its own; PostgreSQL releases it when that session ends, so a killed apply
leaves no stale lock. A whole apply locks the workspace exclusively; shard K of N locks it shared, and shard K
exclusively. The holder's description (`LockInfo.describe()`) is kept whole in `lock_holders`, one row per lock
and session (`application_name` carries it too, for anyone looking at pg_stat_activity, but PostgreSQL cuts that
at 63 bytes).
"""

from __future__ import annotations

import hashlib
from typing import Any

import psycopg
from psycopg import sql

from reconciler.errors import LockHeld
from reconciler.state.locking import lock_deadline, wait_for_lock
from reconciler.state.postgres.database import fetch_value
from reconciler.state.postgres.schema import Schema


def _key(text: str) -> int:
    digest = hashlib.sha256(text.encode()).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << 62) - 1)


class AdvisoryLock:
    """The advisory locks of one workspace of `schema`: the workspace's (`key`), and one per shard."""

    def __init__(self, schema: Schema, workspace: str) -> None:
        self.schema = schema
        self.workspace = workspace
        self.key = _key(f"{schema.name}\0{workspace}")

    def shard_key(self, shard: tuple[int, int]) -> int:
        return _key(f"{self.schema.name}\0{self.workspace}\0shard {shard[0]}/{shard[1]}")

    def wanted(self, shard: tuple[int, int] | None) -> list[tuple[str, int]]:
        """The locks to take, in order, each as (function that tries it, key)."""
        if shard is None:
            return [("pg_try_advisory_lock", self.key)]
        return [("pg_try_advisory_lock_shared", self.key), ("pg_try_advisory_lock", self.shard_key(shard))]

    def take(
        self,
        connection: psycopg.Connection[Any],
        wanted: list[tuple[str, int]],
        timeout: float,
        holder: str,
        shown: str,
    ) -> None:
        """Take each of `wanted` on `connection` (autocommit) within `timeout` seconds, or raise LockHeld naming
        who holds it; then note `holder` as the holder of them all."""
        deadline = lock_deadline(timeout)
        for function, key in wanted:
            query = f"select {function}(%s)"

            def try_once(query: str = query, key: int = key) -> bool:
                return bool(fetch_value(connection.execute(query, (key,))))

            if not wait_for_lock(try_once, deadline):
                raise LockHeld.by(shown, self.holder(connection, key), timeout)
        self._record_holder(connection, [key for _, key in wanted], holder)

    def release(self, connection: psycopg.Connection[Any], wanted: list[tuple[str, int]]) -> None:
        """Remove the holder's rows of `wanted` (the locks themselves end with the session)."""
        connection.execute(
            sql.SQL("delete from {} where pid = pg_backend_pid() and lock_key = any(%s)").format(
                self.schema.lock_holders
            ),
            ([key for _, key in wanted],),
        )

    def _record_holder(self, connection: psycopg.Connection[Any], keys: list[int], holder: str) -> None:
        """Note who holds `keys`, replacing rows of sessions that no longer hold them (killed ones)."""
        table = self.schema.lock_holders
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

    def holder(self, connection: psycopg.Connection[Any], key: int) -> str:
        """Who holds `key`, as its holder described itself; another session's application name when it has
        not written its row yet."""
        row = connection.execute(
            sql.SQL(
                "select h.holder, a.application_name from pg_locks l "
                "left join pg_stat_activity a on a.pid = l.pid "
                "left join {} h on h.lock_key = %s and h.pid = l.pid "
                "where l.locktype = 'advisory' and l.granted and ((l.classid::bigint << 32) | l.objid::bigint) = %s "
                "and l.pid <> pg_backend_pid() order by h.holder is null, l.pid limit 1"
            ).format(self.schema.lock_holders),
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
