"""What every state backend provides."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from reconciler.model import Recorded

if TYPE_CHECKING:
    from reconciler.state.events import Event
    from reconciler.state.reference import StateReference


#: The refusal of `--shard` by a backend that cannot hold shards (`Backend.shards`).
SHARDS_NEED_POSTGRES = (
    "--shard needs the PostgreSQL state backend (--state postgresql://...), where shards can apply at once"
)


class Journal(Protocol):
    """Durable recording during an apply: each event survives a kill -9 once `durable()` returned after it."""

    def append(self, event: Event) -> None: ...

    async def durable(self) -> None:
        """Return once every event appended so far survives a kill -9 of this process."""

    def flush(self) -> None:
        """Make everything appended so far durable (fsync / commit)."""

    def close(self) -> Recorded:
        """Fold the events into the state (serial + 1) and return the new snapshot."""


class Backend(Protocol):
    """A place where the recorded state lives. `describe()` names it for messages, without secrets."""

    #: Whether shards of one state can be applied at once (`lock(shard=...)`).
    shards: bool

    def describe(self) -> str: ...

    def reference(self) -> StateReference:
        """Which state this is, for a saved plan to record: kind and location, never a user or password."""

    def read(self) -> Recorded:
        """A consistent snapshot, including events recorded but not yet folded. Takes no lock."""

    def lock(
        self, timeout: float = 0.0, command: str = "apply", shard: tuple[int, int] | None = None
    ) -> AbstractContextManager[None]:
        """Hold the exclusive lock (or, for shard K, the state shared and shard K exclusively).

        Raise LockHeld naming the holder if not acquired within `timeout`.
        """

    def create_if_absent(self, salt: str | None = None) -> Recorded:
        """Under the lock: the state as `read()` gives it, created first if it does not exist yet (a new lineage,
        serial 0, `salt` or else a new salt).

        Holders of the lock that create the state at once (shards started together) all get the values of the
        one creation that won: a creation never replaces a lineage or salt that another holder may already be
        fingerprinting with."""

    def open_journal(self, salt: str | None = None) -> tuple[Recorded, Journal]:
        """Under the lock: fold leftovers, create the state if needed (as `create_if_absent`), and start recording.

        The state returned is the journal's own: each event appended is folded into it."""

    def write(self, recorded: Recorded) -> None:
        """Under the lock: replace the whole state with `recorded` (serial + 1)."""
