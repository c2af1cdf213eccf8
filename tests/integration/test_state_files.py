"""The file state's files: never opened through a planted link, and a damaged state is one line, never a traceback."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from reconciler import fsutil
from reconciler.model import AccountRecord, Recorded
from reconciler.state.file.backend import FileBackend
from tests.helpers import fleet

PRECIOUS = "a file of the user's that a link points at\n"


@pytest.fixture
def victim(workdir: Path) -> Path:
    path = workdir / "elsewhere" / "precious.txt"
    path.parent.mkdir()
    path.write_text(PRECIOUS)
    return path


def _one_line(err: str) -> bool:
    return len(err.strip().splitlines()) == 1 and "Traceback" not in err


# -- links ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("explicit", [False, True])
def test_a_lock_file_that_is_a_link_is_refused_and_its_target_kept(
    run, write, workdir, victim, explicit
) -> None:
    write("a.yaml", fleet(2))
    (workdir / ".reconciler").mkdir()
    (workdir / ".reconciler/state.json.lock").symlink_to(victim)
    state = ["--state", ".reconciler/state.json"] if explicit else []
    result = run("import", "a.yaml", *state)
    assert result.code == 1 and _one_line(result.err), result.err
    assert "state.json.lock: the lock file is a symbolic link; refusing to use it" in result.err
    assert victim.read_text() == PRECIOUS
    assert not (workdir / ".reconciler/state.json").exists()


def test_a_lock_file_with_another_hard_link_is_refused(run, write, workdir, victim) -> None:
    write("a.yaml", fleet(2))
    (workdir / ".reconciler").mkdir()
    os.link(victim, workdir / ".reconciler/state.json.lock")
    result = run("import", "a.yaml")
    assert result.code == 1 and "has other hard links" in result.err and _one_line(result.err), result.err
    assert victim.read_text() == PRECIOUS


def test_the_lock_file_is_never_truncated(run, write, workdir) -> None:
    """The holder is written over the first line and blanked on release; the file never shrinks."""
    write("a.yaml", fleet(2))
    lock = workdir / ".reconciler/state.json.lock"
    lock.parent.mkdir()
    lock.write_text("x" * 500 + "\n")
    assert run("import", "a.yaml").code == 0
    content = lock.read_text()
    assert len(content) == 501 and content.endswith("x" * 100 + "\n")


def test_a_default_state_path_that_is_a_link_is_refused(run, write, workdir, victim) -> None:
    write("a.yaml", fleet(2))
    (workdir / ".reconciler").mkdir()
    (workdir / ".reconciler/state.json").symlink_to(victim)
    for command in (("plan", "a.yaml"), ("import", "a.yaml"), ("state", "list")):
        result = run(*command)
        assert result.code == 1 and _one_line(result.err), result.err
        assert "the default state file is a symbolic link" in result.err and "--state" in result.err
    assert victim.read_text() == PRECIOUS


def test_a_default_state_directory_that_is_a_link_is_refused(run, write, workdir, victim) -> None:
    write("a.yaml", fleet(2))
    (workdir / ".reconciler").symlink_to(victim.parent)
    result = run("import", "a.yaml")
    assert result.code == 1 and "the default state's directory is a symbolic link" in result.err, result.err
    assert sorted(p.name for p in victim.parent.iterdir()) == ["precious.txt"]


def test_an_explicit_state_link_is_followed_and_said(run, write, workdir) -> None:
    """Named by the user, a link is followed: the state, its journal and its lock live beside the target."""
    write("a.yaml", fleet(2))
    real = workdir / "real" / "state.json"
    real.parent.mkdir()
    (workdir / "link.json").symlink_to(real)
    result = run("import", "a.yaml", "--state", "link.json")
    assert result.code == 0, result.err
    assert f"note: the state link.json is a symbolic link to {real}; using {real}" in result.err
    assert (workdir / "link.json").is_symlink() and json.loads(real.read_text())["serial"] == 1
    assert (real.parent / "state.json.lock").exists() and not (workdir / "link.json.lock").exists()
    listed = run("state", "list", "--state", "link.json")
    assert listed.code == 0 and len(listed.out.splitlines()) == 2


def test_a_journal_that_is_a_link_is_refused(run, write, workdir, victim) -> None:
    write("a.yaml", fleet(2))
    assert run("import", "a.yaml").code == 0
    (workdir / ".reconciler/state.json.journal").symlink_to(victim)
    for command in (("plan", "a.yaml"), ("import", "a.yaml")):
        result = run(*command)
        assert result.code == 1 and _one_line(result.err), result.err
        assert "state.json.journal: the journal is a symbolic link; refusing to follow it" in result.err
    assert victim.read_text() == PRECIOUS


def test_plan_out_never_writes_through_a_planted_temporary(run, write, workdir, victim) -> None:
    write("a.yaml", fleet(2))
    (workdir / ".p.plan.tmp").symlink_to(victim)  # the temporary's name before names were unique
    assert run("plan", "a.yaml", "--out", "p.plan").code == 0
    assert victim.read_text() == PRECIOUS
    assert json.loads((workdir / "p.plan").read_text())["kind"] == "reconciler-saved-plan"
    assert (workdir / "p.plan").stat().st_mode & 0o777 == 0o600


def test_a_temporary_is_created_exclusively(workdir, victim, monkeypatch) -> None:
    """Even a link planted at the very name chosen for the temporary is not written through."""
    planted = workdir / ".target.tmp"
    planted.symlink_to(victim)
    monkeypatch.setattr(fsutil, "temporary_name", lambda path: planted)
    with pytest.raises(OSError) as caught:
        fsutil.replace_atomically(workdir / "target", b"new content")
    assert caught.value.errno == errno.EEXIST and caught.value.filename == str(workdir / "target")
    assert victim.read_text() == PRECIOUS and not (workdir / "target").exists()


# -- damaged documents -------------------------------------------------------------------------------------------
def _state(**changes: object) -> dict[str, object]:
    record = {
        "settings": {"country": "US"},
        "applied_at": "2026-01-01T00:00:00.000Z",
        "resync_generation": 0,
        "resynced_at": None,
        "last_failure": None,
        "provider": None,
    }
    document: dict[str, object] = {
        "format_version": 1,
        "lineage": str(uuid.uuid4()),
        "serial": 3,
        "salt": "00" * 16,
        "accounts": {"acc_0000": record},
    }
    for key, value in changes.items():
        if key.startswith("record_"):
            record[key.removeprefix("record_")] = value
        else:
            document[key] = value
    return document


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (json.dumps(_state(salt=5)), "salt must be a string, not an integer"),
        (
            json.dumps(_state(serial=3)).replace('"serial": 3', '"serial": 1e400'),
            "serial must be an integer, not inf",
        ),
        (json.dumps(_state(serial=-1)), "serial must be at least 0, not -1"),
        (json.dumps(_state(lineage=None)), "lineage must be a string, not null"),
        (json.dumps(_state(accounts=None)), "accounts must be a mapping, not null"),
        (json.dumps(_state(accounts=[])), "accounts must be a mapping, not a list"),
        (json.dumps({k: v for k, v in _state().items() if k != "salt"}), 'the document has no "salt"'),
        (json.dumps([1, 2]), "the document must be a mapping, not a list"),
        (
            json.dumps(_state(record_last_failure="x")),
            'accounts["acc_0000"].last_failure must be a mapping or null',
        ),
        (
            json.dumps(_state(record_last_failure={"operation": "delete"})),
            'accounts["acc_0000"].last_failure.operation must be one of "patch", "resync", not \'delete\'',
        ),
        (
            json.dumps(_state(record_resync_generation="3")),
            'accounts["acc_0000"].resync_generation must be an integer',
        ),
        (json.dumps(_state(record_settings=[1])), 'accounts["acc_0000"].settings must be a mapping or null'),
        (json.dumps(_state(accounts={"acc_0000": None})), 'accounts["acc_0000"] must be a mapping, not null'),
        ("[" * 100_000, "is not a reconciler state"),
    ],
)
def test_a_damaged_state_file_is_one_line(run, write, workdir, text: str, message: str) -> None:
    write("a.yaml", fleet(1))
    (workdir / "state.json").write_text(text)
    for command in (("plan", "a.yaml"), ("state", "list"), ("import", "a.yaml")):
        result = run(*command, "--state", "state.json")
        assert result.code == 1 and _one_line(result.err), result.err
        assert result.err.startswith("Error: state.json: ") and message in result.err, result.err
    assert (workdir / "state.json").read_text() == text  # nothing written over it


def test_a_damaged_journal_event_is_one_line(run, write, workdir) -> None:
    write("a.yaml", fleet(1))
    document = _state()
    (workdir / "state.json").write_text(json.dumps(document))
    header = {"journal": 1, "lineage": document["lineage"], "base_serial": 3}
    events = [
        {"op": "resynced", "id": "acc_0000", "generation": "two", "at": "t"},
        {"op": "forget", "id": "x"},
    ]
    (workdir / "state.json.journal").write_text(
        "\n".join(json.dumps(line) for line in [header, *events]) + "\n"
    )
    result = run("plan", "a.yaml", "--state", "state.json")
    assert result.code == 1 and _one_line(result.err), result.err
    assert "state.json.journal:2: 'resynced' event without a valid generation" in result.err


def test_a_large_valid_state_loads_without_jsonschema(workdir) -> None:
    """The happy path stays cheap: 20,000 accounts load through the plain check, jsonschema is not imported."""
    document = _state()
    record = document["accounts"]["acc_0000"]  # type: ignore[index]
    document["accounts"] = {f"acc_{i:05d}": record for i in range(20_000)}
    (workdir / "state.json").write_text(json.dumps(document))
    probe = (
        "import sys\nfrom reconciler.state import open_backend\n"
        "recorded = open_backend('state.json').read()\n"
        "print(len(recorded.accounts), 'jsonschema' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=workdir, capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == ["20000", "False"]


def test_the_state_is_written_in_ascii_whatever_it_holds(workdir) -> None:
    """orjson writes a state's lines where its bytes are the json module's; anything else is left to the json
    module: text outside ASCII, DEL, floats (a state edited by hand), integers beyond 64 bits."""
    awkward = {
        "plain": AccountRecord(settings={"country": "US"}, applied_at="2026-01-01T00:00:00Z"),
        "acc_é☃": AccountRecord(
            last_failure={
                "operation": "patch",
                "error_type": "x",
                "http_status": 400,
                "message": "é \u202e \x1b",
            }
        ),
        "del": AccountRecord(settings={"proxy": {"host": "proxy\x7f.example", "port": 1}}),
        "floats": AccountRecord(
            settings={"a": 1e16, "b": {"c": 1e-05, "d": float("nan"), "e": float("inf")}}
        ),
        "huge": AccountRecord(resync_generation=2**70),
    }
    backend = FileBackend(workdir / "state.json")
    with backend.lock():
        backend.write(Recorded(lineage="l", serial=1, salt="s" * 32, accounts=dict(awkward)))
    raw = (workdir / "state.json").read_bytes()
    assert raw.isascii() and b"\x7f" not in raw
    encode = json.JSONEncoder(separators=(",", ":")).encode
    lines = {line.rstrip(b",") for line in raw.splitlines()}
    for key, record in awkward.items():
        assert f"  {encode(key)}: {encode(record.to_json())}".encode() in lines
    assert list(json.loads(raw)["accounts"]) == sorted(awkward)


# -- kept out of git ------------------------------------------------------------------------------------------------
def _untracked(workdir: Path) -> list[str]:
    listing = ["git", "status", "--porcelain", "--untracked-files=all"]
    return subprocess.run(
        listing, cwd=workdir, capture_output=True, text=True, check=True
    ).stdout.splitlines()


def test_the_directory_reconciler_makes_keeps_itself_out_of_git(run, write, workdir) -> None:
    subprocess.run(["git", "init", "-q"], cwd=workdir, check=True)
    write("a.yaml", fleet(2))
    assert run("apply", "a.yaml", "--sandbox", "--yes").code == 0  # .reconciler/sandbox-state.json
    assert run("import", "a.yaml").code == 0  # .reconciler/state.json, in the directory made above
    ignore = workdir / ".reconciler" / ".gitignore"
    assert "*" in ignore.read_text().splitlines()
    assert sorted(p.name for p in ignore.parent.iterdir()) == [
        ".gitignore",
        "sandbox-state.json",
        "sandbox-state.json.lock",
        "state.json",
        "state.json.lock",
    ]
    assert _untracked(workdir) == ["?? a.yaml"]


def test_a_directory_reconciler_did_not_make_gets_no_gitignore(run, write, workdir) -> None:
    """A `.reconciler/` that is there already is the user's to arrange (a state kept in git on purpose, say);
    another directory made for a state named with --state is not reconciler's own."""
    write("a.yaml", fleet(2))
    write(".reconciler/notes.txt", "mine\n")
    assert run("import", "a.yaml").code == 0
    assert not (workdir / ".reconciler" / ".gitignore").exists()
    assert run("import", "a.yaml", "--state", "states/state.json").code == 0
    assert sorted(p.name for p in (workdir / "states").iterdir()) == ["state.json", "state.json.lock"]
