"""What apply shows while it runs: a line every few seconds without a terminal, a progress bar on one; both with
the recent rate, the time left and the failures so far (the format on a fake clock, then real runs)."""

from __future__ import annotations

import os
import pty
import random
import re
import select
import subprocess
from collections import Counter

import pytest

from reconciler.applying import Progress
from reconciler.cli import progress
from reconciler.cli.progress import ProgressView, RecentRate, format_time_left
from reconciler.sandbox.faults import Fault
from tests.helpers import fleet, start_apply, wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_nothing_is_known_before_an_account_got_through() -> None:
    clock = Clock()
    view = ProgressView(Progress(total=100), clock)
    clock.now += 5
    assert view.line() == "apply: 0/100 accounts done, -- accounts/s, -- left, 0 failed, 0 syncs polling"


def test_the_rate_and_the_time_left_on_a_fake_clock() -> None:
    clock = Clock()
    counts = Progress(total=100)
    view = ProgressView(counts, clock)
    clock.now += 10
    counts.done = 20
    assert view.line() == "apply: 20/100 accounts done, 2.0 accounts/s, ~40s left, 0 failed, 0 syncs polling"
    clock.now += 10
    counts.done = 60  # 60 in 20 s: 3/s, 40 left
    assert "3.0 accounts/s, ~14s left" in view.line()  # 13.3 s: a part of a second counts as one


def test_the_rate_is_the_recent_one_so_a_throttle_shows_within_the_window() -> None:
    """A minute at 10 accounts/s, then the API throttles to 1/s: half a minute later the rate is 1/s (the
    average since the start, 5.5/s, would say the run ends in 3 minutes instead of 17)."""
    clock = Clock()
    counts = Progress(total=2000)
    view = ProgressView(counts, clock)
    for _ in range(12):
        clock.now += 5
        counts.done += 50
        view.line()
    assert "10 accounts/s, ~2m20s left" in view.line()  # 600 done, 1400 left at 10/s
    for _ in range(6):
        clock.now += 5
        counts.done += 5
        line = view.line()
    assert counts.done == 630
    assert "1.0 accounts/s, ~22m50s left" in line, line  # 1370 left at 1/s


def test_the_window_is_independent_of_how_often_it_is_sampled() -> None:
    often, seldom = RecentRate(30.0), RecentRate(30.0)
    rates: dict[str, float | None] = {}
    for tenth in range(0, 1201):  # 120 s: 10/s for the first 60 s, 2/s after
        now = tenth / 10
        count = min(tenth, 600) + max(tenth - 600, 0) // 5
        rates["often"] = often.sample_at(now, count)
        if tenth % 50 == 0:
            rates["seldom"] = seldom.sample_at(now, count)
    assert rates["often"] == rates["seldom"] == 2.0


def test_no_account_through_recently_means_no_time_left() -> None:
    clock = Clock()
    counts = Progress(total=100)
    view = ProgressView(counts, clock, window=30.0)
    clock.now += 10
    counts.done = 10
    view.line()
    clock.now += 40  # nothing through for longer than the window
    assert "0.0 accounts/s, -- left" in view.line()


def test_the_failures_so_far_and_the_commonest_type() -> None:
    counts = Progress(total=100)
    view = ProgressView(counts, Clock())
    for error_type in ["errors/invalid_parameters"] * 2 + ["errors/proxy_error"] * 10:
        counts.count_failure(error_type)
    assert "12 failed (errors/proxy_error 10)," in view.line()


def test_a_tie_keeps_the_type_that_got_there_first() -> None:
    counts = Progress()
    for error_type in ("b", "a", "a", "b"):
        counts.count_failure(error_type)
    assert counts.commonest_failure == (2, "a")


def test_the_commonest_type_is_kept_exactly_one_failure_at_a_time() -> None:
    counts = Progress()
    seen: Counter[str] = Counter()
    draw = random.Random(7)
    for _ in range(2000):
        error_type = draw.choice(["a", "b", "c", "d"] + ["e"] * draw.randint(0, 3))
        counts.count_failure(error_type)
        seen[error_type] += 1
        assert counts.commonest_failure is not None
        assert counts.commonest_failure[0] == max(seen.values())
        assert seen[counts.commonest_failure[1]] == counts.commonest_failure[0]
    assert counts.failed == 2000 and counts.failures_by_type == dict(seen)


def test_an_error_type_from_the_api_is_escaped_for_the_terminal() -> None:
    counts = Progress(total=10)
    counts.count_failure("errors/\x1b]0;owned\x07\u202e")
    line = ProgressView(counts, Clock()).line()
    assert "1 failed (errors/\\x1b]0;owned\\x07\\u202e 1)" in line, line
    assert line.isprintable()


def test_accounts_whose_sync_polls_are_through_their_requests() -> None:
    """An account waiting on its resync's polls counts as through: the time left is for the requests, and the
    line says the syncs polling are not in it."""
    clock = Clock()
    counts = Progress(total=100)
    view = ProgressView(counts, clock)
    clock.now += 10
    counts.done, counts.syncs_polling = 10, 10
    assert view.line() == (
        "apply: 10/100 accounts done, 2.0 accounts/s, ~40s left, 0 failed, 10 syncs polling (not in the time left)"
    )
    clock.now += 10
    counts.done, counts.syncs_polling = 96, 4  # every request sent: only syncs left
    assert "~0s left, 0 failed, 4 syncs polling (not in the time left)" in view.line()


def test_a_cancelled_run_shows_no_time_left() -> None:
    """After Ctrl-C nothing new is sent: the accounts not started are not waited for, so no time left is shown."""
    clock = Clock()
    counts = Progress(total=100)
    view = ProgressView(counts, clock)
    clock.now += 10
    counts.done = 10
    assert "~1m30s left" in view.line()
    counts.cancelled = True
    assert view.line() == "apply: 10/100 accounts done, 1.0 accounts/s, cancelling, 0 failed, 0 syncs polling"


def test_the_time_left_reads_in_hours_minutes_and_seconds() -> None:
    assert format_time_left(None) == "-- left"
    assert format_time_left(0.2) == "~1s left"
    assert format_time_left(59.5) == "~1m00s left"
    assert format_time_left(38 * 60 + 25) == "~38m25s left"
    assert format_time_left(2 * 3600 + 5 * 60 + 59) == "~2h05m left"


def test_the_bar_details_fit_the_room_left_whole_details_first() -> None:
    clock = Clock()
    counts = Progress(total=100)
    view = ProgressView(counts, clock)
    clock.now += 10
    counts.done, counts.in_flight = 20, 8
    counts.count_failure("errors/proxy_error")
    whole = "2.0 accounts/s, ~40s left, 1 failed (errors/proxy_error 1), 8 in flight, 0 syncs polling"
    assert view.detail() == whole
    assert view.detail(len(whole)) == whole
    assert view.detail(60) == "2.0 accounts/s, ~40s left, 1 failed (errors/proxy_error 1)"
    assert view.detail(30) == "2.0 accounts/s, ~40s left"
    assert view.detail(8) == "2.0 acc…"


def test_skipped_accounts_are_counted_apart_from_those_done() -> None:
    """After a stop or a cancellation, the accounts that will not be sent are not `done`, nor in the time left."""
    clock = Clock()
    counts = Progress(total=20)
    view = ProgressView(counts, clock)
    clock.now += 4
    counts.done, counts.skipped = 4, 12
    assert (
        view.line()
        == "apply: 4/20 accounts done, 1.0 accounts/s, ~4s left, 0 failed, 12 skipped, 0 syncs polling"
    )


def test_progress_lines_without_a_terminal(run, write, api, monkeypatch) -> None:
    monkeypatch.setattr(progress, "PROGRESS_LINE_SECONDS", 0.05)
    api.latency_ms = 20
    write("a.yaml", fleet(40))
    result = run("apply", "a.yaml", "--yes", "--concurrency", "2")
    assert result.code == 0
    lines = [line for line in result.err.splitlines() if line.startswith("apply: ")]
    assert len(lines) >= 3, result.err
    done = [int(line.split()[1].split("/")[0]) for line in lines]
    assert done == sorted(done) and done[-1] <= 40  # counts only grow
    assert all(
        "/40 accounts done, " in line and line.endswith(", 0 failed, 0 syncs polling") for line in lines
    )


LINE = re.compile(
    r"apply: (?P<done>\d+)/60 accounts done, (?P<rate>[\d.]+) accounts/s, "
    r"~(?:(?P<minutes>\d+)m)?(?P<seconds>\d+)s left, (?P<failed>\d+) failed(?: \((?P<type>\S+) (?P<count>\d+)\))?, "
    r"0 syncs polling"
)


def test_progress_lines_show_the_rate_the_time_left_and_the_failures_so_far(
    run, write, api, monkeypatch
) -> None:
    """A real apply against the sandbox, some accounts failing: the CI lines carry a rate, a time left that is
    the accounts left over that rate, and the failures so far with the commonest type."""
    monkeypatch.setattr(progress, "PROGRESS_LINE_SECONDS", 0.05)
    api.latency_ms = 40  # one account at a time: 2.5 s or more, so that the time left counts seconds
    api.faults = [
        Fault.parse("errors/proxy_error@acc_0001,acc_0003,acc_0005"),
        Fault.parse("errors/invalid_parameters@acc_0007"),
    ]
    write("a.yaml", fleet(60))
    result = run("apply", "a.yaml", "--yes", "--concurrency", "1", "--max-attempts", "1")
    assert result.code == 3, result.err
    lines = [line for line in result.err.splitlines() if line.startswith("apply: ")]
    matched = [LINE.fullmatch(line) for line in lines]
    known = [match for match in matched if match is not None]
    assert len(known) >= 3, result.err  # every line but those before the first account got through
    unknown = [line for match, line in zip(matched, lines, strict=True) if match is None]
    assert all(", -- accounts/s, -- left, 0 failed, " in line for line in unknown), unknown
    for match in known:
        rate = float(match["rate"])
        left = int(match["minutes"] or 0) * 60 + int(match["seconds"])
        remaining = 60 - int(match["done"])
        assert rate > 0
        # the time left is the accounts left over the rate shown (both rounded in the line)
        assert abs(left - remaining / rate) <= 1 + 0.1 * remaining / rate, match[0]
    assert max(int(match["seconds"]) for match in known) >= 2, result.err
    failures = [int(match["failed"]) for match in known]
    assert failures == sorted(failures) and failures[-1] == 4, result.err
    assert "4 failed (errors/proxy_error 3)" in result.err
    assert (
        "Apply: 60 account(s): 56 PATCHed, 0 resynced, 0 forgotten; 60 operation(s): 56 succeeded, 4 failed, 0 skipped."
        in result.out
    )


@pytest.mark.parametrize(
    ("columns", "details"),
    [
        (
            "120",
            r"[\d.]+ accounts/s, (~\d+s|--) left, 1 failed \(errors/proxy_error 1\), \d in flight, 0 syncs polling",
        ),
        ("48", r"[\d.]+ accounts/s"),  # what does not fit is left out, least useful first
    ],
)
def test_progress_bar_on_a_terminal(write, api, server, workdir, columns: str, details: str) -> None:
    api.latency_ms = 20
    api.faults = [Fault.parse("errors/proxy_error@acc_0001")]
    write("a.yaml", fleet(60))
    leader, follower = pty.openpty()
    process = start_apply(
        workdir,
        server,
        "--concurrency",
        "2",
        "--max-attempts",
        "1",
        env={"TERM": "xterm", "COLUMNS": columns},
        stdin=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    shown = bytearray()

    def drained() -> bool:
        """Read what the terminal shows; true once the child closed it or ended."""
        ready, _, _ = select.select([leader], [], [], 0.5)
        if not ready:
            return process.poll() is not None
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            return True
        shown.extend(chunk)
        return not chunk

    wait_until(drained, timeout=60, fail_on_timeout=False, interval=0)
    os.close(leader)
    assert process.wait(timeout=30) == 3
    text = bytes(shown).decode(errors="replace")
    assert "/60" in text, text[-2000:]  # the bar's count
    drawn = [
        frame.rstrip("\n") for frame in re.split(r"\r|\x1b\[\?25[lh]", text) if frame.startswith("apply ")
    ]
    assert drawn, text[-2000:]
    assert all(len(frame) <= int(columns) for frame in drawn), drawn  # never wider than the terminal
    assert any(re.search(rf"\d+/60  {details} *$", frame) for frame in drawn), drawn[-5:]
    assert "Apply: 60 account(s)" not in text  # the report is on stdout, not mixed into the bar
