"""Cancellation as CI does it: SIGTERM (a cancelled job) or SIGINT (Ctrl-C) mid-apply ends the run gracefully."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from reconciler.sandbox import Fault
from reconciler.state import open_backend
from tests.helpers import fleet, start_apply, wait_until

COUNT = 300


def _recorded_ok(workdir) -> set[str]:
    recorded = open_backend(str(workdir / "state.json")).read()
    return {i for i, r in recorded.accounts.items() if r.settings is not None}


@pytest.mark.parametrize(("signal_number", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_stops_sending_records_reports_and_exits_128_plus_n(
    write, api, server, workdir, signal_number, code
) -> None:
    api.latency_ms = 50
    write("a.yaml", fleet(COUNT))
    process = start_apply(
        workdir,
        server,
        "--state",
        "state.json",
        "--concurrency",
        "4",
        "--report",
        "r.json",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_until(lambda: len(api.stats.patched) >= 12, what="a dozen PATCHes")
    process.send_signal(signal_number)
    out, err = process.communicate(timeout=30)
    assert process.returncode == code, err
    sent = api.stats.requests
    time.sleep(0.3)
    assert api.stats.requests == sent  # nothing more goes out after the exit
    assert sent < COUNT / 2
    report = json.loads((workdir / "r.json").read_text())
    succeeded = {r["account_id"] for r in report["results"] if r["outcome"] == "succeeded"}
    skipped = [r for r in report["results"] if r["outcome"] == "skipped"]
    assert len(succeeded) + len(skipped) == COUNT
    assert all(f"cancelled by {signal.Signals(signal_number).name}" in r["message"] for r in skipped)
    assert succeeded == set(api.stats.patched)  # in-flight requests finished within the grace and were kept
    assert _recorded_ok(workdir) == succeeded
    assert not (workdir / "state.json.journal").exists()  # folded into the state
    assert "skipped" in out.decode()  # the summary is printed
    assert "Traceback" not in err.decode()


def test_a_second_signal_aborts_at_once_and_keeps_what_was_recorded(write, api, server, workdir) -> None:
    hanging = [f"acc_{i:04d}" for i in range(20, 24)]
    api.faults = [Fault.parse(f"hang@{','.join(hanging)}")]
    api.hang_seconds = 60  # the requests in flight at the first signal outlast its grace
    write("a.yaml", fleet(COUNT))
    process = start_apply(
        workdir,
        server,
        "--state",
        "state.json",
        "--concurrency",
        "4",
        "--grace",
        "60",
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(
        lambda: api.stats.in_flight == 4 and len(api.stats.patched) >= 20, what="four hanging requests"
    )
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert process.poll() is None  # waiting for the requests in flight, within the grace
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 143
    recorded = _recorded_ok(workdir)
    assert recorded == set(api.stats.patched)  # every success recorded before the abort is kept
    assert err.splitlines()[1:] == [  # after `Applying to ...`: each signal said as it came
        "Cancelling (SIGTERM): waiting up to 60 s for 4 request(s) in flight; SIGTERM again to stop at once.",
        "Stopped at once (SIGTERM again): no report; what was recorded is kept; 4 request(s) in flight may have "
        "been applied without being recorded. Apply again to converge.",
    ]


def test_the_first_ctrl_c_is_said_at_once_and_skipped_accounts_are_not_counted_done(
    write, api, server, workdir
) -> None:
    """Ctrl-C with four requests hanging: one line at once; the progress line (every 5 s) counts the accounts
    that will not be sent apart from those done."""
    api.faults = [Fault.parse("hang@acc_0004,acc_0005,acc_0006,acc_0007")]
    api.hang_seconds = 60
    write("a.yaml", fleet(20))
    err = (workdir / "err.txt").open("w")
    process = start_apply(
        workdir, server, "--concurrency", "4", "--grace", "6", "--pace", "fixed", stderr=err
    )
    wait_until(lambda: api.stats.in_flight == 4 and len(api.stats.patched) == 4, what="four hanging requests")
    process.send_signal(signal.SIGINT)
    cancelling = (
        "Cancelling (SIGINT): waiting up to 6 s for 4 request(s) in flight; Ctrl-C again to stop at once."
    )
    wait_until(lambda: cancelling in (workdir / "err.txt").read_text(), timeout=2, what="the line")
    assert process.poll() is None  # said at once, while the grace runs
    assert process.wait(timeout=30) == 130
    err.close()
    lines = [line for line in (workdir / "err.txt").read_text().splitlines() if line.startswith("apply: ")]
    assert lines, (workdir / "err.txt").read_text()
    assert all(line.startswith("apply: 4/20 accounts done, ") for line in lines), lines
    assert all(", 0 failed, 12 skipped, 0 syncs polling" in line for line in lines), lines


def test_ctrl_c_while_resyncs_only_sleep_between_polls_ends_at_once(write, api, server, workdir) -> None:
    """No request in flight: nothing to wait for, whatever the grace."""
    api.sync_polls = 1000  # the syncs keep running
    lines = ["version: 1", "accounts:"] + [
        f"  t{i}: {{provider: TELEGRAM, resync: {{generation: 1}}}}" for i in range(3)
    ]
    write("a.yaml", "\n".join(lines) + "\n")
    process = start_apply(
        workdir,
        server,
        "--sync-poll-interval",
        "30",
        "--grace",
        "20",
        "--max-resync-percent",
        "100",
        "--report",
        "r.json",
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_until(lambda: sum(api.stats.syncs_started.values()) == 3 and api.stats.in_flight == 0, what="syncs")
    time.sleep(0.3)  # each sleeps between polls now
    started = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=15)
    assert process.returncode == 130
    assert time.monotonic() - started < 3  # not the 20 s of the grace
    assert "Cancelling (SIGINT): no request in flight; stopping now." in err.splitlines()
    report = json.loads((workdir / "r.json").read_text())
    assert [r["outcome"] for r in report["results"]] == ["skipped"] * 3
