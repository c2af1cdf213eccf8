"""Shared fixtures: the real CLI in-process, a real sandbox server over loopback, small configs inline."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.sandbox import Sandbox, SandboxAccount, ServerThread

SENTINEL_PASSWORD = "pw-SENTINEL-7f3a9c"
SENTINEL_KEY = "key-SENTINEL-51d2e8"


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def json(self) -> object:
        return json.loads(self.out)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in (
        "POSTPRESS_API_KEY",
        "POSTPRESS_API_URL",
        "RECONCILER_STATE",
        "GITHUB_ACTIONS",
        "GITHUB_STEP_SUMMARY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PROXY_PASSWORD", SENTINEL_PASSWORD)
    return tmp_path


@pytest.fixture
def run(workdir: Path, capsys: pytest.CaptureFixture[str]):
    """Run the real CLI entry point in-process; return its exit code and output."""

    def invoke(*args: str) -> Outcome:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def write(workdir: Path):
    """Write a dedented text file under the working directory and return its name."""

    def writer(name: str, text: str) -> str:
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return name

    return writer


@pytest.fixture
def server() -> Iterator[ServerThread]:
    """A sandbox on an ephemeral loopback port, with the sentinel API key; tests reconfigure `.sandbox`."""
    sandbox = Sandbox(SENTINEL_KEY, accept_any_account=True, sync_polls=1)
    thread = ServerThread(sandbox).start()
    yield thread
    thread.stop()


@pytest.fixture
def api(server: ServerThread, monkeypatch: pytest.MonkeyPatch) -> Sandbox:
    """The environment of an apply against the sandbox fixture; returns the Sandbox to script and inspect."""
    monkeypatch.setenv("POSTPRESS_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv("POSTPRESS_API_URL", server.url)
    return server.sandbox


def accounts(**providers: str) -> dict[str, SandboxAccount]:
    return {account_id: SandboxAccount(provider) for account_id, provider in providers.items()}


PG_URL = __import__("os").environ.get("RECONCILER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _postgres_reachable() -> str | None:
    import psycopg

    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    return None


@pytest.fixture(params=["file", "postgres"])
def state_url(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    """The same behaviour suite over both backends; PostgreSQL gets a fresh schema per test.

    Unreachable PostgreSQL skips with the reason, except under CI=true where it fails the run.
    """
    import os
    import uuid

    if request.param == "file":
        yield str(workdir / "state" / "state.json")
        return
    problem = _postgres_reachable()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable under CI=true: {problem}")
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {problem}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{separator}schema={schema}&workspace=test"
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as connection:
        connection.execute(f'drop schema if exists "{schema}" cascade')
