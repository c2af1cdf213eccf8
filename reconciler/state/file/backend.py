"""The file backend: the `Backend` interface over a state file, its journal and its lock file.

Where the state is: a state path that is a symbolic link is followed only when the user named it; the journal is
`<state>.journal` and the lock `<state>.lock` beside the file the path leads to.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from reconciler.errors import StateError, UsageError
from reconciler.model import Recorded
from reconciler.reference import StateReference
from reconciler.state.base import SHARDS_NEED_POSTGRES
from reconciler.state.file.journal import FileJournal, replay
from reconciler.state.file.lock import FileLock
from reconciler.state.file.statefile import StateFile
from reconciler.state.locking import LockInfo


class FileBackend:
    """State in a JSON file on local disk.

    `explicit` says whether the user named this path (`--state`, `RECONCILER_STATE`): a state path that is a
    symbolic link is followed only then (`link_note` then says where it leads); otherwise it is refused, so a
    link committed into a repository's `.reconciler/` cannot redirect reconciler's writes.
    """

    shards = False  # one file, one lock: shards could not apply at once
    partial_reads = False  # one document: reading one account reads them all

    def __init__(self, path: Path, explicit: bool = True, unnamed: str = "the default state") -> None:
        if not path.name or path.name == "..":
            raise StateError(f"{path}: a state is a file, and this path names a directory")
        self.given = path
        self.path, self.link_note = _state_path(path, explicit, unnamed)
        self.state_file = StateFile(self.path)
        self.journal_path = self.path.with_name(self.path.name + ".journal")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock_fd: int | None = None
        #: Whether the state or its journal was written under the lock held now.
        self._wrote = False

    def describe(self) -> str:
        return str(self.path)

    def reference(self) -> StateReference:
        """The path as given (a link's own path, which a later run follows again), not the link's target."""
        return StateReference.file(str(self.given))

    # -- reading ---------------------------------------------------------------------------------------------
    def read(self) -> Recorded:
        recorded = self.state_file.read()
        replay(self.journal_path, recorded)
        return recorded

    def read_accounts(self, account_ids: Iterable[str]) -> Recorded:
        recorded = self.read()
        accounts = recorded.accounts
        recorded.accounts = {i: accounts[i] for i in dict.fromkeys(account_ids) if i in accounts}
        return recorded

    def read_failed(self) -> Recorded:
        recorded = self.read()
        recorded.accounts = {
            i: record
            for i, record in recorded.accounts.items()
            if record.last_failure and isinstance(record.last_failure.get("message"), str)
        }
        return recorded

    def account_ids(self) -> set[str]:
        return set(self.read().accounts)

    def count_accounts(self) -> int:
        return len(self.read().accounts)

    def other_workspaces(self, account_ids: Iterable[str] | None) -> dict[str, int]:
        """A file holds one state: there is no other workspace."""
        return {}

    def other_schemas(self, account_ids: Iterable[str] | None) -> dict[str, dict[str, int]]:
        """A file is in no database: there is no other schema."""
        return {}

    # -- writing ---------------------------------------------------------------------------------------------
    def write(self, recorded: Recorded, accounts: Iterable[str] | None = None) -> None:
        """`recorded` holds the whole state, whatever `accounts` says (this backend reads it whole)."""
        recorded.serial += 1
        self._write_file(recorded)

    def _write_file(self, recorded: Recorded) -> None:
        self._wrote = True
        self.state_file.write(recorded)

    # -- locking ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(
        self, timeout: float = 0.0, command: str = "apply", shard: tuple[int, int] | None = None
    ) -> Iterator[None]:
        """`flock` on `<state>.lock` (see reconciler.state.file.lock), the holder described on its first line.

        A command that leaves no state behind (it refused, or had nothing to do, before the state was first
        written) also leaves no lock file, nor the directories it made for it; nor does one that made the lock
        file and wrote nothing (it refused a file that is not a state)."""
        if shard is not None:
            raise UsageError(SHARDS_NEED_POSTGRES)
        held = FileLock.take(self.lock_path, max(timeout, 0.0), str(self.path))
        self._wrote = False
        try:
            held.write_holder(LockInfo.now(command))
            self._lock_fd = held.fd
            self.state_file.remove_torn_writes()
            yield
        finally:
            self._lock_fd = None
            held.release(remove=self._no_state_left() or (held.created and not self._wrote))

    def _no_state_left(self) -> bool:
        """Whether neither the state nor its journal exists (checked by the lock's holder, the only writer)."""
        return not os.path.lexists(self.path) and not os.path.lexists(self.journal_path)

    def _require_lock(self) -> None:
        if self._lock_fd is None:
            raise StateError("internal error: the state was changed without holding its lock")

    # -- applying --------------------------------------------------------------------------------------------
    def create_if_absent(self, salt: str | None = None, accounts: Iterable[str] | None = None) -> Recorded:
        self._require_lock()
        recorded = self.read()
        if not recorded.exists:
            self._create(recorded, salt)
        return recorded

    def _create(self, recorded: Recorded, salt: str | None) -> None:
        """Write `recorded`, a state read where there was none, as a new state (one lock holder at a time)."""
        recorded.lineage = str(uuid.uuid4())
        recorded.salt = salt or recorded.salt
        self._write_file(recorded)

    def open_journal(
        self, salt: str | None = None, accounts: Iterable[str] | None = None
    ) -> tuple[Recorded, FileJournal]:
        self._require_lock()
        recorded = self.state_file.read()
        if replay(self.journal_path, recorded):
            self._write_file(recorded)
        if not recorded.exists:
            self._create(recorded, salt)
        with contextlib.suppress(FileNotFoundError):
            self.journal_path.unlink()  # folded above; a link is removed, never followed
        self._wrote = True
        return recorded, FileJournal(self.journal_path, self.state_file, recorded)


def _state_path(path: Path, explicit: bool, unnamed: str) -> tuple[Path, str | None]:
    """The state file to use for `path`, and a note to show when it was reached through a link.

    A link (at the state file itself, or at a directory of a path the user did not name) is followed only if the
    user named the path; the note then says where it leads. `unnamed` says what names a path the user did not
    name (the default state, a saved plan's state).
    """
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if explicit:
            return target, f"note: the state {path} is a symbolic link to {target}; using {target}"
        raise StateError(
            f"{path}: {unnamed} file is a symbolic link (to {target}); refusing to follow it: to use "
            "that state, give its path with --state or RECONCILER_STATE"
        )
    if not explicit:
        for directory in reversed(path.parents):
            if directory != Path(directory.anchor) and directory != Path(".") and directory.is_symlink():
                raise StateError(
                    f"{directory}: {unnamed}'s directory is a symbolic link (to "
                    f"{os.path.realpath(directory)}); refusing to follow it: to use that state, give its path "
                    "with --state or RECONCILER_STATE"
                )
    return path, None
