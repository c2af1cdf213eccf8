"""apply against a sandbox that throttles, not told its limit: every account applied, throttled requests sent again
without using attempts, the ceilings never passed, and the report saying what the API did. (The speed against the
ideal is a benchmark's: benchmarks/bench_pace.py.)"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import jsonschema
import pytest

from reconciler.sandbox import Fault, SandboxAccount
from tests.helpers import fleet, fresh_postgres_state, run_engine, start_apply, wait_until

SCHEMA = json.loads((Path(__file__).parents[2] / "schemas" / "report.schema.json").read_text())


def apply_report(run, *options: str):
    """`apply a.yaml --yes --max-attempts 1 OPTIONS` with a JSON report: a throttled request that used an attempt
    would fail its account."""
    result = run("apply", "a.yaml", "--yes", "--max-attempts", "1", "--report", "r.json", *options)
    report = json.loads(Path("r.json").read_text(encoding="utf-8"))
    jsonschema.validate(report, SCHEMA)
    return result, report


@pytest.mark.parametrize(
    ("answer", "pool"), [("429", None), ("429-retry-after", None), ("503", None), ("503", 4)]
)
def test_every_account_succeeds_against_an_api_that_throttles(run, write, api, answer, pool) -> None:
    api.latency_ms = 5
    if pool:
        api.max_in_flight = pool
    else:
        api.rate_limit, api.burst, api.throttle_answer = 150, 15, answer
    write("a.yaml", fleet(150))
    result, report = apply_report(run, "--concurrency", "32")
    assert result.code == 0, result.out
    assert len(api.stats.patched) == 150
    assert report["summary"]["retries"] == 0 and report["summary"]["succeeded"] == 150
    assert api.stats.throttled > 0, "the API must have pushed back"
    assert report["pace"]["throttled"] == api.stats.throttled
    assert report["pace"]["requests"] == api.stats.requests
    assert api.stats.throttled < 150  # it slowed down rather than hammering (the share is a benchmark's)
    assert f"The API throttled {api.stats.throttled} of {api.stats.requests} requests" in result.out


def test_an_api_that_never_pushes_back_sees_no_pace(run, write, api) -> None:
    write("a.yaml", fleet(100))
    result, report = apply_report(run, "--concurrency", "16")
    assert result.code == 0
    pace = report["pace"]
    assert (pace["throttled"], pace["held_requests_per_second"], pace["requests_per_second"]) == (
        0,
        None,
        None,
    )
    assert pace["window"] == 16 and pace["waited_seconds"] == 0
    assert "throttled" not in result.out


def test_the_rate_limit_is_a_ceiling(run, write, api) -> None:
    write("a.yaml", fleet(60))
    result, report = apply_report(run, "--rate-limit", "40", "--concurrency", "16")
    assert result.code == 0
    arrivals = sorted(moment for moment, _, _ in api.stats.request_times)
    densest = max(sum(1 for t in arrivals if start <= t < start + 0.5) for start in arrivals)
    assert densest <= 40 * 0.5 + 2  # evenly spaced (a catch-up of a few milliseconds at most)
    assert report["pace"]["requests_per_second"] == 40.0


def test_fixed_pace_holds_the_ceilings_and_adaptive_refuses_fewer(run, write, api) -> None:
    """A pool of 3 workers: the fixed pace keeps 8 requests in flight and meets the pool over and over; the
    adaptive pace slows down to what the pool takes. Both apply every account without using attempts."""
    api.latency_ms, api.max_in_flight = 10, 3
    write("a.yaml", fleet(120))
    fixed, fixed_report = apply_report(run, "--pace", "fixed", "--concurrency", "8")
    assert fixed.code == 0 and fixed_report["pace"]["adaptive"] is False
    fixed_refused = api.stats.throttled
    api.reset_stats()
    write("a.yaml", fleet(120, prefix="other_"))
    adaptive, adaptive_report = apply_report(run, "--concurrency", "8", "--force")
    assert adaptive.code == 0 and adaptive_report["pace"]["adaptive"] is True
    assert api.stats.throttled * 2 < fixed_refused, (api.stats.throttled, fixed_refused)


def test_resync_polls_share_the_pace(run, write, api) -> None:
    for i in range(30):
        api.accounts[f"tg_{i:02d}"] = SandboxAccount("TELEGRAM", sync_polls=2)
    api.rate_limit, api.burst, api.throttle_answer = 60, 3, "429"
    write(
        "a.yaml",
        "version: 1\naccounts:\n"
        + "".join(f"  tg_{i:02d}: {{provider: TELEGRAM, resync: {{generation: 1}}}}\n" for i in range(30)),
    )
    result, report = apply_report(
        run, "--concurrency", "16", "--sync-poll-interval", "0.01", "--max-resync-percent", "100"
    )  # every account of a new fleet asks for a resync, on purpose
    assert result.code == 0, result.out
    assert report["summary"]["resynced"] == 30 and report["summary"]["retries"] == 0
    throttled_routes = {entry["path"].rsplit("/", 1)[-1] for entry in api.stats.log if entry["status"] == 429}
    assert "sync" in throttled_routes  # polls met the limit too, and were sent again
    assert all(api.stats.after_terminal[f"tg_{i:02d}"] == 0 for i in range(30))


def test_an_api_that_throttles_everything_stops_after_about_two_times_the_concurrency(
    run, write, api, server
) -> None:
    api.faults = [Fault.parse("errors/too_many_requests")]
    write("a.yaml", fleet(500))
    result = run("apply", "a.yaml", "--yes", "--concurrency", "16", "--throttle-timeout", "1")
    assert result.code == 3
    assert api.stats.requests <= 2 * 16 + 8, (
        api.stats.requests
    )  # waiting out --throttle-timeout costs probes only
    assert f"the API at {server.url} refuses every request as too many (no account is at fault)" in result.out
    assert "0 PATCHed" in result.out and "0 failed" in result.out  # skipped: not the accounts' failure


def test_four_shards_at_once_share_one_limited_api(workdir, write, server) -> None:
    server.sandbox.rate_limit, server.sandbox.burst, server.sandbox.throttle_answer = 200, 20, "429"
    server.sandbox.latency_ms = 5
    write("a.yaml", fleet(400))
    with fresh_postgres_state("shards") as state_url:
        shards = [
            start_apply(
                workdir,
                server,
                "--shard",
                f"{k}/4",
                "--concurrency",
                "32",
                state=state_url,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k in range(1, 5)
        ]
        errors = [shard.communicate(timeout=120)[1] for shard in shards]
    assert [shard.returncode for shard in shards] == [0, 0, 0, 0], errors
    assert len(server.sandbox.stats.patched) == 400
    assert server.sandbox.stats.throttled > 0
    assert (
        server.sandbox.stats.requests - 400 == server.sandbox.stats.throttled
    )  # nothing failed: each request was accepted or refused as too many


def test_a_spell_of_refusing_everything_is_waited_out(workdir, write, server) -> None:
    """The first 40 requests are all refused (a quota spent by the job before): the breaker opens, and its probes,
    refused too, are not counted as failures within --throttle-timeout; the run goes on once the API takes them."""
    server.sandbox.faults = [Fault.parse("errors/too_many_requests;times=40")]
    outcome, _ = run_engine(workdir, server, write("a.yaml", fleet(100)), concurrency=16, max_attempts=1)
    assert outcome.stop_reason is None
    assert sum(r.outcome == "succeeded" for r in outcome.results) == 100
    assert sum(entry["status"] == 429 for entry in server.sandbox.stats.log) == 40


def test_a_cancel_does_not_wait_for_the_pace(workdir, write, server) -> None:
    """Requests waiting for a slow pace learn at once that the run is cancelled: exit 130 long before --grace."""
    write("a.yaml", fleet(200))
    apply = start_apply(workdir, server, "--rate-limit", "5", "--grace", "30", "--report", "r.json")
    wait_until(lambda: server.sandbox.stats.requests >= 2, stop_if_exited=apply)
    started = time.monotonic()
    apply.send_signal(signal.SIGINT)
    assert apply.wait(timeout=60) == 130
    assert time.monotonic() - started < 10  # not the 30 s of --grace
    report = json.loads((workdir / "r.json").read_text())
    assert report["summary"]["skipped"] >= 190 and report["summary"]["failed"] == 0


@pytest.mark.parametrize("error_type", ["errors/no_client_session", "errors/request_timeout"])
def test_a_503_or_504_about_one_account_is_its_failure_not_throttling(
    workdir, write, server, error_type
) -> None:
    """The contract's throttling statuses (429, 503, 504) do not make every 503 or 504 type throttling: one
    account's client session or provider is retried with attempts, fails as its own, and slows no one."""
    server.sandbox.faults = [Fault.parse(f"{error_type}@acc_0003")]
    outcome, backend = run_engine(workdir, server, write("a.yaml", fleet(20)), max_attempts=3, concurrency=4)
    failed = [r for r in outcome.results if r.outcome == "failed"]
    assert [(r.account_id, r.error_type, r.attempts) for r in failed] == [("acc_0003", error_type, 3)]
    assert server.sandbox.stats.patches["acc_0003"] == 3  # no re-send outside the attempts
    assert outcome.pace.throttled == 0 and outcome.stop_reason is None
    assert backend.read().accounts["acc_0003"].last_failure["error_type"] == error_type
