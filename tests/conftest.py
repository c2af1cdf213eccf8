"""Shared fixtures: the real CLI in-process, a real sandbox server over loopback, small configs inline."""

from __future__ import annotations

import json
import logging
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.cli import main
from reconciler.sandbox import Sandbox, ServerThread
from tests.helpers import (
    PG_URL,
    SENTINEL_KEY,
    SENTINEL_PASSWORD,
    drop_run_database,
    fresh_postgres_state,
    postgres_unreachable_reason,
)

#: tests/helpers.py owns these; they stay importable from here for the modules that still do.
__all__ = ["PG_URL", "SENTINEL_KEY", "SENTINEL_PASSWORD"]

#: The kinds of test, each a folder under tests/ and a marker of the same name (pyproject.toml).
KINDS = ("unit", "integration", "tooling")
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its kind, the folder it lives in, so that `pytest -m unit` runs the fast part alone."""
    for item in items:
        relative = item.path.resolve().relative_to(TESTS)
        if relative.parts[0] in KINDS:
            item.add_marker(relative.parts[0])


def pytest_collection_finish(session: pytest.Session) -> None:
    """Make the run's PostgreSQL database (tests/helpers.py, RUN_DATABASE) before the first test that may use
    it: some connect to PG_URL directly. Not for unit tests alone, which never touch PostgreSQL; an unreachable
    server is reported by each test that needs it."""
    import importlib.util

    kinds = {item.path.resolve().relative_to(TESTS).parts[0] for item in session.items}
    if kinds - {"unit"} and importlib.util.find_spec("psycopg") is not None:
        postgres_unreachable_reason()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Drop the run's PostgreSQL database, when this process made it."""
    drop_run_database()


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


@pytest.fixture(params=["file", "postgres"])
def state_url(request: pytest.FixtureRequest, workdir: Path) -> Iterator[str]:
    """The same behaviour suite over both backends; PostgreSQL gets a fresh schema per test.

    Unreachable PostgreSQL skips with the reason, except under CI=true where it fails the run.
    """
    if request.param == "file":
        yield str(workdir / "state" / "state.json")
        return
    with fresh_postgres_state("test") as url:
        yield url


@pytest.fixture(autouse=True)
def _fresh_root_logger() -> Iterator[None]:
    """`-v` in a command run in-process installs a handler on the root logger: each test ends without the
    handlers it added (the secrets a run knew die with its redactor)."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    yield
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
