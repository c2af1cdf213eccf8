"""The file state backend: one JSON file, an append-only journal beside it, and an OS lock file.

Guarantees:
* the state file is only ever replaced atomically (write a new temporary file, fsync, rename, fsync the
  directory), with mode 0600, so whatever kills the process the file is either the old or the new state;
* no file is opened through a symbolic link (reconciler.fsutil): a link at the state's path is followed only
  when the user named that path, and a link at the journal's or the lock's path is refused;
* during an apply every event is written to `<state>.journal` at once (so a kill -9 loses nothing written) and
  fsynced in batches (for power loss); the journal is folded into the state at the end, or at the next start;
* the lock is `flock` on `<state>.lock`, which the kernel releases when the process dies: no stale locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import json
import os
import secrets as random_tokens
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import fsutil, logs
from reconciler.errors import LockHeld, StateError, UsageError, brief
from reconciler.model import AccountRecord, Recorded
from reconciler.reference import StateReference
from reconciler.state.base import SHARDS_NEED_POSTGRES
from reconciler.state.document import state_problem
from reconciler.state.events import event_problem, fold

if TYPE_CHECKING:
    from reconciler.state.events import Event

log = logs.get("state")

FORMAT_VERSION = 1
FSYNC_INTERVAL = 0.05  # seconds between journal fsyncs during an apply


def new_salt() -> str:
    return random_tokens.token_hex(16)


# long: its split by job (one lock helper shared with PostgreSQL, the journal apart) is a change of its own, under way
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
        recorded = self._read_file()
        self._replay_journal(recorded)
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

    def other_workspaces(self, account_ids: Iterable[str]) -> dict[str, int]:
        """A file holds one state: there is no other workspace."""
        return {}

    def _read_file(self) -> Recorded:
        try:
            raw = fsutil.read_no_follow(self.path)
        except fsutil.LinkRefused:
            raise StateError(f"{self.path}: the state file {_LINK_REFUSED}") from None
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read the state: {exc.strerror or exc}") from None
        if raw is None:
            return Recorded(lineage=None, serial=0, salt=new_salt())
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise StateError(f"{self.path}: the state file is not a reconciler state ({exc})") from None
        if isinstance(document, dict) and document.get("format_version", FORMAT_VERSION) != FORMAT_VERSION:
            raise StateError(
                f"{self.path}: unsupported state format_version {brief(document['format_version'])}"
            )
        problem = state_problem(document)
        if problem:
            raise StateError(f"{self.path}: the state file is not a valid reconciler state: {problem}")
        accounts = {key: AccountRecord.from_json(value) for key, value in document["accounts"].items()}
        return Recorded(
            lineage=document["lineage"],
            serial=int(document["serial"]),
            salt=document["salt"],
            accounts=accounts,
        )

    def _replay_journal(self, recorded: Recorded) -> bool:
        """Fold a leftover journal into `recorded`; True if it held events for this state."""
        try:
            raw = fsutil.read_no_follow(self.journal_path)
        except fsutil.LinkRefused:
            raise StateError(f"{self.journal_path}: the journal {_LINK_REFUSED}") from None
        except OSError as exc:
            raise StateError(f"{self.journal_path}: cannot read the journal: {exc.strerror or exc}") from None
        if raw is None:
            return False
        lines = raw.split(b"\n")
        try:
            header = json.loads(lines[0])
        except (ValueError, RecursionError):
            return False  # a journal torn before its header was written holds nothing
        if not isinstance(header, dict) or header.get("journal") != 1:
            raise StateError(f"{self.journal_path}: not a reconciler journal; remove it if it is not one")
        if header.get("lineage") != recorded.lineage or header.get("base_serial") != recorded.serial:
            return False  # already folded into this state before the crash
        folded = False
        for number, line in enumerate(lines[1:], start=2):
            if not line:
                continue
            try:
                event = json.loads(line)
            except (ValueError, RecursionError):
                break  # the torn last line of a killed process
            problem = event_problem(event)
            if problem:
                raise StateError(f"{self.journal_path}:{number}: {problem}")
            fold(recorded, event)
            folded = True
        if folded:
            recorded.serial += 1
        return folded

    # -- writing ---------------------------------------------------------------------------------------------
    def write(self, recorded: Recorded, accounts: Iterable[str] | None = None) -> None:
        """`recorded` holds the whole state, whatever `accounts` says (this backend reads it whole)."""
        recorded.serial += 1
        self._write_file(recorded)

    def _write_file(self, recorded: Recorded) -> None:
        payload = _serialise(recorded)
        self._wrote = True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fsutil.replace_atomically(self.path, payload, 0o600)
        except OSError as exc:  # a full disk, say: the old state file stays as it was
            raise StateError(f"{self.path}: cannot write the state: {exc.strerror or exc}") from None
        log.debug("wrote %s: %d account(s), serial %d", self.path, len(recorded.accounts), recorded.serial)

    # -- locking ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(
        self, timeout: float = 0.0, command: str = "apply", shard: tuple[int, int] | None = None
    ) -> Iterator[None]:
        """`flock` on `<state>.lock`. The file is never truncated nor followed through a link: the holder's
        description is written over its first line, and blanked (same length) on release.

        A command that leaves no state behind (it refused, or had nothing to do, before the state was first
        written) also leaves no lock file, nor the directories it made for it; nor does one that made the lock
        file and wrote nothing (it refused a file that is not a state). The lock file is removed while its flock
        is still held, and whoever was waiting on the removed file sees, once it has the flock, that the file is
        no longer the lock and opens the new one (`_open_and_flock`)."""
        if shard is not None:
            raise UsageError(SHARDS_NEED_POSTGRES)
        fd, made, created = self._open_and_flock(max(timeout, 0.0))
        self._wrote = False
        line = b""
        try:
            description = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": command,
                "since": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            }
            line = json.dumps(description).encode() + b"\n"
            os.pwrite(fd, line, 0)
            self._lock_fd = fd
            self._remove_torn_writes()
            yield
        finally:
            self._lock_fd = None
            try:
                if self._no_state_left() or (created and not self._wrote):
                    self._remove_lock_file(fd, made)
                elif line:
                    with contextlib.suppress(OSError):
                        os.pwrite(fd, b" " * (len(line) - 1) + b"\n", 0)
            finally:
                os.close(fd)  # closing releases the flock

    def _open_and_flock(self, timeout: float) -> tuple[int, list[Path], bool]:
        """Open the lock file (making its directory) and take its flock, within `timeout` seconds; return the fd,
        the directories made for it (the deepest first) and whether the file was made for it.

        The flock counts only while the file holds the lock's name: a holder that leaves no state removes the
        file before releasing its flock, so a flock taken on a file that has lost the name (or whose directory
        went) is let go and the lock file at the name opened again."""
        deadline = time.monotonic() + timeout
        for _ in range(_REOPEN_LIMIT):
            made = _missing_directories(self.path.parent)
            created = bool(made) or not os.path.lexists(self.lock_path)
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = fsutil.open_lock_file(self.lock_path)
            except fsutil.LinkRefused as exc:
                raise StateError(
                    f"{self.lock_path}: the lock file {exc.strerror}; refusing to use it (remove it if it is not "
                    "reconciler's)"
                ) from None
            except FileNotFoundError:
                continue  # its directory was removed between the two (by a holder that left no state)
            except OSError as exc:
                raise StateError(f"{self.lock_path}: cannot open the lock: {exc.strerror or exc}") from None
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        holder = _read_holder(self.lock_path)
                        os.close(fd)
                        raise LockHeld.by(str(self.path), holder) from None
                    time.sleep(0.1)
            if _names(self.lock_path, fd):
                return fd, made, created
            os.close(fd)
        raise StateError(
            f"{self.lock_path}: cannot take the lock: the file or its directory keeps being removed"
        )

    def _no_state_left(self) -> bool:
        """Whether neither the state nor its journal exists (checked by the lock's holder, the only writer)."""
        return not os.path.lexists(self.path) and not os.path.lexists(self.journal_path)

    def _remove_lock_file(self, fd: int, made: list[Path]) -> None:
        """Remove the lock file (the holder's flock on `fd` still held) and the directories made for it."""
        with contextlib.suppress(OSError):
            if _names(self.lock_path, fd):
                self.lock_path.unlink()
        for directory in made:  # the deepest first; one that holds anything else stays
            try:
                directory.rmdir()
            except OSError:
                break

    def _remove_torn_writes(self) -> None:
        """Delete temporary files of state writes killed before their rename (only the lock holder writes)."""
        for temporary in self.path.parent.glob(f".{glob.escape(self.path.name)}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()  # a link is removed, never followed

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
        recorded = self._read_file()
        if self._replay_journal(recorded):
            self._write_file(recorded)
        if not recorded.exists:
            self._create(recorded, salt)
        with contextlib.suppress(FileNotFoundError):
            self.journal_path.unlink()  # folded above; a link is removed, never followed
        self._wrote = True
        return recorded, FileJournal(self, recorded)


class FileJournal:
    """Append-only recording for one apply; see the module docstring for the guarantees."""

    def __init__(self, backend: FileBackend, recorded: Recorded) -> None:
        self.backend = backend
        self.recorded = recorded
        header = {"journal": 1, "lineage": recorded.lineage, "base_serial": recorded.serial}
        try:  # the journal was removed just before: a file (or link) found under its name is not ours
            self._fd = fsutil.create_exclusive(backend.journal_path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise StateError(
                f"{backend.journal_path}: cannot start the journal: {exc.strerror or exc}"
            ) from None
        try:
            fsutil.write_all(self._fd, json.dumps(header).encode() + b"\n")
            os.fsync(self._fd)
            fsutil.fsync_directory(backend.journal_path.parent)
        except OSError as exc:
            os.close(self._fd)
            raise StateError(
                f"{backend.journal_path}: cannot start the journal: {exc.strerror or exc}"
            ) from None
        self._events = 0
        self._last_sync = time.monotonic()
        # The batched fsyncs run on a thread of their own: the event loop never waits for the disk (a loaded
        # disk took ~9 ms per fsync, during which no answer was read and no request sent).
        self._syncer: ThreadPoolExecutor | None = None
        self._syncing: Future[None] | None = None
        self._encode = _compact_encoder()

    def append(self, event: Event) -> None:
        try:
            fsutil.write_all(self._fd, self._encode(event) + b"\n")
        except OSError as exc:
            raise StateError(
                f"{self.backend.journal_path}: cannot record a result: {exc.strerror or exc}; "
                "the results recorded before it are kept"
            ) from None
        fold(self.recorded, event)
        self._events += 1
        if time.monotonic() - self._last_sync >= FSYNC_INTERVAL and self._sync_done():
            if self._syncer is None:
                self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal-fsync")
            self._syncing = self._syncer.submit(os.fsync, self._fd)
            self._last_sync = time.monotonic()

    def _sync_done(self) -> bool:
        """Whether no fsync is under way; raise StateError if the last one failed."""
        if self._syncing is None:
            return True
        if not self._syncing.done():
            return False
        failed, self._syncing = self._syncing.exception(), None
        if isinstance(failed, OSError):
            raise StateError(
                f"{self.backend.journal_path}: cannot make the results durable: {failed.strerror or failed}"
            )
        return True

    async def durable(self) -> None:
        """Nothing to wait for: `append` wrote the event to the kernel, which keeps it when the process dies
        (fsync, for power loss, follows within FSYNC_INTERVAL)."""

    def flush(self) -> None:
        if self._syncing is not None:
            self._syncing.exception()  # wait for it; this fsync reports a lasting failure itself
            self._syncing = None
        os.fsync(self._fd)
        self._last_sync = time.monotonic()

    def close(self) -> Recorded:
        self.flush()
        if self._syncer is not None:
            self._syncer.shutdown()
        os.close(self._fd)
        if self._events:
            self.recorded.serial += 1
            try:
                self.backend._write_file(self.recorded)
            except StateError as exc:
                raise StateError(
                    f"{exc}; every result is kept in {self.backend.journal_path}, which the next "
                    "plan or apply reads"
                ) from None
        with contextlib.suppress(FileNotFoundError):
            self.backend.journal_path.unlink()
        return self.recorded


@functools.cache
def _compact_encoder() -> Callable[[object], bytes]:
    """Compact JSON exactly as `json.JSONEncoder(separators=(",", ":"))` writes it, every character outside
    printable ASCII escaped: one encoder for the journal's lines and the state's, so that no file the reconciler
    writes carries a character a terminal would act on.

    orjson takes a third of the json module's time (measured: a journal line per success, and the state write of
    10,000 accounts ends every apply), and writes the same bytes for what a state holds but for three things,
    left to the json module: text outside ASCII or with DEL (written raw), floats (written in another form, NaN
    and infinities as null; a state edited by hand may hold them) and integers beyond 64 bits (refused)."""
    import orjson  # imported where a state or journal is written, not by every command that reads one

    dumps, fallback = orjson.dumps, json.JSONEncoder(separators=(",", ":")).encode

    def compact(value: object) -> bytes:
        if _holds_float(value):
            return fallback(value).encode()
        try:
            text = dumps(value)
        except orjson.JSONEncodeError:
            return fallback(value).encode()
        return text if text.isascii() and b"\x7f" not in text else fallback(value).encode()

    return compact


def _holds_float(value: object) -> bool:
    if type(value) is dict:
        for item in value.values():
            if type(item) is float or ((type(item) is dict or type(item) is list) and _holds_float(item)):
                return True
        return False
    if type(value) is list:
        return any(_holds_float(item) for item in value)
    return type(value) is float


def _serialise(recorded: Recorded) -> bytes:
    """The state document, one account per line (sorted), so a state kept in git diffs by account.

    Written by hand around the C JSON encoder: `json.dumps(indent=...)` takes the pure-Python encoder, which
    measured 0.44 s for 10,000 accounts, against ~0.05 s this way.
    """
    head = json.dumps(
        {
            "format_version": FORMAT_VERSION,
            "lineage": recorded.lineage,
            "serial": recorded.serial,
            "salt": recorded.salt,
        }
    )
    compact = _compact_encoder()
    rows = b",\n".join(
        b"  %s: %s" % (compact(key), compact(recorded.accounts[key].to_json()))
        for key in sorted(recorded.accounts)
    )
    if not rows:
        return f'{head[:-1]}, "accounts": {{}}}}\n'.encode()
    return head[:-1].encode() + b',\n "accounts": {\n' + rows + b"\n }\n}\n"


#: How many times a lock file that lost its name while being locked is opened again before giving up.
_REOPEN_LIMIT = 1000


def _names(lock_path: Path, fd: int) -> bool:
    """Whether `lock_path` is (still) the file open as `fd`."""
    try:
        named = os.lstat(lock_path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


def _missing_directories(directory: Path) -> list[Path]:
    """`directory` and those of its parents that do not exist yet, the deepest first."""
    missing: list[Path] = []
    while directory != directory.parent and not os.path.lexists(directory):
        missing.append(directory)
        directory = directory.parent
    return missing


def _read_holder(lock_path: Path) -> str:
    """Who holds the lock, from the first line of the lock file (its holder writes it there)."""
    try:
        first_line = (fsutil.read_no_follow(lock_path) or b"").split(b"\n", 1)[0]
        holder = json.loads(first_line)
    except (OSError, ValueError):
        holder = {}
    if not isinstance(holder, dict) or not holder:
        return "another process (no details recorded)"
    return (
        f"{holder.get('command', 'a command')} (pid {holder.get('pid')} on {holder.get('host')}) "
        f"since {holder.get('since')}"
    )


_LINK_REFUSED = "is a symbolic link; refusing to follow it (remove it if it is not reconciler's)"


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
