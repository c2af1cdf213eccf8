"""What every backend's lock shares: who holds it (`LockInfo`) and the wait for it (`wait_for_lock`).

Modelled on Terraform's `statemgr` locker: a backend knows how to try its lock once (a non-blocking `flock`, an
advisory lock's `pg_try_advisory_lock`) and where it keeps its holder's description; trying again until a
deadline, and what a holder is called, are written here once.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from reconciler.plain import Plain

#: Seconds between two tries of a held lock.
RETRY_INTERVAL = 0.1


class LockInfo(Plain):
    """Who holds a state's lock (a process on a host), for what (a command, and a shard) and since when.

    `describe()` is how a refused command names the holder: `apply shard 2/4 (pid 12 on ci-7) since
    2026-01-31T12:00:00Z`."""

    __slots__ = ("what", "pid", "host", "when", "shard")

    def __init__(
        self, what: str, pid: int | str, host: str, when: str, shard: tuple[int, int] | None = None
    ) -> None:
        self.what = what
        self.pid = pid
        self.host = host
        self.when = when
        self.shard = shard

    @classmethod
    def now(cls, command: str, shard: tuple[int, int] | None = None) -> LockInfo:
        """This process, running `command` (on `shard`), from this second (UTC)."""
        since = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return cls(command, os.getpid(), socket.gethostname(), since, shard)

    @property
    def doing(self) -> str:
        """The command, and the shard it locks if any: `apply shard 2/4`."""
        return f"{self.what} shard {self.shard[0]}/{self.shard[1]}" if self.shard else self.what

    @property
    def who(self) -> str:
        return f"pid {self.pid} on {self.host}"

    def describe(self) -> str:
        return f"{self.doing} ({self.who}) since {self.when}"

    def to_json(self) -> dict[str, object]:
        """The holder as a lock file keeps it (on its first line)."""
        return {"pid": self.pid, "host": self.host, "command": self.doing, "since": self.when}

    @classmethod
    def from_json(cls, holder: dict[str, Any]) -> LockInfo:
        """What `to_json` wrote, read back from a lock file: a value that is missing, or not what was written,
        is shown as found."""
        return cls(
            str(holder.get("command", "a command")),
            str(holder.get("pid")),
            str(holder.get("host")),
            str(holder.get("since")),
        )


def lock_deadline(timeout: float, clock: Callable[[], float] = time.monotonic) -> float:
    """The moment (on `clock`) a wait of `timeout` seconds ends; a negative timeout is no wait."""
    return clock() + max(timeout, 0.0)


def wait_for_lock(
    try_once: Callable[[], bool],
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Call `try_once` until it takes the lock (True), every RETRY_INTERVAL seconds; False once a try failed at or
    after `deadline` on `clock`. It is tried at least once, whatever the deadline."""
    while not try_once():
        if clock() >= deadline:
            return False
        sleep(RETRY_INTERVAL)
    return True
