"""Random faults of every kind against a fleet: the recorded state stays exactly what the API accepted.

CI runs 1,000 accounts under one seed; RECONCILER_SOAK=1 runs 10,000 accounts under five seeds (RELIABILITY.md).
"""

from __future__ import annotations

import json
import logging
import random

import pytest

from reconciler.api.catalogue import CATALOGUE
from reconciler.applying.sender import log as engine_log
from reconciler.sandbox import BAD_ANSWERS, Fault
from reconciler.state import open_backend
from tests.soak import SOAK, scale

ACCOUNTS = scale(1_000, 10_000)
SEEDS = [11, 12, 13, 14, 15] if SOAK else [11]
FAULT_SHARE = 0.20
MAX_ATTEMPTS = 3
#: The client's message for an attempt that got no answer within --timeout.
TIMEOUT_MESSAGE = "no answer within --timeout"

#: Every documented error type except those that stop a whole run (tested one by one in test_apply.py), and
#: every undocumented answer the sandbox can give.
FAULT_TYPES = sorted(t for t, row in CATALOGUE.items() if row.status is not None and not row.stops_run)
FAULT_TYPES += list(BAD_ANSWERS)


def fault_mix(seed: int) -> list[Fault]:
    """One fault per type, in a seeded order, with rates that together hit FAULT_SHARE of the requests."""
    kinds = list(FAULT_TYPES)
    random.Random(seed).shuffle(kinds)
    # Each fault is drawn in turn: n rates r with 1 - (1 - r)^n = FAULT_SHARE.
    rate = 1 - (1 - FAULT_SHARE) ** (1 / len(kinds))
    return [Fault(kind, rate, route=None) for kind in kinds]


def _patch_attempts_timed_out(records: list[logging.LogRecord]) -> set[str]:
    """Accounts a PATCH attempt of which went unanswered within --timeout and was retried (from the retry log)."""
    timed_out = set()
    for record in records:
        message = record.getMessage()
        if message.startswith("PATCH ") and TIMEOUT_MESSAGE in message:
            timed_out.add(message.removeprefix("PATCH ").split(": ", 1)[0])
    return timed_out


def resync_fleet(count: int) -> str:
    lines = ["version: 1", "accounts:"]
    for i in range(count):
        resync = ", resync: {generation: 1}" if i % 10 == 0 else ""
        lines.append(
            f"  acc_{i:05d}: {{provider: LINKEDIN, country: US, ip: 198.51.100.{i % 250 + 1}{resync}}}"
        )
    return "\n".join(lines) + "\n"


@pytest.mark.timeout(600 if SOAK else 120)
@pytest.mark.parametrize("seed", SEEDS)
def test_random_faults_state_equals_what_the_api_accepted(run, write, api, workdir, caplog, seed) -> None:
    caplog.set_level(logging.INFO, logger=engine_log.name)  # each retry, with the failure it retries
    api.faults = fault_mix(seed)
    api.random = random.Random(seed)
    api.hang_seconds = 2
    write("a.yaml", resync_fleet(ACCOUNTS))
    every_id = {f"acc_{i:05d}" for i in range(ACCOUNTS)}
    state = str(workdir / "state.json")
    first = run(
        "apply",
        "a.yaml",
        "--yes",
        "--state",
        state,
        "--concurrency",
        "32",
        "--max-attempts",
        str(MAX_ATTEMPTS),
        "--timeout",
        "1",
        "--sync-poll-interval",
        "0.01",
        "--report",
        "r1.json",
    )
    report = json.loads((workdir / "r1.json").read_text())
    assert first.code == 3, first.err  # some failed: 20% faults over three attempts leave a few

    # The run did not stop early: these faults are about single accounts.
    assert "Stopped early" not in first.out + first.err
    outcomes = [r["outcome"] for r in report["results"]]
    assert outcomes.count("skipped") == sum(
        1 for r in report["results"] if r["outcome"] == "skipped" and r["operation"] == "resync"
    )  # only resyncs after a failed PATCH
    failed_types = {r["error_type"] for r in report["results"] if r["outcome"] == "failed"}
    assert failed_types <= set(CATALOGUE) | {"unknown"}, failed_types - set(CATALOGUE)

    # Recorded == exactly the accounts the sandbox saw succeed, for PATCHes and for resyncs.
    recorded = open_backend(state).read()
    recorded_patched = {i for i, r in recorded.accounts.items() if r.settings is not None}
    assert recorded_patched <= set(api.stats.patched)
    # The one exception: a request the sandbox answered after the client had given up (--timeout) landed,
    # but its answer was lost; it stays planned and is sent again. Only a slow machine produces these. Any
    # attempt can be the one that timed out, not only the last: a later attempt may meet another fault, so
    # the retries' log lines count too, not only the final error type.
    answer_lost = {
        r["account_id"]
        for r in report["results"]
        if r["operation"] == "patch" and r["error_type"] == "client_timeout"
    } | _patch_attempts_timed_out(caplog.records)
    assert set(api.stats.patched) - recorded_patched <= answer_lost
    assert len(set(api.stats.patched) - recorded_patched) <= ACCOUNTS // 100
    recorded_resynced = {i for i, r in recorded.accounts.items() if r.resync_generation == 1}
    finished_syncs = {
        i
        for i in every_id
        if api.stats.syncs_started[i] and api.sync_status(i) in ("SYNC_DONE", "CHUNK_DONE")
    }
    assert recorded_resynced <= finished_syncs
    # A resync is recorded unless a poll's answer was lost to a fault after the sync finished upstream.
    assert len(finished_syncs - recorded_resynced) <= len(finished_syncs) * FAULT_SHARE

    # No account received more PATCHes than attempts allow, and no second sync was started. A request refused
    # by throttling (429; a 503 or 504 may be one) is sent again without using an attempt: not counted.
    attempts: dict[str, int] = {}
    for entry in api.stats.log:
        if entry["method"] == "PATCH" and entry["status"] not in (429, 503, 504):
            account = entry["path"].rsplit("/", 1)[-1]
            attempts[account] = attempts.get(account, 0) + 1
    assert max(attempts.values()) <= MAX_ATTEMPTS
    assert max(api.stats.syncs_started.values()) <= 1
    patches_after_first = dict(api.stats.patches)

    # Faults off: the re-run sends only what is not recorded, and converges.
    api.faults = []
    second = run(
        "apply", "a.yaml", "--yes", "--state", state, "--concurrency", "32", "--sync-poll-interval", "0.01"
    )
    assert second.code == 0, second.err
    assert run("plan", "a.yaml", "--state", state, "--detailed-exitcode").code == 0
    assert set(api.stats.patched) == every_id
    for account_id in recorded_patched:  # nothing applied twice needlessly
        assert api.stats.patches[account_id] == patches_after_first[account_id]
