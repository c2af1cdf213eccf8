"""Failures that belong to the run, not to its accounts: a wrong API key, a dead API, a URL that is not the API.

Whatever the fleet's size, when every account sent to fails the same run-level way and nothing succeeds, the run
says so in one line that names what to check (POSTPRESS_API_KEY, never its value; the API URL; the failure), the
accounts are reported `skipped`, not failed, and the state records no failure for them. The summary's counts say
what they count: accounts or operations.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from reconciler.sandbox import Fault
from reconciler.state import open_backend
from tests.helpers import assert_no_secrets, fleet, run_engine

WRONG_KEY = "wrong-key-4a1f9e0c7d"


def _stop_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("Stopped early:")]


def _no_failure_recorded(state: str = ".reconciler/state.json") -> None:
    recorded = open_backend(state).read()
    assert all(record.last_failure is None for record in recorded.accounts.values()), recorded.accounts


def _dead_url() -> str:
    """An API URL on a loopback port where nothing listens: every request is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/v1"


# -- 1. a wrong API key ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("accounts", [3, 40], ids=["fewer accounts than the breaker's threshold", "a fleet"])
def test_a_wrong_key_is_the_runs_failure_not_each_accounts(
    run, write, api, server, monkeypatch, accounts
) -> None:
    monkeypatch.setenv("POSTPRESS_API_KEY", WRONG_KEY)
    write("a.yaml", fleet(accounts))
    result = run("apply", "a.yaml", "--yes", "--concurrency", "4", "--report", "r.json")
    assert result.code == 3, result.err
    [stop] = _stop_lines(result.out)
    assert "errors/invalid_credentials (HTTP 401)" in stop
    assert (
        f"the API at {server.url} does not accept the key (no account is at fault): check POSTPRESS_API_KEY;"
        in stop
    )
    assert stop.endswith(": check POSTPRESS_API_KEY; the remaining operations were skipped."), stop
    assert "what to do:" not in result.out and "reconnect" not in result.out  # no per-account failure group
    assert api.stats.requests <= 2 * 5 + 3  # the breaker's threshold (5 at least) twice, and its probes
    report = json.loads(Path("r.json").read_text())
    assert report["summary"]["failed"] == 0 and report["summary"]["skipped"] == accounts
    assert report["failures_by_type"] == {}
    sent = [r for r in report["results"] if r["attempts"]]
    assert sent and all(r["outcome"] == "skipped" and r["http_status"] == 401 for r in sent)
    _no_failure_recorded()
    assert "failed" not in run("state", "list").out
    assert_no_secrets(result.out, result.err, Path("r.json"), secrets=[WRONG_KEY])


def test_one_account_refused_alone_is_that_accounts_failure(run, write, api, monkeypatch) -> None:
    """With one account sent to, a 401 cannot tell a wrong key from that account's credentials: its own."""
    monkeypatch.setenv("POSTPRESS_API_KEY", WRONG_KEY)
    write("a.yaml", fleet(1))
    result = run("apply", "a.yaml", "--yes")
    assert result.code == 3
    assert not _stop_lines(result.out)
    assert "errors/invalid_credentials (HTTP 401, 1 operation(s))" in result.out
    assert "failed" in run("state", "list").out


# -- 2. a dead API ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("accounts", [1, 3, 30], ids=["one account", "a few accounts", "a fleet"])
def test_a_dead_api_is_the_runs_failure_whatever_the_fleet_size(run, write, api, accounts) -> None:
    url = _dead_url()
    write("a.yaml", fleet(accounts))
    result = run(
        "apply",
        "a.yaml",
        "--yes",
        "--api-url",
        url,
        "--max-attempts",
        "2",
        "--concurrency",
        "1",
        "--report",
        "r.json",
    )
    assert result.code == 3, result.err
    [stop] = _stop_lines(result.out)
    assert (
        f"network_error (cannot connect to 127.0.0.1:{url.split(':')[2].split('/')[0]}: Connection refused)"
        in stop
    )
    assert f"the API at {url} is down or out of reach (no account is at fault)" in stop
    assert stop.endswith(
        "check that the API is up and that --api-url is right; the remaining operations were skipped."
    )
    assert "network_error (no HTTP answer" not in result.out  # no per-account failure group
    report = json.loads(Path("r.json").read_text())
    assert report["summary"]["failed"] == 0 and report["summary"]["skipped"] == accounts
    assert report["failures_by_type"] == {}
    _no_failure_recorded()
    assert "failed" not in run("state", "list").out


def test_an_api_unavailable_for_every_account_of_a_small_fleet_is_the_runs_failure(
    workdir, write, server
) -> None:
    server.sandbox.faults = [Fault.parse("errors/service_unavailable")]
    outcome, backend = run_engine(
        workdir, server, write("a.yaml", fleet(3)), max_attempts=2, throttle_timeout=0.2
    )
    assert outcome.stop_reason is not None
    assert "errors/service_unavailable (HTTP 503)" in outcome.stop_reason
    assert f"the API at {server.url} is down or out of reach" in outcome.stop_reason
    assert [r.outcome for r in outcome.results] == ["skipped"] * 3
    assert all(record.last_failure is None for record in backend.read().accounts.values())


def test_a_dead_api_that_comes_back_leaves_the_failures_to_their_accounts(workdir, write, server) -> None:
    """The first success clears the run: the failures held back until then are the accounts' own."""
    server.sandbox.faults = [Fault.parse("errors/service_unavailable@acc_0000,acc_0001")]
    outcome, backend = run_engine(
        workdir, server, write("a.yaml", fleet(3)), max_attempts=1, concurrency=1, throttle_timeout=0.1
    )
    assert outcome.stop_reason is None
    outcomes = {r.account_id: r.outcome for r in outcome.results}
    assert outcomes == {"acc_0000": "failed", "acc_0001": "failed", "acc_0002": "succeeded"}
    assert backend.read().accounts["acc_0000"].last_failure["error_type"] == "errors/service_unavailable"


# -- 3. counts that say what they count ------------------------------------------------------------------------
def test_counts_after_an_early_stop_say_accounts_and_operations(run, write, api, server) -> None:
    write(
        "a.yaml",
        fleet(28) + "  acc_li: {provider: LINKEDIN, country: US, resync: {generation: 1}}\n",
    )
    bare = server.url.removesuffix("/api/v1")
    result = run(
        "apply", "a.yaml", "--yes", "--force", "--api-url", bare, "--any-api-path", "--format", "json"
    )
    assert result.code == 3
    summary = result.json["summary"]  # type: ignore[index]
    assert (summary["accounts"], summary["failed"], summary["skipped"]) == (29, 0, 30)  # operations skipped
    text = run(
        "apply", "a.yaml", "--yes", "--force", "--api-url", bare, "--any-api-path", "--concurrency", "1"
    )
    first, second = text.out.splitlines()[:2]
    assert first == (
        "Apply: 29 account(s): 0 PATCHed, 0 resynced, 0 forgotten; 30 operation(s): 0 succeeded, 30 skipped. "
        "8 account(s) failed for the run's cause below, not their own: reported skipped, not recorded as failed."
    )
    assert second.startswith("Stopped early: the first 5 requests (5 accounts) and 3 probes after them")
    markdown = run(
        "apply",
        "a.yaml",
        "--yes",
        "--force",
        "--api-url",
        bare,
        "--any-api-path",
        "--concurrency",
        "1",
        "--format",
        "markdown",
    )
    assert f"**{first}**" in markdown.out


def test_counts_of_a_run_with_its_own_failures_name_accounts_and_operations(run, write, api) -> None:
    api.faults = [Fault.parse("errors/invalid_parameters@acc_0001")]
    write("a.yaml", fleet(3) + "  acc_li: {provider: LINKEDIN, country: US, resync: {generation: 1}}\n")
    result = run("apply", "a.yaml", "--yes", "--sync-poll-interval", "0")
    assert result.code == 3
    assert result.out.splitlines()[0] == (
        "Apply: 4 account(s): 3 PATCHed, 1 resynced, 0 forgotten; 5 operation(s): 4 succeeded, 1 failed, "
        "0 skipped. Also sent: 2 resync poll(s), 0 retry(ies)."
    )
