"""plan, import, state commands and the file backend, through the real CLI."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import jsonschema
import pytest

from reconciler.errors import LockHeld
from reconciler.model import Recorded
from reconciler.state import events as recording
from reconciler.state.file.backend import FileBackend
from tests.helpers import SENTINEL_PASSWORD, fleet, modules_after

SCHEMAS = Path(__file__).parents[2] / "schemas"

CONFIG = """
version: 1
accounts:
  acc_a:
    provider: LINKEDIN
    labels: {team: emea}
    proxy: {host: p.example.com, port: 8080, username: u, password: "${PROXY_PASSWORD}"}
    resync: {generation: 1}
  acc_b:
    labels: {team: sales}
    country: US
"""


def test_plan_on_empty_state_creates_everything(run, write) -> None:
    write("a.yaml", CONFIG)
    result = run("plan", "a.yaml", "--detailed-exitcode")
    assert result.code == 2
    assert "  + acc_a (create)" in result.out
    assert "proxy.password = (sensitive)" in result.out
    assert "⟳ resync generation 0 -> 1" in result.out
    assert result.out.rstrip().endswith("Plan: 2 to create, 0 to update, 0 to forget, 1 to resync.")


def test_json_plan_matches_its_schema_and_contract(run, write) -> None:
    write("a.yaml", CONFIG)
    plan = run("plan", "a.yaml", "--format", "json").json
    jsonschema.validate(plan, json.loads((SCHEMAS / "plan.schema.json").read_text()))
    assert plan["summary"] == {"create": 2, "update": 0, "forget": 0, "resync": 1, "unchanged": 0}
    assert [c["account_id"] for c in plan["changes"]] == ["acc_a", "acc_b"]
    assert plan["changes"][0]["after"]["proxy"]["password"] == "(sensitive)"
    assert plan["changes"][1]["fields"] == ["country"]


def test_import_then_no_changes_then_update_forget_resync(run, write) -> None:
    write("a.yaml", CONFIG)
    assert run("import", "a.yaml").code == 0
    assert run("plan", "a.yaml", "--detailed-exitcode").code == 0
    write(
        "a.yaml",
        CONFIG.replace("country: US", "country: DE").replace("generation: 1", "generation: 2")
        + "  acc_c: {country: FR}\n",
    )
    plan = run("plan", "a.yaml", "--format", "json").json
    assert plan["summary"] == {"create": 1, "update": 1, "forget": 0, "resync": 1, "unchanged": 0}
    by_id = {c["account_id"]: c for c in plan["changes"]}
    assert by_id["acc_a"]["action"] == "none" and by_id["acc_a"]["resync"] is True
    assert by_id["acc_b"]["fields"] == ["country"]
    assert by_id["acc_b"]["before"] == {"country": "US"} and by_id["acc_b"]["after"] == {"country": "DE"}
    write("a.yaml", "version: 1\naccounts:\n  acc_b: {country: US}\n")
    plan = run("plan", "a.yaml", "--format", "json").json
    assert [(c["account_id"], c["action"]) for c in plan["changes"]] == [("acc_a", "forget")]


def test_secret_change_is_detected_by_fingerprint(run, write, monkeypatch) -> None:
    write("a.yaml", CONFIG)
    run("import", "a.yaml")
    monkeypatch.setenv("PROXY_PASSWORD", "another")
    result = run("plan", "a.yaml")
    assert "proxy.password : (sensitive) -> (sensitive)" in result.out


UNKEYED_NOTE = (
    "note: 3 secret(s) this plan updates are unchanged: the state recorded them without RECONCILER_FINGERPRINT_KEY, "
    "which is set here; if nothing else is pending, reconciler import records them under the key without any API "
    "call (docs/secrets-at-rest.md)\n"
)


def test_a_fingerprint_key_the_state_was_made_without_is_told_apart(run, write, monkeypatch) -> None:
    """Every secret shows `(sensitive) -> (sensitive)` under a new RECONCILER_FINGERPRINT_KEY: plan tells, by
    making the fingerprints again without it, that the values did not change; never when one did."""
    accounts = "".join(
        f"  acc_{i}: {{proxy: {{host: h, port: 1, password: '${{PW_{i}}}'}}}}\n" for i in range(3)
    )
    write("a.yaml", "version: 1\naccounts:\n" + accounts)
    for i in range(3):
        monkeypatch.setenv(f"PW_{i}", f"secret-{i}")
    assert run("import", "a.yaml").code == 0
    monkeypatch.setenv("RECONCILER_FINGERPRINT_KEY", "a-new-key")
    keyed = run("plan", "a.yaml")
    assert "Plan: 0 to create, 3 to update" in keyed.out and keyed.err == UNKEYED_NOTE
    monkeypatch.setenv("PW_1", "rotated")
    assert run("plan", "a.yaml").err == ""  # one value did change: nothing to say
    monkeypatch.delenv("RECONCILER_FINGERPRINT_KEY")
    assert run("plan", "a.yaml").err == ""
    assert "secret-" not in keyed.err + keyed.out


def test_target_and_select(run, write) -> None:
    write("a.yaml", CONFIG)
    assert [
        c["account_id"]
        for c in run("plan", "a.yaml", "--format", "json", "--target", "acc_b").json["changes"]
    ] == ["acc_b"]
    assert [
        c["account_id"]
        for c in run("plan", "a.yaml", "--format", "json", "--select", "team=emea").json["changes"]
    ] == ["acc_a"]
    assert run("plan", "a.yaml", "--select", "nonsense").code == 1


def test_failed_account_is_planned_again(run, write) -> None:
    write("a.yaml", CONFIG)
    run("import", "a.yaml")
    backend = FileBackend(Path(".reconciler/state.json"))
    with backend.lock():
        recorded, journal = backend.open_journal()
        journal.append(recording.failed("acc_b", {"operation": "patch", "error_type": "errors/proxy_error"}))
        journal.close()
    plan = run("plan", "a.yaml", "--format", "json").json
    assert [(c["account_id"], c["action"]) for c in plan["changes"]] == [("acc_b", "update")]


def test_markdown_plan_is_bounded(run, write) -> None:
    lines = ["version: 1", "accounts:"] + [
        f"  acc_{i:05d}: {{country: US, ip: 203.0.113.{i % 250}}}" for i in range(3000)
    ]
    write("a.yaml", "\n".join(lines) + "\n")
    result = run("plan", "a.yaml", "--format", "markdown")
    assert result.out.startswith("<!-- reconciler-plan -->")
    assert "Plan: 3000 to create" in result.out
    assert len(result.out) <= 60_000
    shown = result.out.count("\n+ acc_")
    assert 0 < shown < 3000
    left_out = 3000 - shown
    assert (
        f"**Details of {left_out:,} account(s) in 1 file(s) left out to stay under 60,000 characters**; "
        "`reconciler plan` prints the whole plan (`--format text` or `--format json`). Left out:\n"
        f"- `a.yaml`: {left_out:,}\n"
    ) in result.out


def test_usage_errors_exit_1_not_2(run) -> None:
    assert run("plan", "--no-such-flag").code == 1
    assert run("no-such-command").code == 1
    assert run("plan", "--format", "yaml").code == 1


def test_state_commands(run, write) -> None:
    write("a.yaml", CONFIG)
    run("import", "a.yaml")
    listing = run("state", "list")
    assert listing.code == 0 and listing.out.splitlines()[0].startswith("acc_a\tok")
    shown = run("state", "show", "acc_a").json
    assert shown["settings"]["proxy"]["password"] == "(sensitive)"
    assert run("state", "show", "nope").code == 1
    assert run("state", "forget", "acc_a").code == 0
    assert "acc_a" not in run("state", "list").out
    assert run("state", "forget", "acc_a").code == 1


def test_state_file_mode_serial_lineage_and_no_plaintext(run, write) -> None:
    write("a.yaml", CONFIG)
    run("import", "a.yaml")
    path = Path(".reconciler/state.json")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    state = json.loads(path.read_text())
    assert state["serial"] == 1 and state["lineage"]
    assert state["accounts"]["acc_a"]["settings"]["proxy"]["password"].startswith("sha256:")
    run("state", "forget", "acc_b")
    assert json.loads(path.read_text())["serial"] == 2
    assert json.loads(path.read_text())["lineage"] == state["lineage"]


def test_sentinel_secret_never_leaves(run, write, workdir) -> None:
    write("a.yaml", CONFIG + "  acc_bad: {country: XX}\n")
    outputs = [run("validate", "a.yaml"), run("plan", "a.yaml")]
    write("a.yaml", CONFIG)
    outputs += [
        run("validate", "a.yaml"),
        run("plan", "a.yaml", "--out", "plan.bin"),
        run("plan", "a.yaml", "--format", "json"),
        run("plan", "a.yaml", "--format", "markdown"),
        run("import", "a.yaml"),
        run("state", "list"),
        run("state", "show", "acc_a"),
    ]
    for outcome in outputs:
        assert SENTINEL_PASSWORD not in outcome.out + outcome.err
    for path in workdir.rglob("*"):
        if path.is_file() and path.name != "a.yaml":
            assert SENTINEL_PASSWORD.encode() not in path.read_bytes(), path


def test_journal_replay_and_torn_last_line(workdir) -> None:
    backend = FileBackend(workdir / "s.json")
    with backend.lock():
        recorded, journal = backend.open_journal()
        journal.append(recording.applied("x", {"country": "US"}, None))
        journal.flush()
        # Simulate kill -9: the journal is never closed; a torn line follows.
        with open(backend.journal_path, "ab") as handle:
            handle.write(b'{"op":"applied","id":"y","sett')
    snapshot = backend.read()
    assert set(snapshot.accounts) == {"x"} and snapshot.serial == 1
    with backend.lock():
        recorded, journal = backend.open_journal()
        assert set(recorded.accounts) == {"x"}
        journal.close()
    assert not backend.journal_path.exists()
    assert backend.read().serial == 1


def test_lock_held_names_the_holder(workdir) -> None:
    backend = FileBackend(workdir / "s.json")
    with backend.lock(command="apply"):
        other = FileBackend(workdir / "s.json")
        with pytest.raises(LockHeld) as caught, other.lock(timeout=0.2):
            pass
    assert f"pid {os.getpid()}" in str(caught.value) and "apply" in str(caught.value)
    with FileBackend(workdir / "s.json").lock():
        pass  # released


def test_corrupt_state_is_one_line_error(run, write, workdir) -> None:
    write("a.yaml", CONFIG)
    (workdir / ".reconciler").mkdir()
    (workdir / ".reconciler/state.json").write_text("{not json")
    result = run("plan", "a.yaml")
    assert result.code == 1 and "is not a reconciler state" in result.err and "Traceback" not in result.err


def test_recorded_fold_is_idempotent() -> None:
    recorded = Recorded("l", 1, "salt")
    event = recording.applied("a", {"country": "US"}, "LINKEDIN", at="t")
    recording.fold(recorded, event)
    first = dict(recorded.accounts)
    recording.fold(recorded, event)
    assert recorded.accounts == first


def test_plan_of_a_valid_file_imports_no_http_client_nor_jsonschema(write, workdir) -> None:
    """Start-up cost (BENCHMARKS.md): pycurl, orjson and jsonschema load only where they are used."""
    write("a.yaml", fleet(3))
    imported = modules_after(workdir, ["plan", "a.yaml"])
    heavy = ("pycurl", "orjson", "aiohttp", "jsonschema", "deepdiff")
    assert sorted(m for m in heavy if m in imported) == []


def test_the_pointer_to_the_file_state_is_a_command_to_paste() -> None:
    """The file state in the working directory: a `state migrate` command with both locations shell-quoted, the
    password `***` to fill in; a saved plan, which names no location, says what to put in place of STATE."""
    from reconciler.escape import code_span
    from reconciler.model import Elsewhere

    url = "postgresql://u:***@db.example.com/state?schema=reconciler&workspace=production"
    assert Elsewhere("file", ".reconciler/state.json", 3, 4, here=url).refusal() == (
        "this state holds no accounts, but the file state '.reconciler/state.json' in the working directory holds 3 "
        "of the 4 accounts to create: copy it here with reconciler state migrate --from .reconciler/state.json "
        f"--to '{url}' (with the password in place of ***)"
    )
    saved = Elsewhere.from_json(Elsewhere("file", ".reconciler/state.json", 3, 4, here=url).to_json())
    assert saved.refusal(code_span, code_span).endswith(
        "copy it here with `reconciler state migrate --from .reconciler/state.json --to STATE`, STATE being this "
        "state"
    )


def test_libpq_lines_are_joined_as_sentences() -> None:
    from reconciler.state.postgres.database import one_line

    text = (
        'connection failed: connection to server at "10.0.0.1", port 5432 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?\n"
        'connection to server at "10.0.0.2", port 5432 failed: timeout expired\n'
        "multiple hosts tried\n"
    )
    assert one_line(text) == (
        'connection failed: connection to server at "10.0.0.1", port 5432 failed: Connection refused. Is the '
        'server running on that host and accepting TCP/IP connections? connection to server at "10.0.0.2", port '
        "5432 failed: timeout expired; multiple hosts tried"
    )
