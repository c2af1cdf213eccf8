"""apply against the sandbox over real HTTP: catalogue, retries, stop-early, recording, locking, safety."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from reconciler.api.catalogue import CATALOGUE
from reconciler.sandbox import Fault, SandboxAccount
from reconciler.state.file.backend import FileBackend
from tests.helpers import SENTINEL_KEY, SENTINEL_PASSWORD, assert_no_secrets, fleet, run_engine

SCHEMAS = Path(__file__).parents[2] / "schemas"


@pytest.mark.parametrize("error_type", sorted(t for t, row in CATALOGUE.items() if row.status is not None))
def test_each_catalogue_row(workdir, write, server, error_type) -> None:
    row = CATALOGUE[error_type]
    server.sandbox.faults = [Fault.parse(f"{error_type}@acc_0000;unlisted")]
    engine, backend = run_engine(
        workdir, server, write("a.yaml", fleet(2)), max_attempts=3, concurrency=1, throttle_timeout=0.3
    )
    expected_attempts = 3 if row.retryable else 1
    [result] = [r for r in engine.results if r.account_id == "acc_0000"]
    assert (result.http_status, result.attempts) == (row.status, expected_attempts)
    if row.stops_run:  # the key or postpress itself: the run's failure, never the account's
        assert (result.outcome, result.error_type, result.held_back) == ("skipped", None, True)
        assert result.message == f"skipped: the run stopped early ({engine.stop_reason})"
    else:
        assert (result.outcome, result.error_type) == ("failed", error_type)
        assert (result.category, result.retryable) == (row.category, row.retryable)
    sent = server.sandbox.stats.patches["acc_0000"]
    assert row.throttling == (row.status == 429 or error_type == "errors/service_unavailable")
    if row.throttling:  # sent again for --throttle-timeout without using attempts, then 3 attempts
        assert sent > expected_attempts + 2 and engine.stop_reason is None
    else:
        assert sent == expected_attempts
    other = [r for r in engine.results if r.account_id == "acc_0001"]
    if row.stops_run:
        assert engine.stop_reason == (
            f"{error_type} (HTTP {row.status}) is not about one account: {row.hint[0].lower()}{row.hint[1:-1]}"
        )
    if row.stops_run and not row.retryable:
        assert other[0].outcome == "skipped" and server.sandbox.stats.patches["acc_0001"] == 0
    else:
        assert other[0].outcome == "succeeded"
    recorded = backend.read().accounts.get("acc_0000")
    if row.stops_run:
        assert recorded is None or (recorded.settings is None and recorded.last_failure is None)
    else:
        assert recorded is not None and recorded.settings is None
        assert recorded.last_failure["error_type"] == error_type


def test_non_envelope_error_keeps_status_as_unknown(workdir, write, server) -> None:
    server.sandbox.faults = [Fault.parse("garbage@acc_0000")]
    engine, _ = run_engine(workdir, server, write("a.yaml", fleet(1)), max_attempts=2)
    result = engine.results[0]
    assert (result.error_type, result.http_status, result.category, result.retryable) == (
        "unknown",
        502,
        "proxy_error",
        True,
    )


def test_retry_after_is_honoured(workdir, write, server) -> None:
    server.sandbox.faults = [Fault.parse("errors/too_many_requests;retry_after=1;times=1")]
    engine, _ = run_engine(workdir, server, write("a.yaml", fleet(1)), max_attempts=4)
    times = [moment for moment, route, _ in server.sandbox.stats.request_times if route == "patch"]
    assert engine.results[0].outcome == "succeeded"
    assert len(times) == 2 and times[1] - times[0] >= 0.99


def test_client_timeout_is_retried_then_reported(workdir, write, server) -> None:
    server.sandbox.faults = [Fault.parse("hang@acc_0000")]
    server.sandbox.hang_seconds = 2
    engine, _ = run_engine(workdir, server, write("a.yaml", fleet(1)), max_attempts=2, timeout=0.3)
    result = engine.results[0]
    assert (result.error_type, result.category, result.attempts, result.http_status) == (
        "client_timeout",
        "timeout",
        2,
        None,
    )


def test_network_errors_stop_early(workdir, write, server) -> None:
    """Network failures of five accounts in a row, then three failed probes, stop the run: nothing was answered,
    so the accounts sent to are skipped for the run's reason like those not sent (retries waiting included), and
    none is recorded as failed."""
    write("a.yaml", fleet(30))
    server.stop()  # nothing listens any more
    engine, backend = run_engine(workdir, server, "a.yaml", max_attempts=2, concurrency=1)
    assert [r.outcome for r in engine.results] == ["skipped"] * 30
    sent = [r for r in engine.results if r.attempts]
    assert 5 <= len(sent) <= 5 + 3 + 1 and all(r.held_back for r in sent)  # probes may be retries
    assert "check that the API is up and that --api-url is right" in (engine.stop_reason or "")
    assert all(record.settings is None for record in backend.read().accounts.values())
    assert all(record.last_failure is None for record in backend.read().accounts.values())


def test_concurrency_bound_measured_at_the_server(workdir, write, server) -> None:
    server.sandbox.latency_ms = 40
    engine, _ = run_engine(workdir, server, write("a.yaml", fleet(48)), concurrency=4)
    assert all(r.outcome == "succeeded" for r in engine.results)
    assert server.sandbox.stats.max_in_flight == 4


def test_cli_apply_records_reports_and_converges(run, write, api) -> None:
    write(
        "a.yaml",
        """
        version: 1
        accounts:
          "we/ird?id#%..":
            proxy: {host: h.example, port: 8080, password: "${PROXY_PASSWORD}"}
          broken:
            proxy: {host: down.invalid, port: 1}
          fine: {country: US}
    """,
    )
    result = run("apply", "a.yaml", "--yes", "--report", "report.json", "--max-attempts", "1")
    assert result.code == 3
    report = json.loads(Path("report.json").read_text())
    jsonschema.validate(report, json.loads((SCHEMAS / "report.schema.json").read_text()))
    assert report["summary"] == {
        "succeeded": 2,
        "failed": 1,
        "skipped": 0,
        "accounts": 3,
        "patched": 2,
        "resynced": 0,
        "forgotten": 0,
        "polls": 0,
        "retries": 0,
    }
    assert report["failures_by_type"] == {"errors/proxy_error": 1}
    assert "errors/proxy_error (HTTP 502, 1 operation(s))" in result.out
    assert "what to do: The proxy is not working" in result.out
    assert api.stats.patched["we/ird?id#%.."]["proxy"]["password"] == SENTINEL_PASSWORD
    plan = run("plan", "a.yaml", "--format", "json").json
    assert [(c["account_id"], c["action"]) for c in plan["changes"]] == [("broken", "create")]


def test_no_api_key_exits_1_before_any_request(run, write, api, monkeypatch) -> None:
    monkeypatch.delenv("POSTPRESS_API_KEY")
    write("a.yaml", fleet(1))
    result = run("apply", "a.yaml", "--yes")
    assert result.code == 1 and "POSTPRESS_API_KEY" in result.err
    assert api.stats.requests == 0


def test_without_yes_and_no_terminal_refuses(run, write, api) -> None:
    write("a.yaml", fleet(1))
    result = run("apply", "a.yaml")
    assert result.code == 1 and "without --yes" in result.err and api.stats.requests == 0


def test_second_apply_refused_while_locked(run, write, api) -> None:
    write("a.yaml", fleet(1))
    with FileBackend(Path(".reconciler/state.json")).lock():
        result = run("apply", "a.yaml", "--yes")
    assert result.code == 1 and "is locked by apply (pid" in result.err
    assert api.stats.requests == 0


def test_stale_saved_plan_refused(run, write, api, monkeypatch) -> None:
    write("a.yaml", fleet(2))
    assert run("plan", "a.yaml", "--out", "p.plan").code == 0
    assert run("apply", "a.yaml", "--yes", "--target", "acc_0000").code == 0  # moves the serial
    result = run("apply", "--plan", "p.plan", "--yes")
    assert result.code == 1 and "saved plan is stale" in result.err
    assert run("plan", "a.yaml", "--out", "q.plan").code == 0
    monkeypatch.setenv("PROXY_PASSWORD", "changed")
    write("a.yaml", fleet(2))  # same bytes
    assert run("apply", "--plan", "q.plan", "--yes").code == 0


def test_plan_file_excludes_config_and_targets(run, write, api) -> None:
    write("a.yaml", fleet(1))
    run("plan", "a.yaml", "--out", "p.plan")
    for extra in (["a.yaml"], ["--target", "acc_0000"]):
        result = run("apply", "--plan", "p.plan", "--yes", *extra)
        assert result.code == 1 and "--plan applies exactly the saved plan" in result.err
    assert api.stats.requests == 0


def test_saved_plan_refused_when_secret_changed(run, write, api, monkeypatch) -> None:
    write(
        "a.yaml", "version: 1\naccounts:\n  a: {proxy: {host: h, port: 1, password: '${PROXY_PASSWORD}'}}\n"
    )
    run("plan", "a.yaml", "--out", "p.plan")
    monkeypatch.setenv("PROXY_PASSWORD", "changed")
    result = run("apply", "--plan", "p.plan", "--yes")
    assert result.code == 1 and "secrets resolved now differ" in result.err
    assert api.stats.requests == 0


def test_safety_bound(run, write, api) -> None:
    write("a.yaml", fleet(10))
    assert run("import", "a.yaml").code == 0
    write("a.yaml", fleet(10).replace("country: US", "country: DE", 4))
    result = run("apply", "a.yaml", "--yes")
    assert (
        result.code == 1
        and "40.00% is over 30.00% (4/10); --force applies it anyway, or --max-update-percent sets the bound"
        in result.err
    )
    assert run("apply", "a.yaml", "--yes", "--max-update-percent", "50").code == 0
    write("a.yaml", fleet(6))
    assert "too many forgets" in run("apply", "a.yaml", "--yes", "--max-update-percent", "100").err
    assert run("apply", "a.yaml", "--yes", "--force").code == 0
    assert len(run("state", "list").out.splitlines()) == 6


RESYNC_CONFIG = """
version: 1
accounts:
  li:
    provider: LINKEDIN
    country: US
    resync: {generation: 1, chunk_size: 10, partial: true, linkedin_product: recruiter,
             after: 2026-01-01T00:00:00Z, before: 1767312000000}
  tg:
    provider: TELEGRAM
    resync: {generation: 1}
"""


def test_resync_params_polls_and_one_sync_per_account(run, write, api) -> None:
    api.accounts.update(
        li=SandboxAccount("LINKEDIN", sync_polls=3), tg=SandboxAccount("TELEGRAM", sync_polls=2)
    )
    write("a.yaml", RESYNC_CONFIG)
    result = run("apply", "a.yaml", "--yes", "--sync-poll-interval", "0.01", "--format", "json")
    assert result.code == 0, result.err
    report = result.json
    assert {(r["account_id"], r["operation"], r["message"]) for r in report["results"]} >= {
        ("li", "resync", "CHUNK_DONE"),
        ("tg", "resync", "SYNC_DONE"),
    }
    assert api.stats.sync_params["li"] == {
        "chunk_size": "10",
        "partial": "true",
        "linkedin_product": "recruiter",
        "after": "1767225600000",
        "before": "1767312000000",
    }
    assert api.stats.sync_params["tg"] == {}
    assert api.stats.sync_calls["li"] == 5 and api.stats.sync_calls["tg"] == 4
    assert sum(api.stats.after_terminal.values()) == 0
    assert sum(api.stats.syncs_started.values()) == 2
    assert run("plan", "a.yaml", "--detailed-exitcode").code == 0
    write(
        "a.yaml",
        RESYNC_CONFIG.replace(
            "  tg:\n    provider: TELEGRAM\n    resync: {generation: 1}",
            "  tg:\n    provider: TELEGRAM\n    resync: {generation: 2}",
        ),
    )
    plan = run("plan", "a.yaml", "--format", "json").json
    assert plan["changes"] == [
        {"account_id": "tg", "action": "none", "resync": True, "fields": [], "before": None, "after": None}
    ]
    assert run("apply", "a.yaml", "--yes", "--sync-poll-interval", "0.01").code == 0
    assert api.stats.syncs_started["tg"] == 2 and api.stats.patches["li"] == 1


def test_resync_skipped_after_failed_patch_and_errors_replanned(run, write, api) -> None:
    api.accounts.update(
        li=SandboxAccount("LINKEDIN"), tg=SandboxAccount("TELEGRAM", sync_result="SYNC_ERROR")
    )
    api.faults = [Fault.parse("errors/account_restricted@li;unlisted")]
    write("a.yaml", RESYNC_CONFIG)
    result = run("apply", "a.yaml", "--yes", "--sync-poll-interval", "0.01", "--format", "json")
    assert result.code == 3
    outcomes = {
        (r["account_id"], r["operation"]): (r["outcome"], r["error_type"]) for r in result.json["results"]
    }
    assert outcomes == {
        ("li", "patch"): ("failed", "errors/account_restricted"),
        ("li", "resync"): ("skipped", None),
        ("tg", "resync"): ("failed", "sync_error"),
    }
    assert api.stats.sync_calls["li"] == 0
    plan = run("plan", "a.yaml", "--format", "json").json
    assert plan["summary"]["resync"] == 2


def test_resync_timeout(run, write, api) -> None:
    api.accounts["tg"] = SandboxAccount("TELEGRAM", sync_polls=1000)
    write(
        "a.yaml",
        RESYNC_CONFIG.split("  li:")[0] + "  tg:\n    provider: TELEGRAM\n    resync: {generation: 1}\n",
    )
    result = run(
        "apply",
        "a.yaml",
        "--yes",
        "--sync-poll-interval",
        "0.05",
        "--sync-timeout",
        "0.3",
        "--format",
        "json",
    )
    assert result.code == 3
    assert result.json["failures_by_type"] == {"sync_timeout": 1}
    text = run("apply", "a.yaml", "--yes", "--sync-poll-interval", "0.05", "--sync-timeout", "0.2")
    assert (
        "Apply: 1 account(s): 0 PATCHed, 0 resynced, 0 forgotten; 1 operation(s): 0 succeeded, 1 failed, 0 skipped."
        in text.out
    )
    assert "sync_timeout (no HTTP answer, 1 operation(s))" in text.out
    assert sum(api.stats.after_terminal.values()) == 0


def test_sentinels_absent_from_apply_outputs(run, write, api, workdir, monkeypatch) -> None:
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(workdir / "summary.md"))
    write(
        "a.yaml",
        "version: 1\naccounts:\n  a: {proxy: {host: h, port: 1, password: '${PROXY_PASSWORD}'}}\n"
        "  b: {proxy: {host: x.invalid, port: 1, password: '${PROXY_PASSWORD}'}}\n",
    )
    outcomes = [
        run("apply", "a.yaml", "--yes", "--report", "r.json", "--max-attempts", "1"),
        run("apply", "a.yaml", "--yes", "--format", "json", "--max-attempts", "1"),
    ]
    monkeypatch.setenv("POSTPRESS_API_KEY", "wrong-" + SENTINEL_KEY)
    outcomes.append(run("apply", "a.yaml", "--yes", "--format", "markdown", "--max-attempts", "1"))
    assert "errors/invalid_credentials" in outcomes[-1].out
    assert_no_secrets(*(outcome.out + outcome.err for outcome in outcomes))
    files = [path for path in workdir.rglob("*") if path.is_file()]
    assert_no_secrets(*files, secrets=[SENTINEL_KEY])
    assert_no_secrets(*(path for path in files if path.name != "a.yaml"), secrets=[SENTINEL_PASSWORD])
    assert "<!-- reconciler-report -->" in (workdir / "summary.md").read_text()


def test_sandbox_flag_uses_its_own_state(run, write, monkeypatch) -> None:
    write("a.yaml", fleet(3))
    assert run("plan", "--sandbox", "a.yaml", "--detailed-exitcode").code == 2
    result = run("apply", "--sandbox", "--yes", "a.yaml")
    assert result.code == 0, result.err
    assert result.err.startswith("Applying to the sandbox at http://127.0.0.1:")
    assert Path(".reconciler/sandbox-state.json").exists()
    assert not Path(".reconciler/state.json").exists()
    assert run("plan", "--sandbox", "a.yaml", "--detailed-exitcode").code == 0
    assert "note:" not in run("plan", "--sandbox", "a.yaml").err
    against_default = run("plan", "a.yaml", "--detailed-exitcode")
    assert against_default.code == 2
    assert against_default.err.strip() == (
        "note: nothing is recorded in .reconciler/state.json yet; what apply --sandbox recorded is in "
        ".reconciler/sandbox-state.json (plan --sandbox reads it)"
    )
    assert "note:" not in run("plan", "a.yaml", "--state", "other.json").err
    monkeypatch.setenv(
        "RECONCILER_STATE", "elsewhere.json"
    )  # the real API's state: the sandbox never reads it
    assert run("plan", "--sandbox", "a.yaml", "--detailed-exitcode").code == 0
    assert run("plan", "a.yaml", "--detailed-exitcode").err == ""


def test_a_refusal_with_sandbox_is_one_line(run, write, monkeypatch) -> None:
    """The sandbox says where it listens only when requests are about to go."""
    monkeypatch.delenv("PROXY_PASSWORD", raising=False)
    write(
        "a.yaml", 'version: 1\naccounts:\n  a: {proxy: {host: h, port: 1, password: "${PROXY_PASSWORD}"}}\n'
    )
    result = run("apply", "--sandbox", "--yes", "a.yaml")
    assert result.code == 1
    assert result.err == (
        "Error: environment variable PROXY_PASSWORD is not set or empty; apply needs it for the values it sends\n"
    )


def test_report_written_when_nothing_to_do(run, write, api, workdir) -> None:
    write("a.yaml", fleet(2))
    assert run("apply", "a.yaml", "--yes").code == 0
    result = run("apply", "a.yaml", "--yes", "--report", "r.json", "--format", "json")
    assert result.code == 0
    empty = {
        "format_version": 1,
        "summary": {
            "succeeded": 0,
            "failed": 0,
            "skipped": 0,
            "accounts": 0,
            "patched": 0,
            "resynced": 0,
            "forgotten": 0,
            "polls": 0,
            "retries": 0,
        },
        "failures_by_type": {},
        "results": [],
        "forgotten": [],
        "pace": {
            "adaptive": True,
            "requests": 0,
            "throttled": 0,
            "slowdowns": 0,
            "held_requests_per_second": None,
            "requests_per_second": None,
            "window": 0,
            "waited_seconds": 0.0,
            "timeline": [],
        },
    }
    assert json.loads((workdir / "r.json").read_text()) == empty and result.json == empty


def test_dropped_connection_is_retried_as_network_error(workdir, write, server) -> None:
    server.sandbox.faults = [Fault.parse("drop@acc_0000")]
    engine, _ = run_engine(workdir, server, write("a.yaml", fleet(2)), max_attempts=2)
    failed = [r for r in engine.results if r.outcome == "failed"]
    assert [(r.account_id, r.error_type, r.attempts) for r in failed] == [("acc_0000", "network_error", 2)]


def test_many_syncs_poll_without_holding_slots(workdir, write, server) -> None:
    server.sandbox.latency_ms = 5
    server.sandbox.sync_polls = 5
    lines = ["version: 1", "accounts:"] + [
        f"  t{i:03d}: {{provider: TELEGRAM, resync: {{generation: 1}}}}" for i in range(120)
    ]
    engine, _ = run_engine(
        workdir, server, write("a.yaml", "\n".join(lines) + "\n"), concurrency=4, sync_poll_interval=0.2
    )
    assert all(r.outcome == "succeeded" for r in engine.results) and len(engine.results) == 120
    assert server.sandbox.stats.max_in_flight <= 4
    assert sum(server.sandbox.stats.after_terminal.values()) == 0
    # 120 syncs x 7 calls; polling 4 at a time while holding a slot would take at least 120/4 x 5 x 0.2 s = 30 s.
    first, last = server.sandbox.stats.request_times[0][0], server.sandbox.stats.request_times[-1][0]
    assert last - first < 10


def test_started_syncs_keep_polling_after_the_run_stops_early(workdir, write, server) -> None:
    server.sandbox.accounts.update(a_sync=SandboxAccount("TELEGRAM", sync_polls=8))
    server.sandbox.accept_any_account = True
    server.sandbox.faults = [Fault.parse("errors/insufficient_privileges@b_patch")]
    server.sandbox.latency_ms = 5
    write(
        "a.yaml",
        "version: 1\naccounts:\n  a_sync: {provider: TELEGRAM, resync: {generation: 1}}\n"
        "  b_patch: {country: US}\n  c_patch: {country: US}\n",
    )
    engine, _ = run_engine(workdir, server, "a.yaml", concurrency=1, sync_poll_interval=0.05)
    outcomes = {(r.account_id, r.operation): r.outcome for r in engine.results}
    assert engine.stop_reason == (
        "errors/insufficient_privileges (HTTP 401) is not about one account: the API key lacks the scope for "
        "this: use a key with account write access"
    )
    assert outcomes == {
        ("a_sync", "resync"): "succeeded",
        ("b_patch", "patch"): "skipped",
        ("c_patch", "patch"): "skipped",
    }
    assert server.sandbox.stats.sync_calls["a_sync"] == 10 and server.sandbox.stats.patches["c_patch"] == 0
