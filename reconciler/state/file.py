"""The file state backend: one JSON file, an append-only journal beside it, and an OS lock file.

Guarantees:
* the state file is only ever replaced atomically (write a temporary file, fsync, rename, fsync the directory),
  with mode 0600, so whatever kills the process the file is either the old or the new state;
* during an apply every event is written to `<state>.journal` at once (so a kill -9 loses nothing written) and
  fsynced in batches (for power loss); the journal is folded into the state at the end, or at the next start;
* the lock is `flock` on `<state>.lock`, which the kernel releases when the process dies: no stale locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets as random_tokens
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from reconciler import logs
from reconciler.errors import LockHeld, StateError, UsageError
from reconciler.model import AccountRecord, Recorded
from reconciler.state.events import fold

log = logs.get("state")

FORMAT_VERSION = 1
FSYNC_INTERVAL = 0.05  # seconds between journal fsyncs during an apply


def new_salt() -> str:
    return random_tokens.token_hex(16)


class FileBackend:
    """State in a JSON file on local disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.journal_path = path.with_name(path.name + ".journal")
        self.lock_path = path.with_name(path.name + ".lock")
        self._lock_fd: int | None = None

    def describe(self) -> str:
        return str(self.path)

    # -- reading ---------------------------------------------------------------------------------------------
    def read(self) -> Recorded:
        recorded = self._read_file()
        self._replay_journal(recorded)
        return recorded

    def _read_file(self) -> Recorded:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return Recorded(lineage=None, serial=0, salt=new_salt())
        except OSError as exc:
            raise StateError(f"{self.path}: cannot read the state: {exc.strerror or exc}") from None
        try:
            document = json.loads(raw)
            if document.get("format_version") != FORMAT_VERSION:
                raise StateError(
                    f"{self.path}: unsupported state format_version {document.get('format_version')!r}"
                )
            accounts = {key: AccountRecord.from_json(value) for key, value in document["accounts"].items()}
            return Recorded(
                lineage=document["lineage"],
                serial=int(document["serial"]),
                salt=document["salt"],
                accounts=accounts,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateError(f"{self.path}: the state file is not a reconciler state ({exc})") from None

    def _replay_journal(self, recorded: Recorded) -> bool:
        """Fold a leftover journal into `recorded`; True if it held events for this state."""
        try:
            lines = self.journal_path.read_bytes().split(b"\n")
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateError(f"{self.journal_path}: cannot read the journal: {exc.strerror or exc}") from None
        try:
            header = json.loads(lines[0])
        except ValueError:
            return False  # a journal torn before its header was written holds nothing
        if header.get("lineage") != recorded.lineage or header.get("base_serial") != recorded.serial:
            return False  # already folded into this state before the crash
        folded = False
        for line in lines[1:]:
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                break  # the torn last line of a killed process
            fold(recorded, event)
            folded = True
        if folded:
            recorded.serial += 1
        return folded

    # -- writing ---------------------------------------------------------------------------------------------
    def write(self, recorded: Recorded) -> None:
        recorded.serial += 1
        self._write_file(recorded)

    def _write_file(self, recorded: Recorded) -> None:
        payload = _serialise(recorded)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                _write_all(fd, payload)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, self.path)
            _fsync_directory(self.path.parent)
        except OSError as exc:  # a full disk, say: the old state file stays as it was
            with contextlib.suppress(OSError):
                temporary.unlink()
            raise StateError(f"{self.path}: cannot write the state: {exc.strerror or exc}") from None
        log.debug("wrote %s: %d account(s), serial %d", self.path, len(recorded.accounts), recorded.serial)

    # -- locking ---------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(
        self, timeout: float = 0.0, command: str = "apply", shard: tuple[int, int] | None = None
    ) -> Iterator[None]:
        if shard is not None:
            raise UsageError(
                "--shard needs the PostgreSQL state backend (shards apply at once on several runners)"
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(self.lock_path)
                    os.close(fd)
                    raise LockHeld(f"the state {self.path} is locked by {holder}") from None
                time.sleep(0.1)
        try:
            holder = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": command,
                "since": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
            self._lock_fd = fd
            self._remove_torn_writes()
            yield
        finally:
            self._lock_fd = None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing releases the flock

    def _remove_torn_writes(self) -> None:
        """Delete temporary files of state writes killed before their rename (only the lock holder writes)."""
        for temporary in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()

    def _require_lock(self) -> None:
        if self._lock_fd is None:
            raise StateError("internal error: the state was changed without holding its lock")

    # -- applying --------------------------------------------------------------------------------------------
    def open_journal(self, salt: str | None = None) -> tuple[Recorded, FileJournal]:
        self._require_lock()
        recorded = self._read_file()
        if self._replay_journal(recorded):
            self._write_file(recorded)
        if not recorded.exists:
            recorded.lineage = str(uuid.uuid4())
            recorded.salt = salt or recorded.salt
            self._write_file(recorded)
        with contextlib.suppress(FileNotFoundError):
            self.journal_path.unlink()
        return recorded, FileJournal(self, recorded)


class FileJournal:
    """Append-only recording for one apply; see the module docstring for the guarantees."""

    def __init__(self, backend: FileBackend, recorded: Recorded) -> None:
        self.backend = backend
        self.recorded = recorded
        self._fd = os.open(backend.journal_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        header = {"journal": 1, "lineage": recorded.lineage, "base_serial": recorded.serial}
        os.write(self._fd, json.dumps(header).encode() + b"\n")
        os.fsync(self._fd)
        self._events = 0
        self._last_sync = time.monotonic()
        # The batched fsyncs run on a thread of their own: the event loop never waits for the disk (a loaded
        # disk took ~9 ms per fsync, during which no answer was read and no request sent).
        self._syncer: ThreadPoolExecutor | None = None
        self._syncing: Future[None] | None = None
        import orjson  # a tenth of the json module's time per event; imported by apply only

        self._encode = orjson.dumps

    def append(self, event: dict[str, Any]) -> None:
        try:
            _write_all(self._fd, self._encode(event) + b"\n")
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


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte or raise: a nearly full disk takes part of a write, then refuses the rest."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _serialise(recorded: Recorded) -> bytes:
    """The state document, one account per line (sorted), so a state kept in git diffs by account.

    Written by hand around the C JSON encoder: `json.dumps(indent=...)` takes the pure-Python encoder, which
    measured 0.44 s for 10,000 accounts (issue 8), against ~0.05 s this way.
    """
    head = json.dumps(
        {
            "format_version": FORMAT_VERSION,
            "lineage": recorded.lineage,
            "serial": recorded.serial,
            "salt": recorded.salt,
        }
    )
    encode = json.JSONEncoder(separators=(",", ":")).encode
    rows = ",\n".join(
        f"  {encode(key)}: {encode(recorded.accounts[key].to_json())}" for key in sorted(recorded.accounts)
    )
    body = (
        f'{head[:-1]},\n "accounts": {{\n{rows}\n }}\n}}\n' if rows else f'{head[:-1]}, "accounts": {{}}}}\n'
    )
    return body.encode()


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _read_holder(lock_path: Path) -> str:
    try:
        holder = json.loads(lock_path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not holder:
        return "another process (no details recorded)"
    return (
        f"{holder.get('command', 'a command')} (pid {holder.get('pid')} on {holder.get('host')}) "
        f"since {holder.get('since')}"
    )
