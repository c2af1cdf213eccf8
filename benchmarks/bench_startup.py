"""Start-up: how soon `reconciler apply` sends its first request, at N accounts, for one or more checkouts.

Usage: python benchmarks/bench_startup.py N [--rounds R] [--against DIR ...] [--instructions] [--phases]

Every round launches `python -m reconciler apply` of N accounts (all to create) against a fresh sandbox, once per
checkout, alternating which goes first, and times the launch to the first request the sandbox sees; the child's
own CPU comes from `wait4`. The medians and minimums are printed. The current checkout is this file's; `--against
DIR` adds the package at DIR (a `git worktree` of another commit, say), imported through PYTHONPATH. On a machine
whose speed drifts, interleaved rounds compare checkouts fairly where separate runs do not.

`--instructions` counts, with valgrind's callgrind, the instructions a process runs from its start to the moment it
would send its first request (it exits there): a figure the machine's drift does not move.

`--phases` splits the time to the first request (this checkout only, medians of R launches): the interpreter's
own start, the imports, reading and checking the configuration, the plan, and the rest (the state's lock and
journal, the event loop, the transport).
"""

from __future__ import annotations

import ast
import compileall
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.sandbox import Sandbox, ServerThread

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import write_managed_fleet  # noqa: E402

HERE = Path(__file__).resolve().parent
KEY = "bench-key"
#: Runs apply and exits the moment its first request would be sent.
_STOP_AT_FIRST_REQUEST = """
import os, sys
import reconciler.api.transport as transport
def first_request(*args, **kwargs):
    os._exit(0)
transport.CurlSession.request = first_request
from reconciler.cli import main
main(sys.argv[1:])
"""

#: The same, noting when each phase ends (CLOCK_MONOTONIC, which every process of the machine shares).
_PHASES = """
import os, sys, time
started = time.monotonic()
import reconciler.api.transport as transport
import reconciler.cli.common as common
import reconciler.runs as runs
moments = {"interpreter": started, "imports": time.monotonic()}
def timed(function, name):
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        moments[name] = time.monotonic()
        return result
    return wrapper
common.load_or_exit = timed(common.load_or_exit, "configuration")
runs.make_plan = timed(runs.make_plan, "plan")
def first_request(*args, **kwargs):
    moments["rest"] = time.monotonic()
    os.write(1, repr(moments).encode())
    os._exit(0)
transport.CurlSession.request = first_request
from reconciler.cli import main
main(sys.argv[1:])
"""
PHASES = ("interpreter", "imports", "configuration", "plan", "rest")


write_config = write_managed_fleet


def first_request(root: Path, config: Path, scratch: Path) -> tuple[float, float]:
    """Seconds from launch to the first request at a fresh sandbox, and the child's CPU seconds."""
    sandbox = Sandbox(KEY, accept_any_account=True)
    server = ServerThread(sandbox).start()
    try:
        env = {
            **os.environ,
            "POSTPRESS_API_KEY": KEY,
            "POSTPRESS_API_URL": server.url,
            "PYTHONPATH": str(root),
        }
        state = scratch / f"state-{time.monotonic_ns()}.json"
        command = [sys.executable, "-m", "reconciler", "apply", str(config), "--yes", "--state", str(state)]
        with tempfile.TemporaryFile() as errors:  # not a pipe: a full pipe would stall the child
            launched = time.monotonic()
            child = subprocess.Popen(  # in the scratch directory: `-m` puts the working directory first on the path
                command, cwd=scratch, env=env, stdout=subprocess.DEVNULL, stderr=errors
            )
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must be told
            if child.returncode != 0:
                errors.seek(0)
                raise RuntimeError(f"apply exited {child.returncode}: {errors.read()[-500:]!r}")
    finally:
        server.stop()
    return min(
        moment for moment, _, _ in sandbox.stats.request_times
    ) - launched, usage.ru_utime + usage.ru_stime


def instructions(root: Path, config: Path, scratch: Path) -> int:
    """Instructions from the process start to its first request (callgrind)."""
    env = {**os.environ, "POSTPRESS_API_KEY": KEY, "POSTPRESS_API_URL": "http://127.0.0.1:9/api/v1"}
    env["PYTHONPATH"] = str(root)
    state = scratch / "counted-state.json"
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={os.devnull}", sys.executable, "-c"]
        + [_STOP_AT_FIRST_REQUEST, "apply", str(config), "--yes", "--state", str(state)],
        cwd=scratch,  # as above: `-c` puts the working directory first on the path
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    collected = [line for line in result.stderr.splitlines() if "Collected" in line]
    return int(collected[-1].split()[-1])


def phases(root: Path, config: Path, scratch: Path) -> dict[str, float]:
    """Seconds each phase took up to the first request, the interpreter's from the launch."""
    env = {**os.environ, "POSTPRESS_API_KEY": KEY, "POSTPRESS_API_URL": "http://127.0.0.1:9/api/v1"}
    env["PYTHONPATH"] = str(root)
    state = scratch / f"state-{time.monotonic_ns()}.json"
    launched = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", _PHASES, "apply", str(config), "--yes", "--state", str(state)],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    moments = ast.literal_eval(result.stdout)
    ends = [launched] + [moments[name] for name in PHASES]
    return {name: ends[index + 1] - ends[index] for index, name in enumerate(PHASES)}


def main() -> None:
    count = int(sys.argv[1])
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    roots = [HERE.parent] + [
        Path(sys.argv[i + 1]).resolve() for i, a in enumerate(sys.argv) if a == "--against"
    ]
    for root in roots:  # as `pip install` does: no process compiles the package from source
        compileall.compile_dir(root / "reconciler", quiet=1)
    seconds: dict[Path, list[float]] = {root: [] for root in roots}
    cpu: dict[Path, list[float]] = {root: [] for root in roots}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        config = scratch / "accounts.yaml"
        write_config(count, config)
        for index in range(rounds):
            for root in roots if index % 2 == 0 else roots[::-1]:
                wall, used = first_request(root, config, scratch)
                seconds[root].append(wall)
                cpu[root].append(used)
        for root in roots:
            print(
                f"{root}: first request {statistics.median(seconds[root]):.3f} s after launch (median of {rounds}; "
                f"min {min(seconds[root]):.3f} s); apply's CPU {statistics.median(cpu[root]):.2f} s"
            )
            if "--instructions" in sys.argv:
                if shutil.which("valgrind") is None:
                    sys.exit("--instructions needs valgrind on the PATH")
                print(f"{root}: {instructions(root, config, scratch) / 1e6:,.0f} million instructions to it")
        if "--phases" in sys.argv:
            split = [phases(HERE.parent, config, scratch) for _ in range(rounds)]
            print(
                "phases (median ms): "
                + ", ".join(
                    f"{name} {statistics.median(s[name] for s in split) * 1000:.0f}" for name in PHASES
                )
            )


if __name__ == "__main__":
    main()
