"""What apply shows while it runs: a line every few seconds without a terminal, a progress bar on one."""

from __future__ import annotations

import os
import pty
import select
import subprocess

from reconciler.cli import progress
from tests.helpers import fleet, start_apply, wait_until


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
    process = start_apply(
        workdir,
        server,
        "--concurrency",
        "2",
        env={"TERM": "xterm", "COLUMNS": "120"},
        stdin=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    shown = bytearray()

    def drained() -> bool:
        """Read what the terminal shows; true once the child closed it or ended."""
        ready, _, _ = select.select([leader], [], [], 0.5)
        if not ready:
            return process.poll() is not None
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            return True
        shown.extend(chunk)
        return not chunk

    wait_until(drained, timeout=60, fail_on_timeout=False, interval=0)
    os.close(leader)
    assert process.wait(timeout=30) == 0
    text = bytes(shown).decode(errors="replace")
    assert "in flight" in text and "/60" in text, text[-2000:]  # the bar: counts and what is in flight
    assert "Apply: 60 account(s)" not in text  # the report is on stdout, not mixed into the bar
