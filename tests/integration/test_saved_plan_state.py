"""A saved plan names the state it was made against; `apply --plan` uses that state or says which it expects, and
no refusal leaves a lock file (or a state directory) behind."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from reconciler.errors import LockHeld
from reconciler.state import open_backend
from reconciler.state.file.backend import FileBackend
from tests.helpers import (
    SENTINEL_KEY,
    SENTINEL_PASSWORD,
    assert_no_secrets,
    fresh_postgres_state,
    wait_until,
)

CONFIG = """
version: 1
accounts:
  acc_a:
    proxy: {host: p.example.com, port: 8080, username: u, password: "${PROXY_PASSWORD}"}
  acc_b: {country: US}
"""
DB_SECRET = "dbpw-SENTINEL-4b7e21"


def _document(path: str = "plan.bin") -> dict:
    return json.loads(Path(path).read_text())


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.fixture
def pg_state(workdir):
    """A fresh PostgreSQL state URL (workspace `prod`) whose userinfo carries a password: the test database
    trusts its clients, so the password is ignored, but it must never show."""
    with fresh_postgres_state("prod") as url:
        user, at, host = urlsplit(url).netloc.rpartition("@")
        assert at and ":" not in user, "the test database's URL names a user and no password"
        yield url.replace(f"//{user}@", f"//{user}:{DB_SECRET}@", 1)


def _schema(url: str) -> str:
    return url.split("schema=")[1].split("&")[0]


def _described(url: str) -> str:
    """How a message names the PostgreSQL state of `url` (the test database's URL gives host, port, database)."""
    parts = urlsplit(url)
    return (
        f"postgresql {parts.hostname}:{parts.port}, database {parts.path.lstrip('/')}, schema {_schema(url)}, "
        "workspace prod"
    )


# -- what a saved plan records ----------------------------------------------------------------------------------


def test_a_saved_plan_names_its_file_state_relative_to_the_working_directory(run, write, workdir) -> None:
    write("a.yaml", CONFIG)
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    assert _document()["state"] == {"kind": "file", "path": ".reconciler/state.json"}
    assert run("plan", "a.yaml", "--state", str(workdir / "states" / "s.json"), "--out", "plan.bin").code == 0
    assert _document()["state"] == {"kind": "file", "path": "states/s.json"}
    assert run("plan", "a.yaml", "--state", "file://./states/../s.json", "--out", "plan.bin").code == 0
    assert _document()["state"] == {"kind": "file", "path": "s.json"}
    outside = workdir.parent / f"{workdir.name}-outside" / "s.json"
    assert run("plan", "a.yaml", "--state", str(outside), "--out", "plan.bin").code == 0
    assert _document()["state"] == {"kind": "file", "path": str(outside)}
    assert _document()["format_version"] == 3


def test_a_saved_plan_names_its_postgres_state_without_user_or_password(
    run, write, workdir, pg_state
) -> None:
    write("a.yaml", CONFIG)
    # Every place a URL may carry a password: the userinfo, and the password parameters libpq reads.
    url = f"{pg_state}&sslmode=disable&password={DB_SECRET}&sslpassword={DB_SECRET}"
    planned = run("plan", "a.yaml", "--state", url, "--out", "plan.bin")
    assert planned.code == 0, planned.err
    parts = urlsplit(pg_state)
    assert _document()["state"] == {
        "kind": "postgresql",
        "host": parts.hostname,
        "port": str(parts.port),
        "service": None,
        "database": parts.path.lstrip("/"),
        "schema": _schema(pg_state),
        "workspace": "prod",
    }
    saved = Path("plan.bin").read_text()
    assert f"{parts.username}@" not in saved and f"{parts.username}:" not in saved and "sslmode" not in saved
    assert_no_secrets(
        files=workdir, secrets=(DB_SECRET, SENTINEL_PASSWORD), texts={"out": planned.out + planned.err}
    )


# -- which state apply --plan uses ------------------------------------------------------------------------------


def test_apply_plan_without_state_uses_the_file_state_the_plan_names(run, write, api, workdir) -> None:
    write("a.yaml", CONFIG)
    assert run("plan", "a.yaml", "--state", "states/s.json", "--out", "plan.bin").code == 0
    applied = run("apply", "--plan", "plan.bin", "--yes")
    assert applied.code == 0, applied.err
    assert "state states/s.json." in applied.err
    assert set(json.loads(Path("states/s.json").read_text())["accounts"]) == {"acc_a", "acc_b"}
    assert not Path(".reconciler").exists()
    assert set(api.stats.patches) == {"acc_a", "acc_b"}


def test_the_reported_case_a_postgres_plan_applied_without_state(run, write, api, workdir, pg_state) -> None:
    """plan --state postgresql://... --out, then apply --plan without --state: one line naming the state the
    plan expects, not "stale"; nothing sent, no file state or lock made; with --state, it applies."""
    write("a.yaml", CONFIG)
    assert run("import", "a.yaml", "--state", pg_state).code == 0
    write("a.yaml", CONFIG.replace("country: US", "country: DE"))
    assert run("plan", "a.yaml", "--state", pg_state, "--out", "plan500.bin").code == 0
    lineage = _document("plan500.bin")["lineage"]
    refused = run("apply", "--plan", "plan500.bin", "--yes")
    assert refused.code == 1 and _one_line(refused.err), refused.err
    assert refused.err == (
        f"Error: this plan was made against {_described(pg_state)} (lineage {lineage}); give that state's URL "
        "with --state or RECONCILER_STATE (apply connects to no database on a saved plan's word)\n"
    )
    assert "stale" not in refused.err and "plan again" not in refused.err
    assert not Path(".reconciler").exists() and api.stats.requests == 0
    applied = run("apply", "--plan", "plan500.bin", "--state", pg_state, "--yes")
    assert applied.code == 0, applied.err
    assert api.stats.patched["acc_b"] == {"country": "DE"}
    assert not Path(".reconciler").exists()
    assert_no_secrets(
        refused.err,
        applied.err,
        applied.out,
        files=workdir,
        secrets=(DB_SECRET, SENTINEL_PASSWORD, SENTINEL_KEY),
        postgres=pg_state,
    )


def test_a_postgres_plan_takes_its_state_from_reconciler_state(
    run, write, api, monkeypatch, pg_state
) -> None:
    write("a.yaml", CONFIG)
    assert run("plan", "a.yaml", "--state", pg_state, "--out", "plan.bin").code == 0
    monkeypatch.setenv("RECONCILER_STATE", pg_state)
    applied = run("apply", "--plan", "plan.bin", "--yes")
    assert applied.code == 0, applied.err
    assert set(api.stats.patches) == {"acc_a", "acc_b"}
    assert not Path(".reconciler").exists()


def test_state_given_that_is_not_the_plans_says_which_each_is(run, write, api, monkeypatch, pg_state) -> None:
    write("a.yaml", CONFIG)
    run("import", "a.yaml", "--state", "one.json")
    run("import", "a.yaml", "--state", "two.json")
    one, two = (json.loads(Path(name).read_text())["lineage"] for name in ("one.json", "two.json"))
    write("a.yaml", CONFIG.replace("country: US", "country: DE"))
    assert run("plan", "a.yaml", "--state", "one.json", "--out", "plan.bin").code == 0
    refused = run("apply", "--plan", "plan.bin", "--state", "two.json", "--yes")
    assert refused.code == 1 and refused.err == (
        f"Error: this plan was made against file one.json (lineage {one}); --state names file two.json "
        f"(lineage {two})\n"
    )
    monkeypatch.setenv("RECONCILER_STATE", "two.json")
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1 and refused.err == (
        f"Error: this plan was made against file one.json (lineage {one}); RECONCILER_STATE names file two.json "
        f"(lineage {two})\n"
    )
    monkeypatch.delenv("RECONCILER_STATE")
    # A PostgreSQL plan given a file state: the file is not created, nor its lock.
    assert run("plan", "a.yaml", "--state", pg_state, "--out", "pg.bin").code == 0
    refused = run("apply", "--plan", "pg.bin", "--state", "states/new.json", "--yes")
    assert refused.code == 1 and refused.err == (
        f"Error: this plan was made against {_described(pg_state)} (no state yet); --state names file "
        "states/new.json (no state yet)\n"
    )
    assert not Path("states").exists() and api.stats.requests == 0
    assert DB_SECRET not in refused.err


def test_a_plan_against_no_state_is_not_applied_to_another_empty_state(run, write, api) -> None:
    write("a.yaml", CONFIG)
    assert run("plan", "a.yaml", "--state", "one.json", "--out", "plan.bin").code == 0
    refused = run("apply", "--plan", "plan.bin", "--state", "two.json", "--yes")
    assert refused.code == 1 and refused.err == (
        "Error: this plan was made against file one.json (no state yet); --state names file two.json "
        "(no state yet)\n"
    )
    assert api.stats.requests == 0 and not Path("two.json").exists() and not Path("two.json.lock").exists()


def test_the_same_state_named_otherwise_is_the_same_state(run, write, api, workdir) -> None:
    """The lineage identifies a state: an absolute path, or a link to it, names the state the plan was made
    against."""
    write("a.yaml", CONFIG)
    run("import", "a.yaml", "--state", "s.json")
    write("a.yaml", CONFIG.replace("country: US", "country: DE"))
    assert run("plan", "a.yaml", "--state", "s.json", "--out", "plan.bin").code == 0
    Path("link.json").symlink_to(workdir / "s.json")
    applied = run("apply", "--plan", "plan.bin", "--state", "link.json", "--yes")
    assert applied.code == 0, applied.err
    assert api.stats.patched["acc_b"] == {"country": "DE"}


def _lineage_and_serial(path: str = ".reconciler/state.json") -> tuple[str, int]:
    state = json.loads(Path(path).read_text())
    return state["lineage"], state["serial"]


def test_a_state_created_since_the_plan_is_stale(run, write, api) -> None:
    write("a.yaml", CONFIG)
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    assert run("apply", "a.yaml", "--yes", "--target", "acc_b").code == 0  # creates the state
    lineage, serial = _lineage_and_serial()
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1 and refused.err == (
        f"Error: saved plan is stale: the state file .reconciler/state.json was created since it was made "
        f"(lineage {lineage}, serial {serial}); run plan again\n"
    )


def test_a_state_moved_since_the_plan_is_stale(run, write, api) -> None:
    write("a.yaml", CONFIG)
    run("import", "a.yaml", "--target", "acc_a")
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    planned = _lineage_and_serial()[1]
    assert run("apply", "a.yaml", "--yes", "--target", "acc_b").code == 0
    now = _lineage_and_serial()[1]
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1 and refused.err == (
        f"Error: saved plan is stale: the state moved since it was made (serial {planned} -> {now}); run plan "
        "again\n"
    )


def test_a_state_replaced_since_the_plan_says_so_not_stale(run, write, api) -> None:
    write("a.yaml", CONFIG)
    run("import", "a.yaml")
    old = json.loads(Path(".reconciler/state.json").read_text())["lineage"]
    write("a.yaml", CONFIG.replace("country: US", "country: DE"))
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    Path(".reconciler/state.json").unlink()
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1 and refused.err == (
        f"Error: this plan was made against file .reconciler/state.json (lineage {old}), but there is no state "
        "there now; give --state where that state is, or plan again\n"
    )
    run("import", "a.yaml")
    new = json.loads(Path(".reconciler/state.json").read_text())["lineage"]
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1 and refused.err == (
        f"Error: this plan was made against file .reconciler/state.json (lineage {old}), but the state there now "
        f"has lineage {new} (it was replaced since); give --state where the planned state is, or plan again "
        "against this one\n"
    )
    assert "stale" not in refused.err and api.stats.requests == 0


def test_a_plan_naming_a_file_outside_the_working_directory_needs_state(
    run, write, api, workdir, monkeypatch
) -> None:
    """A saved plan may come from anyone: apply writes no file outside the working directory on its word."""
    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    inside = workdir / "checkout"
    inside.mkdir()
    (inside / "a.yaml").write_text(CONFIG)
    monkeypatch.chdir(inside)
    assert run("plan", "a.yaml", "--state", "../elsewhere/s.json", "--out", "plan.bin").code == 0
    assert _document()["state"] == {"kind": "file", "path": "../elsewhere/s.json"}
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1 and refused.err == (
        "Error: this plan was made against file ../elsewhere/s.json (no state yet); give that state with "
        "--state or RECONCILER_STATE (apply uses a state named by a saved plan only inside the working "
        "directory)\n"
    )
    assert list(elsewhere.iterdir()) == [] and not Path(".reconciler").exists()
    applied = run("apply", "--plan", "plan.bin", "--state", "../elsewhere/s.json", "--yes")
    assert applied.code == 0, applied.err
    assert (elsewhere / "s.json").exists()


def test_a_plans_state_that_is_a_link_is_not_followed(run, write, api, workdir) -> None:
    """As the default state: a link committed into the checkout cannot redirect apply's writes."""
    write("a.yaml", CONFIG)
    assert run("plan", "a.yaml", "--state", "s.json", "--out", "plan.bin").code == 0
    victim = workdir.parent / f"{workdir.name}-victim.json"
    Path("s.json").symlink_to(victim)
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1 and _one_line(refused.err), refused.err
    assert f"s.json: the saved plan's state file is a symbolic link (to {victim}); refusing" in refused.err
    assert not victim.exists() and api.stats.requests == 0


def test_a_sandbox_plan_applies_only_with_sandbox(run, write, api) -> None:
    write("a.yaml", CONFIG)
    assert run("plan", "a.yaml", "--sandbox", "--out", "plan.bin").code == 0
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1 and refused.err == (
        "Error: this plan was made against file .reconciler/sandbox-state.json (no state yet), the sandbox's "
        "state; apply it with --sandbox\n"
    )
    assert api.stats.requests == 0 and not Path(".reconciler").exists()
    # And a plan of the real state is not applied to the sandbox's.
    assert run("plan", "a.yaml", "--out", "real.bin").code == 0
    refused = run("apply", "--plan", "real.bin", "--sandbox", "--yes")
    assert refused.code == 1 and refused.err == (
        "Error: this plan was made against file .reconciler/state.json (no state yet); --sandbox uses file "
        ".reconciler/sandbox-state.json (no state yet)\n"
    )
    assert not Path(".reconciler").exists()


# -- no refusal leaves a lock file -------------------------------------------------------------------------------


def _no_change(run, write, monkeypatch) -> None:
    write("a.yaml", "version: 1\naccounts: {}\n")


def _wrong_state(run, write, monkeypatch) -> None:
    assert run("plan", "a.yaml", "--state", "other.json", "--out", "plan.bin").code == 0
    monkeypatch.setenv("RECONCILER_STATE", ".reconciler/state.json")


def _stale_config(run, write, monkeypatch) -> None:
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    write("a.yaml", CONFIG.replace("country: US", "country: DE"))


def _stale_secret(run, write, monkeypatch) -> None:
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    monkeypatch.setenv("PROXY_PASSWORD", "another-password")


def _unset_variable(run, write, monkeypatch) -> None:
    monkeypatch.delenv("PROXY_PASSWORD")


def _no_terminal(run, write, monkeypatch) -> None:
    pass  # apply without --yes, on no terminal


@pytest.mark.parametrize(
    ("prepare", "args", "said"),
    [
        (_wrong_state, ("--plan", "plan.bin", "--yes"), "RECONCILER_STATE names file .reconciler/state.json"),
        (_stale_config, ("--plan", "plan.bin", "--yes"), "the configuration a.yaml differs"),
        (_stale_secret, ("--plan", "plan.bin", "--yes"), "the secrets resolved now differ"),
        (_unset_variable, ("a.yaml", "--yes"), "variable PROXY_PASSWORD is not set or empty"),
        (_no_terminal, ("a.yaml",), "refusing to apply without --yes"),
        (_no_change, ("a.yaml", "--yes"), None),
    ],
)
def test_a_refused_apply_leaves_no_lock_file(
    run, write, api, workdir, monkeypatch, prepare, args, said
) -> None:
    write("a.yaml", CONFIG)
    prepare(run, write, monkeypatch)
    result = run("apply", *args)
    if said is None:
        assert result.code == 0 and "No changes" in result.err, result.err
    else:  # the refusal is the last line (without --yes, the plan is shown first)
        last = result.err.strip().splitlines()[-1]
        assert result.code == 1 and last.startswith("Error: ") and said in last, result.err
        assert "Traceback" not in result.err
    assert api.stats.requests == 0
    assert not Path(".reconciler").exists(), sorted(map(str, Path(".reconciler").rglob("*")))
    assert set(os.listdir()) <= {"a.yaml", "plan.bin"}


def test_no_api_key_leaves_no_lock_file(run, write, workdir, monkeypatch) -> None:
    write("a.yaml", CONFIG)
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    result = run("apply", "--plan", "plan.bin", "--yes")
    assert result.code == 1 and "POSTPRESS_API_KEY" in result.err, result.err
    assert not Path(".reconciler").exists()


def test_a_refusal_keeps_the_lock_file_and_directory_of_a_state_that_exists(run, write, api) -> None:
    write("a.yaml", CONFIG)
    run("import", "a.yaml")
    write("a.yaml", CONFIG.replace("country: US", "country: DE"))
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    write("a.yaml", CONFIG.replace("country: US", "country: FR"))
    assert run("apply", "--plan", "plan.bin", "--yes").code == 1
    assert sorted(p.name for p in Path(".reconciler").iterdir()) == [
        ".gitignore",
        "state.json",
        "state.json.lock",
    ]


def test_a_refusal_keeps_a_directory_that_holds_something_else(run, write, api) -> None:
    write("a.yaml", CONFIG)
    write(".reconciler/notes.txt", "mine\n")
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    write("a.yaml", CONFIG.replace("country: US", "country: DE"))
    assert run("apply", "--plan", "plan.bin", "--yes").code == 1
    assert sorted(p.name for p in Path(".reconciler").iterdir()) == ["notes.txt"]


def test_the_second_apply_refused_by_a_held_lock_leaves_nothing_once_the_holder_is_done(
    run, write, api, workdir
) -> None:
    write("a.yaml", CONFIG)
    with FileBackend(Path(".reconciler/state.json")).lock(command="apply"):
        refused = run("apply", "a.yaml", "--yes")
        assert refused.code == 1 and "is locked by apply (pid" in refused.err
        assert Path(".reconciler/state.json.lock").exists()  # the holder's
    assert not Path(".reconciler").exists()


def test_a_waiter_on_a_removed_lock_file_takes_the_lock_at_its_name(workdir) -> None:
    """The holder of a lock on no state removes the lock file before it lets go of its flock. A second locker
    already waiting on that file then holds a flock on a file without a name: it must open the lock file again,
    so that a third locker, which opens the name, cannot take the lock at the same time."""
    path = workdir / "s" / "state.json"
    first, second, third = FileBackend(path), FileBackend(path), FileBackend(path)
    entered, release, holding = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def wait_for_the_lock() -> None:
        try:
            entered.set()
            with second.lock(timeout=30):
                holding.set()
                release.wait(30)
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    def waiter_has_the_file_open() -> bool:
        """Another descriptor than the holder's is open on the lock file: the waiter polls its flock."""
        for name in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError):
                if int(name) != first._lock_fd and os.readlink(f"/proc/self/fd/{name}") == str(
                    first.lock_path
                ):
                    return True
        return False

    with first.lock():
        waiter = threading.Thread(target=wait_for_the_lock)
        waiter.start()
        entered.wait(5)
        wait_until(waiter_has_the_file_open, what="the waiter to open the lock file")
    assert holding.wait(10), errors
    try:
        held = os.stat(second.lock_path)  # the waiter's lock file has the name
        assert held.st_nlink == 1
        with pytest.raises(LockHeld), third.lock(timeout=0):
            pass
    finally:
        release.set()
        waiter.join(10)
    assert not errors
    assert not path.parent.exists()  # the last holder, on no state, removed the lock file and its directory


def test_open_backend_names_a_plans_state_as_such(workdir) -> None:
    Path("link.json").symlink_to(workdir / "target.json")
    with pytest.raises(Exception, match="link.json: the saved plan's state file is a symbolic link"):
        open_backend("link.json", False, "the saved plan's state")


@pytest.mark.parametrize(
    ("path", "said"),
    [
        (".", ".: a state is a file, and this path names a directory"),
        ("sub/..", "sub/..: a state is a file, and this path names a directory"),
        (".git/index", ".git/index: the state file is not a reconciler state"),
    ],
)
def test_a_plan_naming_something_that_is_not_a_state_is_one_line_and_leaves_no_lock(
    run, write, api, path, said
) -> None:
    """A lock file beside a file that is not a state (`.git/index.lock` would stop git) is not left behind."""
    write("a.yaml", CONFIG)
    write(".git/index", "not a state\n")
    assert run("plan", "a.yaml", "--out", "plan.bin").code == 0
    document = _document()
    document["state"]["path"] = path
    Path("plan.bin").write_text(json.dumps(document))
    refused = run("apply", "--plan", "plan.bin", "--yes")
    assert refused.code == 1 and _one_line(refused.err) and said in refused.err, refused.err
    assert sorted(os.listdir(".git")) == ["index"] and api.stats.requests == 0
