"""plan at N accounts beside the floor: a bare yaml.load(CSafeLoader) of the same file, each in a fresh process.

Usage: python benchmarks/bench_plan.py N [N ...]   (prints one line per N: wall time and peak RSS of both)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from generate import PASSWORD_ENV, byte_compile_reconciler, write_config, write_state  # noqa: E402

FLOOR = "import sys, yaml; yaml.load(open(sys.argv[1], 'rb'), Loader=yaml.CSafeLoader)"


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a fresh process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, rusage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must be told
    errors = process.stderr.read()
    process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed: {errors.decode(errors='replace')[-500:]}")
    return elapsed, rusage.ru_maxrss / 1024


def bench(count: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        write_config(count, directory / "accounts.yaml")
        write_state(directory / "accounts.yaml", directory / "state.json")
        env = {**os.environ, **PASSWORD_ENV}
        config = str(directory / "accounts.yaml")
        floor_time, floor_rss = measure([sys.executable, "-c", FLOOR, config], env)
        plan_time, plan_rss = measure(
            [
                sys.executable,
                "-m",
                "reconciler",
                "plan",
                config,
                "--state",
                str(directory / "state.json"),
                "--format",
                "json",
            ],
            env,
        )
    return {
        "accounts": count,
        "plan_s": plan_time,
        "plan_rss_mib": plan_rss,
        "floor_s": floor_time,
        "floor_rss_mib": floor_rss,
        "time_ratio": plan_time / floor_time,
        "rss_ratio": plan_rss / floor_rss,
    }


def main() -> None:
    byte_compile_reconciler()
    for count in [int(arg) for arg in sys.argv[1:]] or [1000, 10_000, 100_000]:
        r = bench(count)
        print(
            f"plan {r['accounts']:>7} accounts: {r['plan_s']:.2f} s, {r['plan_rss_mib']:.0f} MiB | floor "
            f"{r['floor_s']:.2f} s, {r['floor_rss_mib']:.0f} MiB | ratio time {r['time_ratio']:.2f}x, "
            f"RSS {r['rss_ratio']:.2f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
