"""The apply report's counts: by operation, forgets visible, polls apart from retries, the same in every format."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from reconciler.model import Result
from reconciler.render import report
from reconciler.sandbox import Fault, SandboxAccount

SCHEMAS = Path(__file__).parents[2] / "schemas"

BEFORE = """
version: 1
accounts:
  li: {provider: LINKEDIN, country: US, resync: {generation: 1}}
  tg: {provider: TELEGRAM, resync: {generation: 1}}
  gone: {country: FR}
  same: {country: DE}
"""
AFTER = """
version: 1
accounts:
  li: {provider: LINKEDIN, country: DE, resync: {generation: 2}}
  tg: {provider: TELEGRAM, resync: {generation: 2}}
  same: {country: DE}
  new: {country: US}
"""
COUNTS_LINE = (
    "Apply: 4 account(s): 2 PATCHed, 2 resynced, 1 forgotten; 4 operation(s): 4 succeeded, 0 failed, 0 skipped. "
    "Also sent: 4 resync poll(s), 1 retry(ies)."
)


def test_counts_by_operation_add_up_in_text_json_and_markdown(run, write, api, workdir, monkeypatch) -> None:
    api.accounts["tg"] = SandboxAccount("TELEGRAM")
    write("a.yaml", BEFORE)
    assert run("import", "a.yaml").code == 0
    write("a.yaml", AFTER)
    api.faults = [
        Fault.parse("errors/unexpected_error@tg;route=sync;times=1;unlisted")
    ]  # one retry, on tg's start
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(workdir / "summary.md"))
    result = run("apply", "a.yaml", "--yes", "--report", "r.json", "--sync-poll-interval", "0.01")
    assert result.code == 0, result.err

    assert result.out.splitlines()[0] == COUNTS_LINE
    assert f"**{COUNTS_LINE}**" in (workdir / "summary.md").read_text()
    document = json.loads((workdir / "r.json").read_text())
    jsonschema.validate(document, json.loads((SCHEMAS / "report.schema.json").read_text()))
    assert document["summary"] == {
        "succeeded": 4,
        "failed": 0,
        "skipped": 0,
        "accounts": 4,
        "patched": 2,
        "resynced": 2,
        "forgotten": 1,
        "polls": 4,
        "retries": 1,
    }
    assert document["forgotten"] == ["gone"]
    by_operation = {
        (r["account_id"], r["operation"]): (r["attempts"], r["polls"]) for r in document["results"]
    }
    assert by_operation == {
        ("li", "patch"): (1, 0),
        ("li", "resync"): (1, 2),
        ("new", "patch"): (1, 0),
        ("tg", "resync"): (2, 2),
    }
    # The oracle: what the sandbox received. Every sync request is a start, a retry or a poll.
    sync_requests = sum(api.stats.sync_calls.values())
    assert sync_requests == 2 + document["summary"]["retries"] + document["summary"]["polls"] == 7
    assert sum(api.stats.patches.values()) == 2
    assert "gone" not in run("state", "list").out


def test_a_forget_alone_is_counted(run, write, api) -> None:
    write("a.yaml", "version: 1\naccounts:\n  a: {country: US}\n  b: {country: DE}\n")
    run("import", "a.yaml")
    write("a.yaml", "version: 1\naccounts:\n  a: {country: US}\n")
    result = run("apply", "a.yaml", "--yes", "--format", "json")
    assert result.code == 0
    assert result.json["summary"]["forgotten"] == 1 and result.json["forgotten"] == ["b"]
    assert result.json["results"] == []
    assert api.stats.requests == 0


def test_failed_and_skipped_count_operations_and_add_up() -> None:
    results = [
        Result("a", "patch", "failed", 502, "errors/proxy_error", "proxy_error", True, 4, "down"),
        Result("a", "resync", "skipped", message="skipped: the PATCH before it did not succeed"),
        Result("b", "patch", "succeeded", 200, attempts=1),
        Result("b", "resync", "succeeded", 200, attempts=1, polls=3, message="SYNC_DONE"),
        Result("c", "forget", "succeeded"),
    ]
    counts = report.summary(results)
    assert (
        counts["succeeded"] + counts["failed"] + counts["skipped"]
        == len(report.document(results)["results"])
        == 4
    )
    assert counts["patched"] + counts["resynced"] == counts["succeeded"]
    text = report.render_text(results)
    assert text.splitlines()[0] == (
        "Apply: 3 account(s): 1 PATCHed, 1 resynced, 1 forgotten; 4 operation(s): 2 succeeded, 1 failed, 1 skipped. "
        "Also sent: 3 resync poll(s), 3 retry(ies)."
    )
    assert "  a (patch, 4 attempt(s)): down" in text
