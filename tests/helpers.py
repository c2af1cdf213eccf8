"""The test toolkit: builders of inputs and runners of the real code paths, shared by every test module."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reconciler.applying import ApplyOptions
from reconciler.config import load_config
from reconciler.runs import ApplyOutcome, ApplyRequest, apply_run
from reconciler.state.file import FileBackend
from tests.conftest import SENTINEL_KEY, SENTINEL_PASSWORD


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


def start_apply(workdir: Path, server: Any, *args: str, **popen: Any) -> subprocess.Popen[bytes]:
    """`reconciler apply a.yaml --yes ARGS` as a real process against the sandbox `server` (output discarded
    unless `stdout`/`stderr` are given)."""
    env = {**os.environ, "POSTPRESS_API_KEY": SENTINEL_KEY, "POSTPRESS_API_URL": server.url}
    popen.setdefault("stdout", subprocess.DEVNULL)
    popen.setdefault("stderr", subprocess.DEVNULL)
    command = [sys.executable, "-m", "reconciler", "apply", "a.yaml", "--yes", *args]
    return subprocess.Popen(command, cwd=workdir, env=env, **popen)


def wait_until(condition: Callable[[], object], timeout: float = 30.0, what: str = "the condition") -> None:
    """Poll `condition` every 10 ms until it is true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.01)
