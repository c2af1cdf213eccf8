"""Saved plans: no per-secret fingerprint, portable between checkouts, checked when loaded, shown offline;
and the optional fingerprint key of the state."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
from pathlib import Path

import pytest

from reconciler.model import AccountRecord, Recorded
from reconciler.state.file.backend import FileBackend
from tests.helpers import SENTINEL_PASSWORD

CONFIG = """
version: 1
accounts:
  acc_a:
    provider: LINKEDIN
    proxy: {host: p.example.com, port: 8080, username: u, password: "${PROXY_PASSWORD}"}
  acc_b: {country: US}
"""
STATE = ".reconciler/state.json"


def _hmac(value: str, salt: str) -> str:
    return hmac.new(salt.encode(), value.encode(), hashlib.sha256).hexdigest()


def test_saved_plan_holds_no_salt_and_no_per_secret_fingerprint(run, write, monkeypatch) -> None:
    write("a.yaml", CONFIG)
    assert run("plan", "a.yaml", "--out", "new.plan").code == 0  # against no state yet
    run("import", "a.yaml")
    monkeypatch.setenv("PROXY_PASSWORD", "rotated-password")
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    salt = json.loads(Path(STATE).read_text())["salt"]
    for name in ("new.plan", "plan.bin"):
        saved = Path(name).read_text()
        assert "sha256:" not in saved and salt not in saved
        for secret in (SENTINEL_PASSWORD, "rotated-password"):
            assert secret not in saved and _hmac(secret, salt) not in saved
    document = json.loads(Path("plan.bin").read_text())
    assert "salt" not in document
    assert document["secrets"]["digest"].startswith("scrypt:") and document["secrets"]["nonce"] is None
    (change,) = document["changes"]
    assert change["fields"] == ["proxy.password"]
    assert change["before"]["proxy"]["password"] == change["after"]["proxy"]["password"] == "(sensitive)"
    assert json.loads(Path("new.plan").read_text())["secrets"]["nonce"]  # no state: a nonce keys the digest


def test_apply_plan_refuses_when_the_secrets_changed_and_applies_when_not(
    run, write, api, monkeypatch
) -> None:
    write("a.yaml", CONFIG)
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    monkeypatch.setenv("PROXY_PASSWORD", "another-password")
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1 and "the secrets resolved now differ" in refused.err
    assert api.stats.requests == 0
    monkeypatch.setenv("PROXY_PASSWORD", SENTINEL_PASSWORD)
    applied = run("apply", "--plan", "plan.bin", "--yes")
    assert applied.code == 0, applied.err
    assert api.stats.patched["acc_a"]["proxy"]["password"] == SENTINEL_PASSWORD
    # The first apply made the state a salt of its own: the plan's nonce keys nothing in it.
    nonce = json.loads(Path("plan.bin").read_text())["secrets"]["nonce"]
    assert json.loads(Path(STATE).read_text())["salt"] != nonce
    assert run("plan", "a.yaml", "--detailed-exitcode").code == 0


def test_a_secret_moved_to_another_account_is_a_change_of_secrets(run, write, api, monkeypatch) -> None:
    monkeypatch.setenv("OTHER_PASSWORD", "other-secret")
    two = CONFIG + '  acc_c: {proxy: {host: q.example.com, port: 1, password: "${OTHER_PASSWORD}"}}\n'
    write("a.yaml", two)
    run("import", "a.yaml")
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    monkeypatch.setenv("PROXY_PASSWORD", "other-secret")
    monkeypatch.setenv("OTHER_PASSWORD", SENTINEL_PASSWORD)
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1 and "the secrets resolved now differ" in refused.err


def test_show_prints_a_saved_plan_without_state_network_or_secrets(run, write, monkeypatch) -> None:
    write("a.yaml", CONFIG.replace('"${PROXY_PASSWORD}"', "plain-password"))
    planned = {fmt: run("plan", "a.yaml", "--format", fmt, "--out", "plan.bin") for fmt in ("text", "json")}
    markdown = run("plan", "a.yaml", "--format", "markdown", "--out", "plan.bin")
    shutil.rmtree(".reconciler", ignore_errors=True)
    Path("a.yaml").unlink()
    monkeypatch.delenv("PROXY_PASSWORD")
    monkeypatch.setenv("POSTPRESS_API_URL", "http://127.0.0.1:9")  # nothing listens: no request may be made
    for fmt in ("text", "json"):
        shown = run("show", "plan.bin", "--format", fmt)
        assert shown.code == 0 and shown.out == planned[fmt].out
    assert "plaintext proxy password" in run("show", "plan.bin").err
    shown = run("show", "plan.bin", "--format", "markdown")
    assert shown.out.startswith("<!-- reconciler-plan -->")
    assert "Config `a.yaml` against state `.reconciler/state.json` (new state)." in shown.out
    assert "plaintext proxy password" in shown.out
    details = markdown.out[markdown.out.index("<details>") :]
    assert shown.out.endswith(details)
    assert not Path(".reconciler").exists()


def test_plan_made_in_one_checkout_applies_in_another(run, write, api, workdir, monkeypatch) -> None:
    state = str(workdir / "shared-state.json")
    first, second = workdir / "runner-1" / "repo", workdir / "runner-2" / "checkout"
    first.mkdir(parents=True)
    (first / "accounts").mkdir()
    (first / "accounts" / "a.yaml").write_text(CONFIG)
    shutil.copytree(first, second)
    monkeypatch.chdir(first)
    assert run("plan", "accounts", "--state", state, "--out", str(workdir / "plan.bin")).code == 0
    assert json.loads((workdir / "plan.bin").read_text())["config"] == "accounts"
    shutil.rmtree(first)  # the first checkout is gone, as on another CI runner
    monkeypatch.chdir(second)
    applied = run("apply", "--plan", str(workdir / "plan.bin"), "--state", state, "--yes")
    assert applied.code == 0, applied.err
    assert set(api.stats.patches) == {"acc_a", "acc_b"}


def test_plan_of_another_commits_config_is_refused_by_digest(run, write, api, workdir, monkeypatch) -> None:
    write("a.yaml", CONFIG)
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    write("a.yaml", CONFIG.replace("country: US", "country: DE"))
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1 and "the configuration a.yaml differs from the one planned" in refused.err
    assert api.stats.requests == 0


def test_plan_of_another_state_says_so(run, write, api, workdir) -> None:
    write("a.yaml", CONFIG)
    run("import", "a.yaml", "--state", "one.json")
    run("import", "a.yaml", "--state", "two.json")
    write("a.yaml", CONFIG.replace("country: US", "country: DE"))
    assert run("plan", "a.yaml", "--state", "one.json", "--out", "plan.bin").code == 0
    refused = run("apply", "--plan", "plan.bin", "--state", "two.json", "--yes")
    assert refused.code == 1 and "this plan was made against file one.json (lineage " in refused.err
    assert "--state names file two.json (lineage " in refused.err and "stale" not in refused.err
    assert api.stats.requests == 0


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda d: d.pop("serial"), "the document: 'serial' is a required property"),
        (lambda d: d.update(serial=1.5), "serial: 1.5 is not of type 'integer'"),
        (lambda d: d.update(targets=None), "targets: None is not of type 'array'"),
        (
            lambda d: d["changes"][0].update(fields="proxy.host"),
            "changes[0].fields: 'proxy.host' is not of type",
        ),
        (lambda d: d["changes"][0].update(action="delete"), "changes[0].action: 'delete' is not one of"),
        (lambda d: d.update(salt=5), "Additional properties are not allowed ('salt' was unexpected)"),
        (lambda d: d.pop("state"), "the document: 'state' is a required property"),
        (lambda d: d["state"].update(user="ops"), "state: Additional properties are not allowed ('user' was"),
        (lambda d: d.update(state={"kind": "s3"}), "state.kind: 's3' is not one of ['file', 'postgresql']"),
        (
            lambda d: d.update(state={"kind": "postgresql"}),
            "state: 'host' is a required property",
        ),
    ],
)
def test_a_broken_saved_plan_is_one_line(run, write, edit, where) -> None:
    write("a.yaml", CONFIG)
    run("plan", "a.yaml", "--out", "plan.bin")
    document = json.loads(Path("plan.bin").read_text())
    edit(document)
    Path("plan.bin").write_text(json.dumps(document))
    for command in (("show", "plan.bin"), ("apply", "--plan", "plan.bin", "--yes")):
        result = run(*command)
        assert result.code == 1 and "Traceback" not in result.err
        assert result.err.count("\n") == 1 and "plan.bin: not a valid saved plan: " in result.err, result.err
        assert where in result.err, result.err


@pytest.mark.parametrize("version", [1, 2])
def test_a_saved_plan_of_an_old_format_asks_for_a_new_plan(run, write, version) -> None:
    """Format 1 held the salt; format 2 did not name its state."""
    write("plan.bin", json.dumps({"kind": "reconciler-saved-plan", "format_version": version, "salt": "x"}))
    for command in (("show", "plan.bin"), ("apply", "--plan", "plan.bin", "--yes")):
        result = run(*command)
        assert result.code == 1 and result.err == (
            f"Error: plan.bin: a saved plan of format '{version}', this version reads format 3; run plan again\n"
        )
    assert not Path(".reconciler").exists()


# -- the optional fingerprint key -----------------------------------------------------------------------------


def test_a_state_made_before_fingerprint_keys_still_plans_no_changes(run, write, workdir) -> None:
    write("a.yaml", CONFIG)
    backend = FileBackend(workdir / STATE)
    recorded = Recorded("lineage-1", 3, "an-old-salt")
    proxy = {"host": "p.example.com", "port": 8080, "username": "u"}
    proxy["password"] = "sha256:" + _hmac(SENTINEL_PASSWORD, "an-old-salt")
    recorded.accounts["acc_a"] = AccountRecord(settings={"proxy": proxy}, provider="LINKEDIN")
    recorded.accounts["acc_b"] = AccountRecord(settings={"country": "US"})
    with backend.lock():
        backend.open_journal(salt="an-old-salt")[1].close()
        backend.write(recorded)
    result = run("plan", "a.yaml", "--detailed-exitcode")
    assert result.code == 0, result.out


def test_fingerprint_key_makes_state_fingerprints_useless_without_it(run, write, api, monkeypatch) -> None:
    monkeypatch.setenv("RECONCILER_FINGERPRINT_KEY", "a-long-random-key-kept-in-ci")
    write("a.yaml", CONFIG)
    assert run("apply", "a.yaml", "--yes").code == 0
    state = json.loads(Path(STATE).read_text())
    recorded = state["accounts"]["acc_a"]["settings"]["proxy"]["password"]
    assert recorded.startswith("sha256:") and recorded != "sha256:" + _hmac(SENTINEL_PASSWORD, state["salt"])
    assert "a-long-random-key-kept-in-ci" not in Path(STATE).read_text()
    assert run("plan", "a.yaml", "--detailed-exitcode").code == 0
    # Without the key (or with another), the recorded fingerprint matches nothing: the password shows changed.
    monkeypatch.delenv("RECONCILER_FINGERPRINT_KEY")
    unkeyed = run("plan", "a.yaml")
    assert "proxy.password : (sensitive) -> (sensitive)" in unkeyed.out
    # A plan saved with the key is refused when applied without it.
    monkeypatch.setenv("RECONCILER_FINGERPRINT_KEY", "a-long-random-key-kept-in-ci")
    write("a.yaml", CONFIG.replace("country: US", "country: DE"))
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    monkeypatch.setenv("RECONCILER_FINGERPRINT_KEY", "another-key")
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1 and "stale" in refused.err
    monkeypatch.setenv("RECONCILER_FINGERPRINT_KEY", "a-long-random-key-kept-in-ci")
    assert run("apply", "--plan", "plan.bin", "--yes").code == 0
