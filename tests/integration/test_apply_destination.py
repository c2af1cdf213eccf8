"""Apply says where the changes go and where they are recorded, in one line before anything is sent (or before
the confirmation prompt), and its last line does not claim success when nothing was applied."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys

from reconciler.sandbox.faults import Fault
from tests.helpers import SENTINEL_KEY, fleet, wait_until


def test_with_yes_the_destination_is_one_line_before_the_run(run, write, api, server) -> None:
    write("a.yaml", fleet(3))
    result = run("apply", "a.yaml", "--yes", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["summary"]["succeeded"] == 3  # stdout stays the report alone
    lines = result.err.splitlines()
    assert lines[0] == f"Applying to {server.url}; state file .reconciler/state.json."
    assert re.fullmatch(r"Applied in \d+\.\ds; state \.reconciler/state\.json\.", lines[-1]), lines


def test_the_default_api_url_is_named(run, write, monkeypatch) -> None:
    """No POSTPRESS_API_URL: the line names the public API before the first request goes out."""
    monkeypatch.setenv("POSTPRESS_API_KEY", SENTINEL_KEY)
    monkeypatch.setenv(
        "POSTPRESS_API_URL", "http://127.0.0.1:9/api/v1"
    )  # nothing listens: never the real API
    write("a.yaml", fleet(1))
    result = run("apply", "a.yaml", "--yes", "--max-attempts", "1", "--state", "s.json")
    assert result.err.splitlines()[0] == "Applying to http://127.0.0.1:9/api/v1; state file s.json."


def test_nothing_applied_is_not_said_to_be_applied(run, write, api) -> None:
    api.faults = [Fault.parse("errors/proxy_error")]
    write("a.yaml", fleet(3))
    result = run("apply", "a.yaml", "--yes", "--max-attempts", "1")
    assert result.code == 3
    last = result.err.splitlines()[-1]
    assert re.fullmatch(
        r"Finished in \d+\.\ds with nothing applied; state \.reconciler/state\.json\.", last
    ), last


def test_a_refusal_says_no_destination(run, write, api) -> None:
    """Nothing is sent: the refusal stays one line."""
    write("a.yaml", fleet(3))
    result = run("apply", "a.yaml")
    assert result.code == 1
    assert "Applying to" not in result.err
    assert result.err.endswith("Error: refusing to apply without --yes: no terminal to confirm on\n")


def test_on_a_terminal_the_destination_comes_before_the_prompt(write, server, workdir) -> None:
    write("a.yaml", fleet(2))
    leader, follower = pty.openpty()
    env = {**os.environ, "POSTPRESS_API_KEY": SENTINEL_KEY, "POSTPRESS_API_URL": server.url, "TERM": "dumb"}
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "apply", "a.yaml"],
        cwd=workdir,
        env=env,
        stdin=follower,
        stdout=subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    shown = bytearray()

    def prompted() -> bool:
        ready, _, _ = select.select([leader], [], [], 0.2)
        if ready:
            shown.extend(os.read(leader, 65536))
        return b"Apply these changes?" in shown

    wait_until(prompted, timeout=60, stop_if_exited=process)
    os.write(leader, b"n\n")
    assert process.wait(timeout=30) == 1
    os.close(leader)
    text = shown.decode().replace("\r\n", "\n")
    assert f"Applying to {server.url}; state file .reconciler/state.json.\nApply these changes?" in text, text
    assert text.count("Applying to") == 1
    assert server.sandbox.stats.requests == 0
