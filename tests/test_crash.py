"""kill -9 in the middle of an apply, for every backend: the state loads, nothing recorded is lost, a re-run converges."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from reconciler.state import open_backend
from tests.conftest import SENTINEL_KEY
from tests.test_apply import fleet

CONCURRENCY = 4


def test_kill_9_mid_apply_then_converge(run, write, api, server, workdir, state_url) -> None:
    api.latency_ms = 15
    write("a.yaml", fleet(400))
    env = {**os.environ, "POSTPRESS_API_KEY": SENTINEL_KEY, "POSTPRESS_API_URL": server.url}
    process = subprocess.Popen([sys.executable, "-m", "reconciler", "apply", "a.yaml", "--yes", "--state", state_url,
                                "--concurrency", str(CONCURRENCY)], cwd=workdir, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while len(api.stats.patched) < 100 and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    succeeded_at_server = set(api.stats.patched)
    assert 100 <= len(succeeded_at_server) < 400, "the kill must land mid-run"

    recorded = open_backend(state_url).read()
    recorded_ok = {i for i, r in recorded.accounts.items() if r.settings is not None}
    assert recorded_ok <= succeeded_at_server
    assert len(succeeded_at_server - recorded_ok) <= CONCURRENCY  # at most the in-flight ones lost their record

    plan = run("plan", "a.yaml", "--format", "json", "--state", state_url).json
    assert {c["account_id"] for c in plan["changes"]} == {f"acc_{i:04d}" for i in range(400)} - recorded_ok

    api.latency_ms = 0
    assert run("apply", "a.yaml", "--yes", "--state", state_url).code == 0
    assert run("plan", "a.yaml", "--detailed-exitcode", "--state", state_url).code == 0
    assert max(api.stats.patches.values()) <= 2
    assert set(api.stats.patched) == {f"acc_{i:04d}" for i in range(400)}


def test_api_stopped_mid_run_stops_early_and_records_only_successes(run, write, api, server, workdir) -> None:
    import json
    import threading

    api.latency_ms = 10
    write("a.yaml", fleet(300))

    def stop_after_some() -> None:
        deadline = time.monotonic() + 30
        while len(api.stats.patched) < 60 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.stop()

    stopper = threading.Thread(target=stop_after_some)
    stopper.start()
    result = run("apply", "a.yaml", "--yes", "--concurrency", "4", "--max-attempts", "2", "--report", "r.json")
    stopper.join()
    assert result.code == 3
    report = json.loads((workdir / "r.json").read_text())
    assert "Stopped early: 5 consecutive network failures" in result.out
    assert report["summary"]["skipped"] > 0
    assert set(report["failures_by_type"]) == {"network_error"}
    recorded = open_backend(str(workdir / ".reconciler/state.json")).read()
    recorded_ok = {i for i, r in recorded.accounts.items() if r.settings is not None}
    assert recorded_ok <= set(api.stats.patched)  # nothing recorded falsely
    succeeded = {r["account_id"] for r in report["results"] if r["outcome"] == "succeeded"}
    assert succeeded == recorded_ok
