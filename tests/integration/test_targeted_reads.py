"""Commands about a few accounts read only theirs: on PostgreSQL, `state show ID`, `state forget ID`, `plan --target`
and `apply --target` fetch those accounts' rows (and the workspace's lineage, serial and salt), never the whole
state, and answer exactly as a read of the whole state does.

"As before" is the file backend holding a copy of the same state (`state migrate`): its code paths read the whole
file, as every backend did before. What PostgreSQL returned is observed by counting the rows psycopg hands back,
and a snapshot of every account (`WorkspaceRows.snapshot` without ids, which every read of the rows goes through)
fails the test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from reconciler.model import Recorded
from reconciler.planning import shard_of
from reconciler.state import open_backend
from reconciler.state.postgres.rows import WorkspaceRows
from tests.helpers import fresh_postgres_state

ACCOUNTS = 2000
#: Accounts whose last attempt failed (planted), among them one holding a message recorded by 0.1.0.
FAILED = ("acc_0011", "acc_0012", "acc_1999")


def _account(i: int) -> str:
    """Two thirds custom proxies with a secret, a third managed; a tenth declaring a resync."""
    if i % 3 == 0:
        body = f"{{country: US, ip: 203.0.113.{i % 250 + 1}}}"
    else:
        body = (
            "{provider: LINKEDIN, proxy: {host: h"
            f"{i}.example, port: {8000 + i % 1000}, username: u{i}, password: '${{PROXY_PASSWORD}}'}}"
            + (", resync: {generation: 2}" if i % 10 == 1 else "")
            + "}"
        )
    return f"  acc_{i:04d}: {body}\n"


CONFIG = "version: 1\naccounts:\n" + "".join(_account(i) for i in range(ACCOUNTS))


def _plant_failures(state: str) -> None:
    backend = open_backend(state)
    with backend.lock():
        recorded, journal = backend.open_journal()
        journal.close()
        for number, account_id in enumerate(FAILED):
            recorded.accounts[account_id].last_failure = {
                "operation": "patch",
                "error_type": "errors/proxy_error",
                "http_status": 502,
                "message": f"proxy unreachable ({number})",
                "at": "2026-01-01T00:00:00.000Z",
            }
        backend.write(recorded)


@pytest.fixture
def states(run, write, workdir) -> Iterator[tuple[str, str]]:
    """(a PostgreSQL state of 2,000 accounts, a file state holding a copy of it); `a.yaml` declares them."""
    write("a.yaml", CONFIG)
    with fresh_postgres_state("one_row") as pg:
        imported = run("import", "a.yaml", "--yes", "--state", pg)
        assert imported.code == 0, imported.err
        _plant_failures(pg)
        copy = str(workdir / "copy.json")
        migrated = run("state", "migrate", "--from", pg, "--to", copy)
        assert migrated.code == 0, migrated.err
        original, copied = open_backend(pg).read(), open_backend(copy).read()
        assert (copied.lineage, copied.salt, copied.accounts) == (
            original.lineage,
            original.salt,
            original.accounts,
        )
        yield pg, copy


class Fetched:
    """What PostgreSQL handed back while watched: rows, and the reads of every account."""

    def __init__(self) -> None:
        self.rows = 0
        self.whole_reads = 0


@contextlib.contextmanager
def watched(whole_reads_allowed: bool = False) -> Iterator[Fetched]:
    """Count every row psycopg returns; a snapshot of every account fails unless allowed (then it is counted)."""
    import psycopg

    fetched = Fetched()
    fetchall, fetchone, reading = psycopg.Cursor.fetchall, psycopg.Cursor.fetchone, WorkspaceRows.snapshot

    def counted_all(cursor: Any) -> Any:
        rows = fetchall(cursor)
        fetched.rows += len(rows)
        return rows

    def counted_one(cursor: Any) -> Any:
        row = fetchone(cursor)
        fetched.rows += row is not None
        return row

    def read(rows: WorkspaceRows, connection: Any, account_ids: Any, failed: bool) -> Any:
        if account_ids is None and not failed:
            fetched.whole_reads += 1
            assert whole_reads_allowed, "read every account of the state"
        return reading(rows, connection, account_ids, failed)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg.Cursor, "fetchall", counted_all)
        patch.setattr(psycopg.Cursor, "fetchone", counted_one)
        patch.setattr(WorkspaceRows, "snapshot", read)
        yield fetched


#: Rows a command about a few accounts may fetch: each snapshot (a targeted apply takes four: its plan, the
#: journal's, the stored failure messages, and a count for the safety bound) fetches 4 table names, the schema
#: version and the workspace beside the accounts' own rows; locking adds a few. A whole read fetches over 2,000.
FEW = 60


def test_state_show_reads_one_row_and_shows_what_a_whole_read_shows(run, states) -> None:
    pg, copy = states
    for account_id in ("acc_0000", "acc_0001", "acc_0011", "acc_1999", "acc_9999"):
        for output_format in ("text", "json"):
            expected = run("state", "show", account_id, "--state", copy, "--format", output_format)
            with watched() as fetched:
                shown = run("state", "show", account_id, "--state", pg, "--format", output_format)
            assert (shown.code, shown.out, shown.err) == (expected.code, expected.out, expected.err)
            if shown.code == 0:
                assert fetched.rows <= 7, fetched.rows  # 4 table names, schema version, workspace, the row
            else:  # the ids alone are read, to name the close ones
                assert fetched.whole_reads == 0
    assert run("state", "show", "acc_0011", "--state", pg).json["last_failure"]["message"] == (
        "proxy unreachable (0)"
    )
    assert run("state", "show", "acc_9999", "--state", pg).err == (
        "Error: 'acc_9999' is not in the state (did you mean 'acc_1999', 'acc_0999'?)\n"
    )


def test_plan_target_reads_only_the_targets_and_plans_what_a_whole_read_plans(run, write, states) -> None:
    pg, copy = states
    changed = (
        CONFIG.replace("h2.example", "moved.example")  # acc_0002: an update
        .replace("  acc_0004: ", "  gone_0004: ")  # acc_0004 forgotten, gone_0004 created
        .replace("resync: {generation: 2}", "resync: {generation: 3}")  # a tenth: a resync
    )
    write("a.yaml", changed)
    targets = ["acc_0002", "acc_0004", "gone_0004", "acc_0011", "acc_0000", "acc_0021", "acc_0001"]
    arguments = [part for target in targets for part in ("--target", target)]
    for output_format in ("text", "json"):
        expected = run("plan", "a.yaml", "--state", copy, "--format", output_format, *arguments)
        with watched() as fetched:
            planned = run("plan", "a.yaml", "--state", pg, "--format", output_format, *arguments)
        assert (planned.code, planned.out, planned.err) == (expected.code, expected.out, expected.err)
        assert fetched.rows <= FEW, fetched.rows
    summary = planned.json["summary"]
    assert summary == {"create": 1, "update": 2, "forget": 1, "resync": 2, "unchanged": 2}, summary


def test_a_target_that_matches_nothing_still_names_the_close_ids(run, states) -> None:
    pg, copy = states
    errors = []
    for typo in (["acc_00011"], ["acc_0001x", "acc_0002"], ["nothing-like-it"]):
        arguments = [part for target in typo for part in ("--target", target)]
        expected = run("plan", "a.yaml", "--state", copy, *arguments)
        with watched() as fetched:
            refused = run("plan", "a.yaml", "--state", pg, *arguments)
        assert (refused.code, refused.out, refused.err) == (expected.code, expected.out, expected.err)
        assert fetched.whole_reads == 0  # the ids alone were read, to name the close ones
        errors.append(refused.err)
    assert errors[0].startswith(
        "Error: --target names no declared or recorded account: 'acc_00011' (did you mean"
    )
    assert "'acc_0011'" in errors[0] and "'acc_0001x' (did you mean 'acc_0001'" in errors[1]
    assert errors[2] == "Error: --target names no declared or recorded account: 'nothing-like-it'\n"


def test_a_target_recorded_but_no_longer_declared_is_found_without_a_whole_read(run, write, states) -> None:
    """The "did you mean" path is not taken for an id only the state knows: its own row says it exists."""
    pg, copy = states
    write("a.yaml", CONFIG.replace("  acc_0005: ", "  other_0005: "))
    expected = run("plan", "a.yaml", "--state", copy, "--format", "json", "--target", "acc_0005")
    with watched() as fetched:
        planned = run("plan", "a.yaml", "--state", pg, "--format", "json", "--target", "acc_0005")
    assert planned.out == expected.out and planned.code == 0, planned.err
    assert [c["action"] for c in planned.json["changes"]] == ["forget"]
    assert fetched.rows <= 14  # the row, and a count for the safety verdict: two snapshots of 7


def test_state_forget_deletes_its_rows_and_moves_the_serial_as_before(run, states) -> None:
    pg, copy = states
    before, before_copy = open_backend(pg).read(), open_backend(copy).read()
    for state in (copy, pg):
        with watched() as fetched:
            forgot = run("state", "forget", "acc_0005", "acc_1999", "acc_0005", "--state", state)
        assert forgot.code == 0, forgot.err
        assert forgot.err == "Forgot 2 account(s): acc_0005, acc_1999.\n"
        if state == pg:
            assert fetched.rows <= FEW, fetched.rows
    after, after_copy = open_backend(pg).read(), open_backend(copy).read()
    assert after.accounts == after_copy.accounts
    assert (after.lineage, after.salt, after.serial) == (before.lineage, before.salt, before.serial + 1)
    assert after_copy.serial == before_copy.serial + 1
    assert after.accounts == {
        i: record for i, record in before.accounts.items() if i not in ("acc_0005", "acc_1999")
    }
    for state in (copy, pg):  # nothing written when one is missing
        missing = run("state", "forget", "acc_0006", "acc_0005", "--state", state)
        assert (missing.code, missing.err) == (
            1,
            "Error: not in the state: 'acc_0005' (did you mean 'acc_0004', 'acc_0006', 'acc_0003'?)\n",
        )
    assert open_backend(pg).read() == after and open_backend(copy).read() == after_copy


def _without_times(recorded: Recorded) -> dict[str, Any]:
    """A state's accounts with the moments of this run's records blanked (two applies never share them)."""
    accounts = {}
    for account_id, record in recorded.accounts.items():
        document = record.to_json()
        if document["applied_at"] != recorded.accounts["acc_0000"].applied_at:  # the import's moment is kept
            document["applied_at"] = "(this run)"
        if document["resynced_at"] is not None:
            document["resynced_at"] = "(this run)"
        accounts[account_id] = document
    return accounts


def test_a_targeted_apply_reads_only_the_targets_and_records_what_a_whole_read_records(
    run, write, api, states
) -> None:
    pg, copy = states
    pg_before, copy_before = open_backend(pg).read(), open_backend(copy).read()
    changed = (
        CONFIG.replace("h2.example", "moved.example")  # acc_0002: an update
        .replace("  acc_0004: ", "  gone_0004: ")  # acc_0004 forgotten, gone_0004 created
        .replace(
            "resync: {generation: 2}", "resync: {generation: 3}"
        )  # a tenth: a resync (acc_0011 targeted)
    )
    write("a.yaml", changed)
    targets = ["acc_0002", "acc_0004", "gone_0004", "acc_0011", "acc_0021", "acc_0000"]
    arguments = [part for target in targets for part in ("--target", target)]
    options = ["--yes", "--sync-poll-interval", "0.01", "--format", "json"]
    reports = []
    for state in (copy, pg):
        with watched() as fetched:
            applied = run("apply", "a.yaml", "--state", state, *options, *arguments)
        assert applied.code == 0, applied.err
        reports.append({key: applied.json[key] for key in ("summary", "failures_by_type", "results")})
    assert fetched.rows <= FEW, fetched.rows
    assert reports[0] == reports[1]
    done = sorted((r["account_id"], r["operation"]) for r in reports[1]["results"])
    assert done == [
        ("acc_0002", "patch"),
        ("acc_0011", "patch"),
        ("acc_0011", "resync"),
        ("gone_0004", "patch"),
    ], done
    assert reports[1]["summary"]["forgotten"] == 1
    after, after_copy = open_backend(pg).read(), open_backend(copy).read()
    assert _without_times(after) == _without_times(after_copy)
    assert (after.lineage, after.salt) == (after_copy.lineage, after_copy.salt)
    assert (after.serial, after_copy.serial) == (pg_before.serial + 1, copy_before.serial + 1)
    untouched = set(pg_before.accounts) - set(targets)
    assert {i: after.accounts[i] for i in untouched} == {i: pg_before.accounts[i] for i in untouched}
    assert set(after.accounts) == set(pg_before.accounts) - {"acc_0004"} | {"gone_0004"}
    assert after.accounts["acc_0011"].last_failure is None  # its failed PATCH was sent again
    again = run("plan", "a.yaml", "--state", pg, "--format", "json", *arguments)
    assert again.code == 1 and "'acc_0004'" in again.err  # forgotten: now neither declared nor recorded
    arguments = [part for target in targets if target != "acc_0004" for part in ("--target", target)]
    again = run("plan", "a.yaml", "--state", pg, "--format", "json", *arguments)
    assert again.json["changes"] == [], again.err


def _proxies(count: int, moved: list[str] | tuple[str, ...] = ()) -> str:
    """`count` custom-proxy accounts; those `moved` have another port than the one imported."""
    lines = [
        f"  acc_{i:04d}: {{proxy: {{host: h{i}.example, port: {1 if f'acc_{i:04d}' in moved else 8080}}}}}\n"
        for i in range(count)
    ]
    return "version: 1\naccounts:\n" + "".join(lines)


def _refusals(run, cases: list[tuple[str, list[str]]]) -> list[tuple[int, str]]:
    """Each `apply a.yaml STATE ARGUMENTS`'s exit code and error, the targeted ones on PostgreSQL watched."""
    refusals = []
    for state, arguments in cases:
        targeted = "--target" in arguments and state.startswith("postgresql://")
        with watched(whole_reads_allowed=not targeted) as fetched:
            refused = run("apply", "a.yaml", "--yes", "--state", state, *arguments)
        refusals.append((refused.code, refused.err))
        if targeted and "--shard" not in arguments:
            assert fetched.rows <= FEW, fetched.rows  # a count(*), not the rows
    return refusals


def test_the_safety_bound_weighs_the_whole_state_on_a_targeted_apply(run, write, api, workdir) -> None:
    """20 recorded accounts, 7 of them to update: 35% is over 30% however few rows the targeted read fetched.
    The refusal is the one a whole read gives (untargeted, or the file backend)."""
    moved = [f"acc_{i:04d}" for i in range(7)]
    targets = [part for target in moved for part in ("--target", target)]
    with fresh_postgres_state("bound") as pg:
        file_state = str(workdir / "bound.json")
        write("a.yaml", _proxies(20))
        for state in (pg, file_state):
            assert run("import", "a.yaml", "--yes", "--state", state).code == 0
        write("a.yaml", _proxies(20, moved))
        refusals = _refusals(run, [(pg, targets), (pg, []), (file_state, targets), (file_state, [])])
        assert api.stats.requests == 0
        plans = []  # plan says what apply would do, from the same count
        for state in (pg, file_state):
            with watched(whole_reads_allowed=state == file_state):
                plans.append(run("plan", "a.yaml", "--state", state, "--format", "json", *targets))
    assert set(refusals) == {
        (
            1,
            "Error: too many updates: 35.00% is over 30.00% (7/20); --force applies it anyway, or "
            "--max-update-percent sets the bound\n",
        )
    }
    assert plans[0].out == plans[1].out, plans[0].err
    safety = plans[0].json["safety"]
    assert (safety["recorded"], safety["refused"]) == (20, True), safety


def test_a_targeted_shard_is_weighed_against_the_shards_accounts(run, write, api) -> None:
    """With --shard, the bound weighs the shard's recorded accounts: a targeted run reads every id (not every
    record) to count them."""
    ids = [f"acc_{i:04d}" for i in range(40)]
    mine = [i for i in ids if shard_of(i, 2) == 1]
    moved = mine[: len(mine) // 3 + 1]  # over 30% of the shard, under 30% of the state
    assert 100 * len(moved) / len(mine) > 30 and 100 * len(moved) / len(ids) < 30
    targets = [part for target in moved for part in ("--target", target)]
    with fresh_postgres_state("bound_shard") as pg:
        write("a.yaml", _proxies(40))
        assert run("import", "a.yaml", "--yes", "--state", pg).code == 0
        write("a.yaml", _proxies(40, moved))
        refusals = _refusals(run, [(pg, ["--shard", "1/2", *targets]), (pg, ["--shard", "1/2"])])
        assert api.stats.requests == 0
        percent = f"{100 * len(moved) / len(mine):.2f}%"
        expected = (
            f"Error: too many updates: {percent} is over 30.00% ({len(moved)}/{len(mine)}); --force applies it "
            "anyway, or --max-update-percent sets the bound\n"
        )
        assert refusals == [(1, expected)] * 2
        assert (
            run("apply", "a.yaml", "--yes", "--state", pg, *targets).code == 0
        )  # the whole state: under 30%
