"""What apply shows while it runs: a line every few seconds without a terminal, a rich bar on one."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time

from reconciler.cli import progress
from tests.conftest import SENTINEL_KEY
from tests.test_apply import fleet


def test_progress_lines_without_a_terminal(run, write, api, monkeypatch) -> None:
    monkeypatch.setattr(progress, "PROGRESS_LINE_SECONDS", 0.05)
    api.latency_ms = 20
    write("a.yaml", fleet(40))
    result = run("apply", "a.yaml", "--yes", "--concurrency", "2")
    assert result.code == 0
    lines = [line for line in result.err.splitlines() if line.startswith("apply: ")]
    assert len(lines) >= 3, result.err
    done = [int(line.split()[1].split("/")[0]) for line in lines]
    assert done == sorted(done) and done[-1] <= 40  # counts only grow
    assert all(line.endswith("/40 accounts done, 0 syncs polling") for line in lines)


def test_progress_bar_on_a_terminal(write, api, server, workdir) -> None:
    api.latency_ms = 20
    write("a.yaml", fleet(60))
    leader, follower = pty.openpty()
    env = {
        **os.environ,
        "POSTPRESS_API_KEY": SENTINEL_KEY,
        "POSTPRESS_API_URL": server.url,
        "TERM": "xterm",
        "COLUMNS": "120",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "a.yaml", "--yes", "--concurrency", "2"],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    shown = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    assert process.wait(timeout=30) == 0
    text = shown.decode(errors="replace")
    assert "in flight" in text and "/60" in text, text[-2000:]  # the bar: counts and what is in flight
    assert "Apply: 60 account(s)" not in text  # the report is on stdout, not mixed into the bar
