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
    process = start_apply(workdir, server, "--state", "state.json", "--concurrency", "4", "--grace", "60")
    wait_until(
        lambda: api.stats.in_flight == 4 and len(api.stats.patched) >= 20, what="four hanging requests"
    )
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert process.poll() is None  # waiting for the requests in flight, within the grace
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 143
    recorded = _recorded_ok(workdir)
    assert recorded == set(api.stats.patched)  # every success recorded before the abort is kept
