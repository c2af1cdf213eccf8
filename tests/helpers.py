"""The test toolkit: builders of inputs, runners of the real code paths and waits, shared by every test module.

Fixtures live in conftest.py; everything here is a plain function or constant a test module imports.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reconciler.applying import ApplyOptions
from reconciler.config import load_config
from reconciler.runs import ApplyOutcome, ApplyRequest, apply_run
from reconciler.state.file import FileBackend

#: Planted as the proxy password and the API key: a test fails wherever either shows up.
SENTINEL_PASSWORD = "pw-SENTINEL-7f3a9c"
SENTINEL_KEY = "key-SENTINEL-51d2e8"

#: The secrets every test plants; none may appear in output, logs, state, plans or reports.
SENTINELS = (SENTINEL_PASSWORD, SENTINEL_KEY)

#: The PostgreSQL the backend tests use; each test gets a fresh schema in it.
PG_URL = os.environ.get("RECONCILER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def fleet(count: int, prefix: str = "acc_", extra: str = "") -> str:
    """A config of `count` managed-proxy accounts `{prefix}0000`..., one per line (line 3 + index)."""
    lines = ["version: 1", "accounts:"]
    lines += [f"  {prefix}{i:04d}: {{country: US, ip: 203.0.113.{i % 250 + 1}{extra}}}" for i in range(count)]
    return "\n".join(lines) + "\n"


def run_engine(workdir: Path, server: Any, config: str, **options: Any) -> tuple[ApplyOutcome, FileBackend]:
    """Apply `config` to the sandbox `server` through the application function, with fast backoff and polls
    and no safety bound; the file state lives in `workdir`."""
    desired = load_config(config, {"PROXY_PASSWORD": SENTINEL_PASSWORD})
    backend = FileBackend(workdir / "state.json")
    options.setdefault("sync_poll_interval", 0.01)
    request = ApplyRequest(
        desired=desired,
        backend=backend,
        api_url=server.url,
        api_key=SENTINEL_KEY,
        options=ApplyOptions(backoff_base=0.01, backoff_cap=0.05, **options),
        force=True,
    )
    return apply_run(request), backend


def start_apply(
    workdir: Path,
    server: Any,
    *args: str,
    state: str | None = None,
    env: Mapping[str, str] | None = None,
    **popen: Any,
) -> subprocess.Popen[Any]:
    """`reconciler apply a.yaml --yes [--state STATE] ARGS` as a real process against the sandbox `server`.

    The process inherits the test's environment plus the API key and URL and `env`. Its output is discarded
    unless `stdout`/`stderr` are given; any other keyword (`text`, `stdin`) goes to Popen.
    """
    environment = {
        **os.environ,
        "POSTPRESS_API_KEY": SENTINEL_KEY,
        "POSTPRESS_API_URL": server.url,
        **(env or {}),
    }
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    command = [sys.executable, "-m", "reconciler", "apply", "a.yaml", "--yes"]
    if state is not None:
        command += ["--state", state]
    return subprocess.Popen([*command, *args], cwd=workdir, env=environment, **popen)


def wait_until(
    condition: Callable[[], object],
    timeout: float = 30.0,
    what: str = "the condition",
    *,
    stop_if_exited: subprocess.Popen[Any] | None = None,
    fail_on_timeout: bool = True,
    interval: float = 0.01,
) -> bool:
    """Poll `condition` every `interval` seconds until it is true; return True then.

    Waiting also ends, returning False, when the process `stop_if_exited` has ended, and after `timeout`
    seconds: that fails the test unless `fail_on_timeout` is False (then the test proceeds and its own
    assertions judge what happened).
    """
    deadline = time.monotonic() + timeout
    while not condition():
        if stop_if_exited is not None and stop_if_exited.poll() is not None:
            return False
        if time.monotonic() > deadline:
            if fail_on_timeout:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            return False
        time.sleep(interval)
    return True


def assert_no_secrets(*places: str | bytes | Path, secrets: Iterable[str] = SENTINELS) -> None:
    """Fail if one of `secrets` appears in a text or a file's bytes, naming the file or showing what precedes
    the secret, never the secret itself (pytest does not rewrite this module's asserts: only the message shows)."""
    for place in places:
        if isinstance(place, Path):
            content, where = place.read_bytes(), str(place)
        else:
            content = place.encode() if isinstance(place, str) else place
            where = "the text"
        for secret in secrets:
            at = content.find(secret.encode())
            assert at < 0, f"a secret in {where} at offset {at}, after {content[max(0, at - 300) : at]!r}"


def postgres_unreachable_reason() -> str | None:
    """Why PostgreSQL at PG_URL cannot be reached (one line), or None when it answers."""
    import psycopg

    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        return " ".join(str(exc).split())
    return None


@contextmanager
def fresh_postgres_state(workspace: str) -> Iterator[str]:
    """A `postgresql://` state URL in a schema of its own, dropped afterwards.

    Unreachable PostgreSQL skips the test with the reason, except under CI=true where it fails it.
    """
    problem = postgres_unreachable_reason()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_URL} is unreachable under CI=true: {problem}")
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {problem}")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    separator = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{separator}schema={schema}&workspace={workspace}"
    finally:
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as connection:
            connection.execute(f'drop schema if exists "{schema}" cascade')
