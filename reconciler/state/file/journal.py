"""The journal of an apply on the file backend: `<state>.journal`, one JSON line per recorded event.

Every event is written at once (so a kill -9 loses nothing written) and fsynced in batches on a thread of its own
(for power loss); the journal is folded into the state at the end (`FileJournal.close`), or by the next command
that reads the state (`replay`). Its first line names the state it was started on (lineage and serial): a
journal already folded in before a crash is not folded again.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import fsutil
from reconciler.errors import StateError
from reconciler.model import Recorded
from reconciler.state.events import event_problem, fold
from reconciler.state.file.statefile import LINK_REFUSED, StateFile, compact_encoder

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    from reconciler.state.events import Event

FSYNC_INTERVAL = 0.05  # seconds between journal fsyncs during an apply


def replay(journal_path: Path, recorded: Recorded) -> bool:
    """Fold the journal a killed apply left at `journal_path` into `recorded`, if it is this state's (and serial
    + 1 if it held events); True if it was. A journal torn before its header is nothing; a torn last line ends
    it."""
    try:
        raw = fsutil.read_no_follow(journal_path)
    except fsutil.LinkRefused:
        raise StateError(f"{journal_path}: the journal {LINK_REFUSED}") from None
    except OSError as exc:
        raise StateError(f"{journal_path}: cannot read the journal: {exc.strerror or exc}") from None
    if raw is None:
        return False
    lines = raw.split(b"\n")
    try:
        header = json.loads(lines[0])
    except (ValueError, RecursionError):
        return False  # a journal torn before its header was written holds nothing
    if not isinstance(header, dict) or header.get("journal") != 1:
        raise StateError(f"{journal_path}: not a reconciler journal; remove it if it is not one")
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
            raise StateError(f"{journal_path}:{number}: {problem}")
        fold(recorded, event)
        folded = True
    if folded:
        recorded.serial += 1
    return folded


class FileJournal:
    """Append-only recording for one apply at `path`, folded into `recorded`, which `close()` writes to
    `state_file`; see the module docstring for the guarantees."""

    def __init__(self, path: Path, state_file: StateFile, recorded: Recorded) -> None:
        self.path = path
        self.state_file = state_file
        self.recorded = recorded
        header = {"journal": 1, "lineage": recorded.lineage, "base_serial": recorded.serial}
        try:  # the journal was removed just before: a file (or link) found under its name is not ours
            self._fd = fsutil.create_exclusive(path, os.O_WRONLY | os.O_APPEND)
        except OSError as exc:
            raise StateError(f"{path}: cannot start the journal: {exc.strerror or exc}") from None
        try:
            fsutil.write_all(self._fd, json.dumps(header).encode() + b"\n")
            os.fsync(self._fd)
            fsutil.fsync_directory(path.parent)
        except OSError as exc:
            os.close(self._fd)
            raise StateError(f"{path}: cannot start the journal: {exc.strerror or exc}") from None
        self._events = 0
        self._last_sync = time.monotonic()
        # The batched fsyncs run on a thread of their own: the event loop never waits for the disk (a loaded
        # disk took ~9 ms per fsync, during which no answer was read and no request sent).
        self._syncer: ThreadPoolExecutor | None = None
        self._syncing: Future[None] | None = None
        self._encode = compact_encoder()

    def append(self, event: Event) -> None:
        try:
            fsutil.write_all(self._fd, self._encode(event) + b"\n")
        except OSError as exc:
            raise StateError(
                f"{self.path}: cannot record a result: {exc.strerror or exc}; "
                "the results recorded before it are kept"
            ) from None
        fold(self.recorded, event)
        self._events += 1
        if time.monotonic() - self._last_sync >= FSYNC_INTERVAL and self._sync_done():
            if self._syncer is None:
                # Imported at the first batch, not before: ~0.5 ms of start-up (queue, heapq) before the first
                # request (BENCHMARKS.md).
                from concurrent.futures import ThreadPoolExecutor

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
            raise StateError(f"{self.path}: cannot make the results durable: {failed.strerror or failed}")
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
                self.state_file.write(self.recorded)
            except StateError as exc:
                raise StateError(
                    f"{exc}; every result is kept in {self.path}, which the next plan or apply reads"
                ) from None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        return self.recorded
