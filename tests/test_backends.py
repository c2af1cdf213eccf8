"""One behaviour suite for every state backend (file and PostgreSQL)."""

from __future__ import annotations

import pytest

from reconciler.errors import LockHeld
from reconciler.state import events as recording
from reconciler.state import open_backend
from tests.conftest import PG_URL
from tests.test_apply import fleet


def test_apply_plan_state_commands(run, write, api, state_url) -> None:
    write("a.yaml", fleet(5))
    assert run("apply", "a.yaml", "--yes", "--state", state_url).code == 0
    assert run("plan", "a.yaml", "--state", state_url, "--detailed-exitcode").code == 0
    assert len(run("state", "list", "--state", state_url).out.splitlines()) == 5
    assert run("state", "show", "acc_0001", "--state", state_url).json["settings"] == {
        "country": "US",
        "ip": "203.0.113.2",
    }
    assert run("state", "forget", "acc_0001", "--state", state_url).code == 0
    plan = run("plan", "a.yaml", "--state", state_url, "--format", "json").json
    assert [(c["account_id"], c["action"]) for c in plan["changes"]] == [("acc_0001", "create")]


def test_serial_lineage_and_recording(state_url) -> None:
    backend = open_backend(state_url)
    assert not backend.read().exists
    with backend.lock():
        recorded, journal = backend.open_journal(salt="s")
        lineage = recorded.lineage
        journal.append(recording.applied("a", {"country": "US"}, "LINKEDIN"))
        journal.append(recording.failed("b", {"operation": "patch", "error_type": "errors/proxy_error"}))
        journal.append(recording.resynced("a", 3))
        journal.close()
    snapshot = backend.read()
    assert (snapshot.lineage, snapshot.serial, snapshot.salt) == (lineage, 1, "s")
    assert (
        snapshot.accounts["a"].settings == {"country": "US"} and snapshot.accounts["a"].resync_generation == 3
    )
    assert snapshot.accounts["b"].settings is None and snapshot.accounts["b"].last_failure["error_type"]
    with backend.lock():
        recorded, journal = backend.open_journal()
        journal.append(recording.forgotten("b"))
        journal.close()
    assert set(backend.read().accounts) == {"a"} and backend.read().serial == 2


def test_lock_is_exclusive_and_names_the_holder(state_url) -> None:
    with (
        open_backend(state_url).lock(command="apply"),
        pytest.raises(LockHeld) as caught,
        open_backend(state_url).lock(timeout=0.2),
    ):
        pass
    assert "apply" in str(caught.value) and "pid" in str(caught.value)
    with open_backend(state_url).lock():
        pass  # released


def test_stale_plan_refused(run, write, api, state_url) -> None:
    write("a.yaml", fleet(2))
    run("plan", "a.yaml", "--state", state_url, "--out", "p.plan")
    assert run("apply", "a.yaml", "--yes", "--state", state_url, "--target", "acc_0000").code == 0
    result = run("apply", "--plan", "p.plan", "--yes", "--state", state_url)
    assert result.code == 1 and "saved plan is stale" in result.err


def test_postgres_workspaces_are_independent(run, write, api, state_url) -> None:
    if not state_url.startswith("postgresql://"):
        pytest.skip("PostgreSQL only")
    other = state_url.replace("workspace=test", "workspace=other")
    write("a.yaml", fleet(2))
    assert run("apply", "a.yaml", "--yes", "--state", state_url).code == 0
    assert run("plan", "a.yaml", "--state", other, "--format", "json").json["summary"]["create"] == 2


def test_postgres_connection_failure_is_one_line_without_password(run, write) -> None:
    write("a.yaml", fleet(1))
    result = run("plan", "a.yaml", "--state", "postgresql://postgres:hunter2-SECRET@127.0.0.1:1/test")
    assert result.code == 1
    assert result.err.startswith(
        "Error: cannot connect to PostgreSQL at postgresql://postgres:***@127.0.0.1:1/test:"
    )
    assert "hunter2-SECRET" not in result.err and len(result.err.strip().splitlines()) == 1


def test_state_migrate_round_trip(run, write, api, state_url, workdir) -> None:
    write(
        "a.yaml",
        "version: 1\naccounts:\n  a: {proxy: {host: h, port: 1, password: '${PROXY_PASSWORD}'}}\n"
        "  b: {country: US}\n",
    )
    source = str(workdir / "source.json")
    assert run("apply", "a.yaml", "--yes", "--state", source).code == 0
    assert run("state", "migrate", "--from", source, "--to", state_url).code == 0
    migrated, original = open_backend(state_url).read(), open_backend(source).read()
    assert migrated.lineage == original.lineage and migrated.salt == original.salt
    assert migrated.accounts == original.accounts
    assert run("plan", "a.yaml", "--state", state_url, "--detailed-exitcode").code == 0
    refused = run("state", "migrate", "--from", source, "--to", state_url)
    assert refused.code == 1 and "already holds 2 account(s); --force overwrites" in refused.err
    back = str(workdir / "back.json")
    assert run("state", "migrate", "--from", state_url, "--to", back).code == 0
    assert open_backend(back).read().accounts == original.accounts
    assert run("state", "migrate", "--from", source, "--to", state_url, "--force").code == 0


def test_two_shards_apply_at_once_and_a_whole_apply_is_refused(
    run, write, api, server, state_url, workdir
) -> None:
    import os
    import subprocess
    import sys
    import time

    from tests.conftest import SENTINEL_KEY

    if not state_url.startswith("postgresql://"):
        write("a.yaml", fleet(2))
        result = run("apply", "a.yaml", "--yes", "--state", state_url, "--shard", "1/2")
        assert result.code == 1 and "--shard needs the PostgreSQL state backend" in result.err
        return
    api.latency_ms = 20
    write("a.yaml", fleet(120))
    env = {**os.environ, "POSTPRESS_API_KEY": SENTINEL_KEY, "POSTPRESS_API_URL": server.url}
    shards = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "apply",
                "a.yaml",
                "--yes",
                "--state",
                state_url,
                "--shard",
                f"{k}/2",
                "--concurrency",
                "2",
            ],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for k in (1, 2)
    ]
    deadline = time.monotonic() + 20
    while not api.stats.patched and time.monotonic() < deadline:
        time.sleep(0.01)
    whole = run("apply", "a.yaml", "--yes", "--state", state_url)
    assert whole.code == 1 and "is locked by apply shard" in whole.err
    assert [process.wait(timeout=60) for process in shards] == [0, 0]
    assert set(api.stats.patched) == {f"acc_{i:04d}" for i in range(120)}
    assert max(api.stats.patches.values()) == 1
    assert run("plan", "a.yaml", "--state", state_url, "--detailed-exitcode").code == 0
    assert run("apply", "a.yaml", "--yes", "--state", state_url, "--shard", "3/2").code == 1


def test_no_secret_reaches_any_backend(run, write, api, state_url, workdir) -> None:
    import psycopg

    from tests.conftest import SENTINEL_KEY, SENTINEL_PASSWORD

    write(
        "a.yaml",
        "version: 1\naccounts:\n  a: {proxy: {host: h, port: 1, password: '${PROXY_PASSWORD}'}}\n"
        "  b: {proxy: {host: x.invalid, port: 1, password: '${PROXY_PASSWORD}'}}\n",
    )
    outcome = run("apply", "a.yaml", "--yes", "--state", state_url, "--max-attempts", "1")
    assert outcome.code == 3 and api.stats.patched["a"]["proxy"]["password"] == SENTINEL_PASSWORD
    for secret in (SENTINEL_PASSWORD, SENTINEL_KEY):
        assert secret not in outcome.out + outcome.err
    if state_url.startswith("postgresql://"):
        schema = state_url.split("schema=")[1].split("&")[0]
        with psycopg.connect(PG_URL) as connection:
            stored = " ".join(
                str(row)
                for table in ("accounts", "workspaces")
                for row in connection.execute(f'select * from "{schema}".{table}').fetchall()
            )
        assert "sha256:" in stored
    else:
        stored = "".join(p.read_text() for p in (workdir / "state").iterdir() if p.is_file())
    for secret in (SENTINEL_PASSWORD, SENTINEL_KEY):
        assert secret not in stored
