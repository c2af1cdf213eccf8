"""What every state backend provides."""

from __future__ import annotations

import secrets as random_tokens
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from reconciler.model import Recorded

if TYPE_CHECKING:
    from reconciler.reference import StateReference
    from reconciler.state.events import Event


#: The refusal of `--shard` by a backend that cannot hold shards (`Backend.shards`).
SHARDS_NEED_POSTGRES = (
    "--shard needs the PostgreSQL state backend (--state postgresql://...), where shards can apply at once"
)


def new_salt() -> str:
    """The fingerprint salt of a new state."""
    return random_tokens.token_hex(16)


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
    #: Whether `read_accounts` reads only the accounts asked for (PostgreSQL: their rows), rather than the whole
    #: state and then keeping some: a run about a few accounts then reads only theirs.
    partial_reads: bool

    def describe(self) -> str: ...

    def reference(self) -> StateReference:
        """Which state this is, for a saved plan to record: kind and location, never a user or password."""

    def read(self) -> Recorded:
        """A consistent snapshot, including events recorded but not yet folded. Takes no lock."""

    def read_accounts(self, account_ids: Iterable[str]) -> Recorded:
        """As `read()`, holding only the records of `account_ids` (those that are recorded): lineage, serial and
        salt as `read()` gives them, and each record as `read()` would hold it."""

    def read_failed(self) -> Recorded:
        """As `read()`, holding only the records whose last failure holds a message."""

    def account_ids(self) -> set[str]:
        """The id of every account `read()` would hold."""

    def count_accounts(self) -> int:
        """How many accounts `read()` would hold."""

    def other_workspaces(self, account_ids: Iterable[str] | None) -> dict[str, int]:
        """Each other workspace beside this state (PostgreSQL: of the same schema) that holds some of
        `account_ids` (None: any account), and how many of them it holds; {} for a backend without
        workspaces."""

    def other_schemas(self, account_ids: Iterable[str] | None) -> dict[str, dict[str, int]]:
        """Only when this state's schema holds no account at all (it does not exist yet, has no tables, or holds
        none): each other schema of the same database that holds reconciler state (and that this role may read),
        mapped to each of its workspaces that holds some of `account_ids` (None: any account), with how many.
        {} otherwise, and for a backend without schemas."""

    def lock(
        self, timeout: float = 0.0, command: str = "apply", shard: tuple[int, int] | None = None
    ) -> AbstractContextManager[None]:
        """Hold the exclusive lock (or, for shard K, the state shared and shard K exclusively).

        Raise LockHeld naming the holder if not acquired within `timeout`.
        """

    def create_if_absent(self, salt: str | None = None, accounts: Iterable[str] | None = None) -> Recorded:
        """Under the lock: the state as `read()` gives it, created first if it does not exist yet (a new lineage,
        serial 0, `salt` or else a new salt). With `accounts`, it may hold only their records (as
        `read_accounts`), where the backend has `partial_reads`.

        Holders of the lock that create the state at once (shards started together) all get the values of the
        one creation that won: a creation never replaces a lineage or salt that another holder may already be
        fingerprinting with."""

    def open_journal(
        self, salt: str | None = None, accounts: Iterable[str] | None = None
    ) -> tuple[Recorded, Journal]:
        """Under the lock: fold leftovers, create the state if needed (as `create_if_absent`), and start recording.

        The state returned is the journal's own: each event appended is folded into it. With `accounts`, it may
        hold only their records (where the backend has `partial_reads`): an event about another account must
        then first have that account's record put into it, as read, for the fold to start from."""

    def write(self, recorded: Recorded, accounts: Iterable[str] | None = None) -> None:
        """Under the lock: replace the whole state with `recorded` (serial + 1).

        With `accounts`, `recorded` is what `open_journal` (or `create_if_absent`) returned for the same
        `accounts`, changed for those accounts alone: a backend with `partial_reads` writes only their records
        (those `recorded` no longer holds are removed) beside the lineage, serial and salt; another, whose
        `recorded` holds the whole state, writes it whole."""
