"""apply against a sandbox that throttles, without being told its limit: wall time against the ideal N/R, and the
share of requests refused.

Usage: python benchmarks/bench_pace.py [--rounds R] [--only NAME,...] [--pg URL] [--against DIR]

Each scenario is a sandbox in this process (a token bucket of R requests/s with a burst of R/10, or a worker
pool) answering apply, run as a fresh process with `--concurrency 64` and every account to create. The ideal is
N / R: the API's own limit, with latency hidden by concurrency. A scenario passes when every account succeeded and
the wall time is at most 1.2x the ideal with at most 5% of requests refused; four shards at once, when every
account succeeded within 1.3x the ideal.

`shards4` runs `apply --shard K/4` four times at once against one sandbox, on a fresh PostgreSQL schema (--pg,
default postgresql://postgres@127.0.0.1:5432/test). `--against DIR` also runs every scenario with the reconciler
checked out in DIR (another commit), round by round, so that both meet the same machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from reconciler.sandbox import Sandbox, ServerThread

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from generate import byte_compile_reconciler, write_managed_fleet  # noqa: E402

KEY = "bench-key"
CONCURRENCY = 64
#: name: (accounts, rate limit, throttle answer, pool size, latency ms, extra apply options, shards)
SCENARIOS: dict[str, tuple[int, float, str, int | None, float, tuple[str, ...], int]] = {
    "429": (3000, 300, "429", None, 20, (), 1),
    "429-retry-after": (3000, 300, "429-retry-after", None, 20, (), 1),
    "503": (3000, 300, "503", None, 20, (), 1),
    "pool15": (3000, 300, "503", 15, 50, (), 1),
    "429-ceiling": (3000, 300, "429", None, 20, ("--rate-limit", "300"), 1),
    "429-50/s": (1000, 50, "429", None, 20, (), 1),
    "429-1000/s": (10000, 1000, "429", None, 20, (), 1),
    "shards4": (3000, 300, "429", None, 20, (), 4),
}


def run_scenario(
    name: str, python: str, source: Path | None, pg_url: str, accounts: int | None = None
) -> dict[str, float]:
    """One run of scenario `name` (with `accounts` instead of its own number, for a smoke test)."""
    count, rate, answer, pool, latency_ms, extra, shards = SCENARIOS[name]
    count = accounts or count
    sandbox = Sandbox(
        KEY,
        accept_any_account=True,
        latency_ms=latency_ms,
        rate_limit=None if pool else rate,
        burst=None if pool else max(1.0, rate / 10),
        throttle_answer=answer,
        max_in_flight=pool,
    )
    server = ServerThread(sandbox).start()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        with tempfile.TemporaryDirectory() as scratch:
            config = Path(scratch) / "accounts.yaml"
            write_managed_fleet(count, config)
            env = {**os.environ, "POSTPRESS_API_KEY": KEY, "POSTPRESS_API_URL": server.url}
            if source is not None:
                env["PYTHONPATH"] = str(source)
            base = [
                python,
                "-m",
                "reconciler",
                "apply",
                str(config),
                "--yes",
                "--concurrency",
                str(CONCURRENCY),
            ]
            if shards == 1:
                commands = [[*base, "--state", str(Path(scratch) / "state.json"), *extra]]
            else:
                separator = "&" if "?" in pg_url else "?"
                state = f"{pg_url}{separator}schema={schema}&workspace=bench"
                commands = [
                    [*base, "--state", state, "--shard", f"{k}/{shards}", *extra]
                    for k in range(1, shards + 1)
                ]
            started = time.perf_counter()
            processes = [
                # run in the scratch directory: `python -m` puts the working directory first on the path, and
                # a checkout there would shadow the one asked for
                subprocess.Popen(
                    command, env=env, cwd=scratch, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
                for command in commands
            ]
            codes = []
            for process in processes:
                _, errors = process.communicate()
                codes.append(process.returncode)
                if process.returncode != 0:
                    print(f"  {name}: exit {process.returncode}: {errors.decode()[-300:]}", file=sys.stderr)
            elapsed = time.perf_counter() - started
    finally:
        server.stop()
        if shards > 1:
            import psycopg

            with psycopg.connect(pg_url, autocommit=True) as connection:
                connection.execute(f'drop schema if exists "{schema}" cascade')
    arrivals = sorted(moment for moment, _, _ in sandbox.stats.request_times)
    requests = len(arrivals)
    return {
        "seconds": elapsed,
        "sending": arrivals[-1] - arrivals[0] if arrivals else 0.0,
        "ideal": count / rate,
        "succeeded": len(sandbox.stats.patched),
        "accounts": count,
        "requests": requests,
        "refused": sandbox.stats.throttled,
        "exit": max(codes),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument(
        "--pg", default=os.environ.get("RECONCILER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--against", type=Path, default=None, help="another checkout to run side by side")
    arguments = parser.parse_args()
    byte_compile_reconciler()
    names = arguments.only.split(",")
    contenders: list[tuple[str, Path | None]] = [("this", None)]
    if arguments.against is not None:
        contenders.append((arguments.against.name, arguments.against.resolve()))
    measured: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(arguments.rounds):
        for name in names:
            for label, source in contenders:
                measured.setdefault((label, name), []).append(
                    run_scenario(name, sys.executable, source, arguments.pg)
                )
    print(
        f"{'scenario':<16} {'build':<8} {'wall s':>7} {'ideal s':>7} {'x ideal':>7} {'ok':>11} "
        f"{'requests':>8} {'refused':>8} {'verdict':>7}"
    )
    for (label, name), runs in measured.items():
        wall = statistics.median(run["seconds"] for run in runs)
        ideal = runs[0]["ideal"]
        refused = statistics.median(run["refused"] / max(run["requests"], 1) for run in runs)
        requests = statistics.median(run["requests"] for run in runs)
        ok = min(run["succeeded"] for run in runs)
        sharded = SCENARIOS[name][6] > 1
        passed = ok == runs[0]["accounts"] and wall <= (1.3 if sharded else 1.2) * ideal
        passed = passed and (sharded or refused <= 0.05)
        print(
            f"{name:<16} {label:<8} {wall:>7.2f} {ideal:>7.2f} {wall / ideal:>7.2f} "
            f"{ok:>5}/{runs[0]['accounts']:<5} {requests:>8.0f} {refused:>8.1%} {'pass' if passed else 'FAIL':>7}"
        )


if __name__ == "__main__":
    main()
