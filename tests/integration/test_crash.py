"""kill -9 mid-apply, for every backend: the state loads, nothing recorded is lost, a re-run converges."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from reconciler.state import open_backend
from tests.helpers import PG_URL, SENTINEL_PASSWORD, fleet, start_apply, wait_until
from tests.soak import scale

CONCURRENCY = 4


def _start_apply(workdir, server, state_url: str, *extra: str, **popen) -> subprocess.Popen:
    """apply at CONCURRENCY on `state_url`, as a real process."""
    return start_apply(workdir, server, "--concurrency", str(CONCURRENCY), *extra, state=state_url, **popen)


def test_kill_9_mid_apply_then_converge(run, write, api, server, workdir, state_url) -> None:
    from reconciler.sandbox import Fault

    api.latency_ms = 15
    api.faults = [Fault.parse("errors/invalid_parameters@acc_0003;times=1")]  # a failure in the journal too
    write("a.yaml", fleet(400))
    process = _start_apply(workdir, server, state_url)
    wait_until(lambda: len(api.stats.patched) >= 100, fail_on_timeout=False)
    process.send_signal(signal.SIGKILL)
    process.wait()
    succeeded_at_server = set(api.stats.patched)
    assert 100 <= len(succeeded_at_server) < 400, "the kill must land mid-run"

    recorded = open_backend(state_url).read()
    recorded_ok = {i for i, r in recorded.accounts.items() if r.settings is not None}
    assert recorded_ok <= succeeded_at_server
    assert (
        len(succeeded_at_server - recorded_ok) <= CONCURRENCY
    )  # at most the in-flight ones lost their record

    plan = run("plan", "a.yaml", "--format", "json", "--state", state_url).json
    assert {c["account_id"] for c in plan["changes"]} == {f"acc_{i:04d}" for i in range(400)} - recorded_ok
    failure = recorded.accounts["acc_0003"].last_failure
    assert failure is not None and failure["error_type"] == "errors/invalid_parameters"

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
        wait_until(lambda: len(api.stats.patched) >= 60, fail_on_timeout=False, interval=0.005)
        server.stop()

    stopper = threading.Thread(target=stop_after_some)
    stopper.start()
    result = run(
        "apply", "a.yaml", "--yes", "--concurrency", "4", "--max-attempts", "2", "--report", "r.json"
    )
    stopper.join()
    assert result.code == 3
    report = json.loads((workdir / "r.json").read_text())
    # The breaker (first attempts, then its probes) or the run of final failures: whichever the timing hits first.
    assert re.search(
        r"Stopped early: (the last 5 requests \(5 accounts\) all failed with network_error|"
        r"5 consecutive network failures)",
        result.out,
    ), result.out
    assert report["summary"]["skipped"] > 0
    assert set(report["failures_by_type"]) == {"network_error"}
    recorded = open_backend(str(workdir / ".reconciler/state.json")).read()
    recorded_ok = {i for i, r in recorded.accounts.items() if r.settings is not None}
    assert recorded_ok <= set(api.stats.patched)  # nothing recorded falsely
    succeeded = {r["account_id"] for r in report["results"] if r["outcome"] == "succeeded"}
    assert succeeded == recorded_ok


def _recorded_ok(state_url: str) -> set[str]:
    recorded = open_backend(state_url).read()  # must load after every kill
    return {i for i, r in recorded.accounts.items() if r.settings is not None}


KILLS = scale(10, 50)


@pytest.mark.timeout(scale(120, 1800))
def test_kill_9_at_ten_seeded_moments(run, write, api, server, workdir, state_url) -> None:
    """Ten applies of one fleet, each killed at a seeded point of the run; the state stays true throughout."""
    import random

    count = scale(300, 3000)
    api.latency_ms = 8
    write("a.yaml", fleet(count))
    every_id = {f"acc_{i:04d}" for i in range(count)}
    moments = sorted(random.Random(2026).sample(range(20, count - 20), KILLS))
    for moment in moments:
        patches_before = dict(api.stats.patches)
        process = _start_apply(workdir, server, state_url)
        wait_until(
            lambda: len(api.stats.patched) >= moment,  # noqa: B023 - called before the loop moves on
            timeout=60,
            stop_if_exited=process,
            fail_on_timeout=False,
            interval=0.002,
        )
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert len(api.stats.patched) < count, "the kill must land mid-run"

        recorded_ok = _recorded_ok(state_url)
        assert recorded_ok <= set(api.stats.patched)  # nothing recorded that the API did not accept
        sent_this_run = {i for i in api.stats.patched if api.stats.patches[i] > patches_before.get(i, 0)}
        assert len(sent_this_run - recorded_ok) <= CONCURRENCY  # at most the in-flight ones lost their record
        plan = run("plan", "a.yaml", "--format", "json", "--state", state_url).json
        assert {c["account_id"] for c in plan["changes"]} == every_id - recorded_ok

    api.latency_ms = 0
    assert run("apply", "a.yaml", "--yes", "--state", state_url).code == 0
    assert run("plan", "a.yaml", "--detailed-exitcode", "--state", state_url).code == 0
    assert set(api.stats.patched) == every_id
    # An account is sent again only when a kill took its record: at most once per kill.
    assert sum(api.stats.patches.values()) - count <= CONCURRENCY * KILLS


def test_kill_9_during_the_state_file_write(run, write, api, server, workdir) -> None:
    """A kill while the state file itself is written leaves the old file and the journal: nothing is lost."""
    import json
    import uuid

    from reconciler.secrets import fingerprinted

    state = workdir / "state.json"
    # Recorded accounts, so that writing the state (~850 KB, then fsync) takes long enough to be caught: 1,000
    # were caught at the first attempt in 13 runs of 14, on a loaded machine.
    big = scale(5_000, 30_000)
    write("a.yaml", fleet(big))
    from reconciler.config import load_config

    desired = load_config("a.yaml", {"PROXY_PASSWORD": SENTINEL_PASSWORD})
    salt = "00" * 16
    changed = {f"acc_{i:04d}" for i in range(0, big, big // 10)}  # ten accounts to apply
    document = {
        "format_version": 1,
        "lineage": str(uuid.uuid4()),
        "serial": 7,
        "salt": salt,
        "accounts": {
            i: {
                "settings": {"country": "ZZ"} if i in changed else fingerprinted(spec.settings, salt),
                "applied_at": None,
                "resync_generation": 0,
                "resynced_at": None,
                "last_failure": None,
                "provider": None,
            }
            for i, spec in desired.accounts.items()
        },
    }
    original = json.dumps(document).encode()

    caught = False
    for _attempt in range(8):  # the first attempt catches it in practice; a torn file from a miss stays put
        state.write_bytes(original)
        api.stats.patched.clear()
        process = _start_apply(workdir, server, str(state), "--max-update-percent", "100")
        if wait_until(
            lambda: next(workdir.glob(".state.json.*.tmp"), None) is not None,
            timeout=120,
            stop_if_exited=process,
            fail_on_timeout=False,
            interval=0,  # the write lasts milliseconds: look as often as possible
        ):
            process.send_signal(signal.SIGKILL)
            caught = True
        process.wait()
        if caught and process.returncode == -signal.SIGKILL:
            break
        caught = False
    assert caught, "no kill landed during the state file write in 8 attempts"
    assert list(workdir.glob(".state.json.*.tmp")), "the torn temporary file is left behind"
    # The old state file is intact, and the journal holds what the killed apply recorded.
    assert state.read_bytes() == original
    assert set(api.stats.patched) == changed
    recorded = open_backend(str(state)).read()  # the old file plus the journal's events
    assert all(recorded.accounts[i].settings != {"country": "ZZ"} for i in changed)
    plan = run("plan", "a.yaml", "--format", "json", "--state", str(state)).json
    assert plan["changes"] == []
    assert (
        run("apply", "a.yaml", "--yes", "--state", str(state)).code == 0
    )  # nothing to do, copes with leftovers
    assert not list(workdir.glob(".state.json.*.tmp"))


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (
            "200k",
            "cannot write the state: No space left on device; every result is kept in",
        ),  # the journal fits
        ("48k", "cannot record a result: No space left on device; the results recorded before it are kept"),
    ],
)
def test_disk_full_keeps_every_recorded_result(run, write, api, workdir, size, message) -> None:
    """The state's disk fills up, at the final state write or mid-run in the journal: exit 1 with one line;
    once there is room, the next apply sends only what has no record and converges."""
    mount_point = workdir / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        write("a.yaml", fleet(1000))  # ~130 KB of journal, then ~150 KB of state file
        state = str(mount_point / "state.json")
        result = run("apply", "a.yaml", "--yes", "--state", state, "--concurrency", str(CONCURRENCY))
        assert result.code == 1 and "Traceback" not in result.err
        assert message in result.err, result.err
        recorded_ok = _recorded_ok(state)  # the journal is read as part of the state
        assert recorded_ok <= set(api.stats.patched)
        assert len(set(api.stats.patched) - recorded_ok) <= CONCURRENCY
        subprocess.run(["mount", "-o", "remount,size=10m", str(mount_point)], check=True)
        assert run("apply", "a.yaml", "--yes", "--state", state).code == 0
        assert run("plan", "a.yaml", "--state", state, "--detailed-exitcode").code == 0
        assert set(api.stats.patched) == {f"acc_{i:04d}" for i in range(1000)}
        assert all(api.stats.patches[i] == 1 for i in recorded_ok)  # nothing recorded was sent again
        assert not list(mount_point.glob(".state.json.*.tmp"))
    finally:
        subprocess.run(["umount", str(mount_point)], check=False)


def _local_tcp_ports(pid: int) -> set[int]:
    """The local ports of the TCP sockets process `pid` holds (Linux: its descriptors' socket inodes, looked up
    in /proc/net/tcp and tcp6)."""
    inodes = set()
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(descriptor)
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_postgres_connection_lost_mid_apply(run, write, api, server, workdir, state_url) -> None:
    """The database drops the recording connection mid-run: exit 1 with one line, nothing recorded falsely, at
    most the in-flight results unrecorded, and the next apply converges."""
    if not state_url.startswith("postgresql://"):
        pytest.skip("PostgreSQL only")
    import psycopg

    api.latency_ms = 10
    write("a.yaml", fleet(400))
    process = _start_apply(workdir, server, state_url, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: len(api.stats.patched) >= 60, fail_on_timeout=False, interval=0.005)
    ports = _local_tcp_ports(process.pid)  # this apply's connections only: others may be using the server
    with psycopg.connect(PG_URL, autocommit=True) as connection:
        killed = connection.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity "
            "where application_name = 'reconciler apply (recording)' and client_port = any(%s)",
            (sorted(ports),),
        ).fetchall()
    _, err = process.communicate(timeout=60)
    assert killed and process.returncode == 1, err
    # libpq words a lost connection in several ways, over several lines, depending on what the writer was
    # doing when the session ended: the product's message is one line whatever libpq said.
    lines = [line for line in err.strip().splitlines() if not line.startswith("Applying to ")]
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: recording to postgresql://") and " failed: " in lines[0], err
    recorded_ok = _recorded_ok(state_url)
    assert recorded_ok <= set(api.stats.patched)
    assert len(set(api.stats.patched) - recorded_ok) <= CONCURRENCY
    assert len(api.stats.patched) < 400  # it stopped sending
    assert run("apply", "a.yaml", "--yes", "--state", state_url).code == 0
    assert run("plan", "a.yaml", "--state", state_url, "--detailed-exitcode").code == 0
    assert all(api.stats.patches[i] == 1 for i in recorded_ok)
