"""The file journal's cost on the event loop: batched fsyncs run on a thread of their own, failures still surface."""

from __future__ import annotations

import errno
import itertools
import os
import re
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.errors import StateError
from reconciler.state import events as recording
from reconciler.state.file import journal as file_journal
from reconciler.state.file.backend import FileBackend


def _journal(tmp_path: Path):
    backend = FileBackend(tmp_path / "state.json")
    lock = backend.lock()
    lock.__enter__()
    _, journal = backend.open_journal()
    return journal, lock


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_batched_fsyncs_leave_the_appending_thread(tmp_path, monkeypatch) -> None:
    journal, lock = _journal(tmp_path)
    threads: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        threads.append(threading.current_thread().name)
        real_fsync(fd)

    monkeypatch.setattr(file_journal, "FSYNC_INTERVAL", 0.0)
    monkeypatch.setattr(os, "fsync", fsync)
    for i in range(50):
        journal.append(recording.applied(f"acc_{i}", {"country": "US"}, None))
    _wait_for(lambda: threads, "a batched fsync")
    batched = list(threads)
    recorded = journal.close()
    lock.__exit__(None, None, None)
    assert batched and threading.current_thread().name not in batched
    assert threads[-1] == threading.current_thread().name  # close() makes the rest durable itself
    assert len(recorded.accounts) == 50


def test_a_failed_batched_fsync_stops_the_recording(tmp_path, monkeypatch) -> None:
    journal, lock = _journal(tmp_path)
    failed: list[int] = []

    def fsync(fd: int) -> None:
        failed.append(fd)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(file_journal, "FSYNC_INTERVAL", 0.0)
    monkeypatch.setattr(os, "fsync", fsync)
    journal.append(recording.applied("acc_0", {"country": "US"}, None))
    _wait_for(lambda: failed, "the failing fsync")
    # The fsync thread stores the failure with its future a moment later: an append surfaces it once it has.
    deadline = time.monotonic() + 10
    with pytest.raises(StateError, match="cannot make the results durable: Input/output error"):
        for i in itertools.count(1):
            assert time.monotonic() < deadline, "the failed fsync never surfaced"
            journal.append(recording.applied(f"acc_{i}", {"country": "US"}, None))
            time.sleep(0.001)
    monkeypatch.undo()
    journal.close()
    lock.__exit__(None, None, None)


def test_event_time_is_utc_to_the_millisecond() -> None:
    before = datetime.now(UTC)
    stamps = [recording.now() for _ in range(2000)]
    after = datetime.now(UTC)
    for stamp in (stamps[0], stamps[-1]):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp), stamp
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        assert before.replace(microsecond=before.microsecond // 1000 * 1000) <= moment <= after
    assert stamps == sorted(stamps)


def test_a_journal_left_by_a_crash_replays_every_kind_of_event(tmp_path) -> None:
    """What a killed apply leaves (each kind of event, a failure among them) is folded in by the next read."""
    journal, lock = _journal(tmp_path)
    failure = {"operation": "patch", "error_type": "invalid_parameters", "http_status": 400, "message": "m"}
    journal.append(recording.applied("ok", {"country": "US"}, "LINKEDIN"))
    journal.append(recording.applied("gone", {"country": "US"}, None))
    journal.append(recording.failed("bad", failure))  # type: ignore[arg-type]
    journal.append(recording.resynced("ok", 3))
    journal.append(recording.forgotten("gone"))
    journal.flush()
    lock.__exit__(None, None, None)  # no close(): the process died here

    recorded = FileBackend(tmp_path / "state.json").read()
    assert sorted(recorded.accounts) == ["bad", "ok"]
    assert recorded.accounts["ok"].resync_generation == 3 and recorded.accounts["ok"].last_failure is None
    stored = recorded.accounts["bad"].last_failure
    assert stored is not None and stored["message"] == "m" and stored["error_type"] == "invalid_parameters"


@pytest.mark.parametrize(
    ("event", "problem"),
    [
        (
            recording.failed(
                "a", {"operation": "patch", "error_type": "x", "http_status": None, "message": None}
            ),
            None,
        ),
        ({"op": "failed", "id": "a"}, "'failed' event with a malformed failure"),
        (
            {"op": "failed", "id": "a", "failure": {"operation": "delete"}},
            "'failed' event with a malformed failure",
        ),
        (recording.applied("a", None, None), None),
        ({"op": "applied", "id": "a", "settings": None, "provider": None}, "'applied' event without a time"),
        (recording.forgotten("a"), None),
        ({"op": "renamed", "id": "a", "at": "t"}, "unknown recording event 'renamed'"),
    ],
)
def test_event_problem_reads_each_event_where_its_time_is(event, problem) -> None:
    assert recording.event_problem(event) == problem
