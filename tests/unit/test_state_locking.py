"""What both backends' locks share: the wait until a deadline (on a fake clock: nothing sleeps) and the holder's
description (`LockInfo`)."""

from __future__ import annotations

import json
import re

import pytest

from reconciler.state.locking import RETRY_INTERVAL, LockInfo, lock_deadline, wait_for_lock


class FakeClock:
    """A monotonic clock that moves only when something sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class Lock:
    """A lock that is held by someone else until `free_at` on `clock` (never, by default)."""

    def __init__(self, clock: FakeClock, free_at: float = float("inf")) -> None:
        self.clock = clock
        self.free_at = free_at
        self.tries: list[float] = []

    def try_once(self) -> bool:
        self.tries.append(self.clock.now)
        return self.clock.now >= self.free_at


def _wait(lock: Lock, clock: FakeClock, timeout: float) -> bool:
    return wait_for_lock(lock.try_once, lock_deadline(timeout, clock), clock, clock.sleep)


def test_a_free_lock_is_taken_at_once_without_waiting() -> None:
    clock = FakeClock()
    lock = Lock(clock, free_at=0.0)
    assert _wait(lock, clock, timeout=30)
    assert lock.tries == [1000.0] and clock.slept == []


@pytest.mark.parametrize("timeout", [0.0, -5.0])
def test_no_timeout_tries_exactly_once(timeout: float) -> None:
    clock = FakeClock()
    lock = Lock(clock)
    assert not _wait(lock, clock, timeout)
    assert len(lock.tries) == 1 and clock.slept == []


def test_a_lock_freed_within_the_timeout_is_taken_when_freed() -> None:
    clock = FakeClock()
    lock = Lock(clock, free_at=1000.25)
    assert _wait(lock, clock, timeout=5)
    assert clock.slept == [RETRY_INTERVAL] * 3  # tried at 0, 0.1, 0.2 and 0.3 s: taken at the first try after
    assert len(lock.tries) == 4 and clock.now - 1000.0 < 0.25 + RETRY_INTERVAL


def test_a_held_lock_is_given_up_at_the_deadline_after_a_try_there() -> None:
    clock = FakeClock()
    lock = Lock(clock)
    assert not _wait(lock, clock, timeout=1.0)
    assert 1001.0 <= clock.now < 1001.0 + RETRY_INTERVAL  # no longer than the timeout and one interval
    assert all(seconds == RETRY_INTERVAL for seconds in clock.slept)
    assert len(lock.tries) == len(clock.slept) + 1  # a try after every sleep, the last one at the deadline
    assert lock.tries[-1] >= 1001.0


def test_a_lock_freed_at_the_deadline_is_still_taken() -> None:
    clock = FakeClock()
    lock = Lock(clock, free_at=1001.0)
    assert _wait(lock, clock, timeout=1.0)


def test_one_deadline_covers_several_locks_taken_in_turn() -> None:
    """As a shard takes the workspace's lock and then its own: the second wait has what the first left."""
    clock = FakeClock()
    first, second = Lock(clock, free_at=1000.55), Lock(clock)
    deadline = lock_deadline(1.0, clock)
    assert wait_for_lock(first.try_once, deadline, clock, clock.sleep)
    assert not wait_for_lock(second.try_once, deadline, clock, clock.sleep)
    assert deadline <= clock.now < deadline + RETRY_INTERVAL


def test_the_holder_is_described_as_the_refusal_shows_it() -> None:
    info = LockInfo("apply", 12, "ci-7", "2026-01-31T12:00:00Z")
    assert info.describe() == "apply (pid 12 on ci-7) since 2026-01-31T12:00:00Z"
    sharded = LockInfo("apply", 12, "ci-7", "2026-01-31T12:00:00Z", shard=(2, 4))
    assert sharded.describe() == "apply shard 2/4 (pid 12 on ci-7) since 2026-01-31T12:00:00Z"


def test_this_process_is_the_holder_from_this_second() -> None:
    import os
    import socket

    info = LockInfo.now("state forget")
    assert (info.what, info.pid, info.host, info.shard) == (
        "state forget",
        os.getpid(),
        socket.gethostname(),
        None,
    )
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", info.when), info.when


def test_a_lock_files_line_reads_back_as_written() -> None:
    info = LockInfo("import", 7, "laptop", "2026-01-31T12:00:00Z")
    line = json.dumps(info.to_json())
    assert line == '{"pid": 7, "host": "laptop", "command": "import", "since": "2026-01-31T12:00:00Z"}'
    assert LockInfo.from_json(json.loads(line)).describe() == info.describe()


def test_a_lock_files_line_with_missing_or_odd_values_is_shown_as_found() -> None:
    assert LockInfo.from_json({"pid": 3}).describe() == "a command (pid 3 on None) since None"
    odd = LockInfo.from_json({"command": ["x"], "pid": "p", "host": 5, "since": True})
    assert odd.describe() == "['x'] (pid p on 5) since True"
