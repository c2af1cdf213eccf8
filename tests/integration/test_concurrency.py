"""Several processes at once on one state, and an API that pushes back: locks, snapshots, Retry-After storms."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from reconciler.state import open_backend
from tests.helpers import fleet, start_apply, wait_until


def _apply_process(workdir, server, state_url: str) -> subprocess.Popen[str]:
    return start_apply(
        workdir,
        server,
        "--concurrency",
        "4",
        state=state_url,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_patches(api, count: int, process: subprocess.Popen[str]) -> None:
    wait_until(
        lambda: len(api.stats.patched) >= count,
        what=f"{count} PATCHes",
        stop_if_exited=process,
        fail_on_timeout=False,
        interval=0.005,
    )
    assert process.poll() is None, "the first apply ended before the test could act"


def test_two_applies_at_once_one_is_refused(write, api, server, workdir, state_url) -> None:
    api.latency_ms = 10
    write("a.yaml", fleet(200))
    first = _apply_process(workdir, server, state_url)
    _wait_for_patches(api, 10, first)
    api.latency_ms = 300  # the first apply is still running whatever the second's start-up takes
    second = _apply_process(workdir, server, state_url)
    _, second_err = second.communicate(timeout=60)
    assert first.poll() is None, "the first apply ended before the second tried the lock"
    api.latency_ms = 0
    assert second.returncode == 1, second_err
    assert "is locked by apply (pid" in second_err and "Traceback" not in second_err
    _, first_err = first.communicate(timeout=60)
    assert first.returncode == 0, first_err
    assert api.stats.requests == 200  # every request came from the first apply: the second sent none
    assert max(api.stats.patches.values()) == 1


def test_kill_of_the_lock_holder_frees_the_lock_at_once(run, write, api, server, workdir, state_url) -> None:
    api.latency_ms = 10
    write("a.yaml", fleet(200))
    holder = _apply_process(workdir, server, state_url)
    _wait_for_patches(api, 10, holder)
    holder.send_signal(signal.SIGKILL)
    holder.communicate()
    started = time.monotonic()
    result = run("apply", "a.yaml", "--yes", "--state", state_url, "--lock-timeout", "0")
    assert result.code == 0, result.err
    assert time.monotonic() - started < 10  # no waiting for a stale lock to expire: there is none
    assert run("plan", "a.yaml", "--detailed-exitcode", "--state", state_url).code == 0


def test_plan_during_apply_sees_a_consistent_snapshot(run, write, api, server, workdir, state_url) -> None:
    api.latency_ms = 10
    count = 300
    write("a.yaml", fleet(count))
    every_id = {f"acc_{i:04d}" for i in range(count)}
    applying = _apply_process(workdir, server, state_url)
    _wait_for_patches(api, 30, applying)
    for _ in range(3):  # plans taken at different points of the run, without the lock
        accepted_before = set(api.stats.patched)
        plan = run("plan", "a.yaml", "--format", "json", "--state", state_url)
        accepted_after = set(api.stats.patched)
        assert plan.code == 0, plan.err
        planned = {change["account_id"] for change in plan.json["changes"]}
        # Each planned account was unrecorded at one moment: everything the API had not yet accepted when the
        # plan ended is planned, and of what it had accepted when the plan began, at most the 4 in flight are.
        assert every_id - accepted_after <= planned
        assert len(planned & accepted_before) <= 4
        assert all(change["action"] == "create" for change in plan.json["changes"])
        time.sleep(0.1)
    _, err = applying.communicate(timeout=60)
    assert applying.returncode == 0, err
    assert open_backend(state_url).read().serial >= 1


def test_a_retry_after_storm_slows_the_run_to_the_api(run, write, api, workdir) -> None:
    """Above 40 requests/s (a bucket of 4) the sandbox answers 429 with Retry-After: 1. A refused request is
    sent again no sooner than its Retry-After, the pace slows to what the API accepts, no attempt is used, and
    every account ends applied with few requests refused (a fixed pace had 674 of 794 refused, measured)."""
    api.rate_limit, api.burst = 40, 4
    write("a.yaml", fleet(120))
    result = run(
        "apply", "a.yaml", "--yes", "--concurrency", "16", "--max-attempts", "1", "--report", "r.json"
    )
    assert result.code == 0, result.out
    log = api.stats.log
    times = [moment for moment, _, _ in api.stats.request_times]
    accounts = [account for _, _, account in api.stats.request_times]
    assert len(times) == len(log)
    refused = [i for i, entry in enumerate(log) if entry["status"] == 429]
    assert refused, "the storm must have happened"
    for index in refused:
        later = [times[j] for j in range(index + 1, len(log)) if accounts[j] == accounts[index]]
        assert later and later[0] - times[index] >= 0.99, "sent again inside its Retry-After"
    # It slowed down rather than hammering: most refusals come in its first second, while the pace learns the
    # limit. A fixed pace had 85% of its requests refused (674 of 794); this one 15-20% measured on a quiet
    # machine (21-30 of 141-150), 34% (61 of 181) on a CI machine busy with other work, where a bucket of 4
    # refuses the bursts that a stalled client sends together. Half of the requests is the bound.
    assert len(refused) / len(log) < 0.5, f"{len(refused)} of {len(log)} requests refused"
    assert set(api.stats.patched) == {f"acc_{i:04d}" for i in range(120)}
    report = json.loads((workdir / "r.json").read_text())
    assert report["summary"]["succeeded"] == 120 and report["summary"]["retries"] == 0
    assert report["pace"]["throttled"] == len(refused)
    assert "The API throttled" in result.out
