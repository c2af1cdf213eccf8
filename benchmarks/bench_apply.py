"""apply of N accounts against the sandbox at a given latency and concurrency, beside `curl --parallel` and the ideal.

Usage: python benchmarks/bench_apply.py N LATENCY_MS CONCURRENCY [--rounds R] [--no-curl] [--floor] [--sequential]
[--rss]

The sandbox runs in this process (one core), each contender in a fresh process. Every round runs the contenders
one after another against a fresh sandbox (apply, `curl --parallel --parallel-max CONCURRENCY --config urls.txt`,
then the bare aiohttp loop with --floor), so a machine whose load changes affects all of them alike; with several
rounds the medians are printed. Each line gives the wall time, the contender's own CPU time (user + system, from
wait4) and, for apply, where its time went. The ideal is N x latency / concurrency.
--floor adds a bare aiohttp loop over the same requests; --sequential adds the plain httpx loop a user would
otherwise write; --rss adds peak RSS of apply beside that of plan on the same realistic generated config
(benchmarks/generate.py), every account created.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.sandbox import Sandbox, ServerThread

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from bench_plan import measure  # noqa: E402
from generate import (  # noqa: E402
    PASSWORD_ENV,
    byte_compile_reconciler,
    reconciler_command,
    write_config,
    write_managed_fleet,
)

KEY = "bench-key"
#: `--parallel` came with curl 7.66.0.
CURL_PARALLEL_SINCE = (7, 66)


def run_child(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """Run a fresh process to its end: its wall seconds, its CPU seconds (user + system) and its stdout.

    wait4 gives the child's own resource use, so the sandbox's CPU in this process is not counted."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as output, tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=errors)
        _, status, rusage = os.wait4(process.pid, 0)
        elapsed = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must be told
        output.seek(0)
        errors.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{command[:4]} exited {process.returncode}: {errors.read()[-500:]!r}")
        return elapsed, rusage.ru_utime + rusage.ru_stime, output.read().decode()


def bench(count: int, latency_ms: float, concurrency: int) -> dict[str, float]:
    """`reconciler apply --yes` of `count` accounts (all to create) in a fresh process."""
    sandbox = Sandbox(KEY, accept_any_account=True, latency_ms=latency_ms)
    server = ServerThread(sandbox).start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            config = Path(scratch) / "accounts.yaml"
            write_managed_fleet(count, config)
            env = {**os.environ, "POSTPRESS_API_KEY": KEY, "POSTPRESS_API_URL": server.url}
            launched = time.monotonic()
            elapsed, cpu, _ = run_child(
                reconciler_command(
                    "apply", config, Path(scratch) / "state.json", "--concurrency", str(concurrency)
                ),
                env,
            )
            ended = time.monotonic()
    finally:
        server.stop()
    ideal = count * latency_ms / 1000 / concurrency
    arrivals = [moment for moment, _, _ in sandbox.stats.request_times]
    return {
        "accounts": count,
        "seconds": elapsed,
        "cpu": cpu,
        "ideal": ideal,
        "per_second": count / elapsed,
        "max_in_flight": sandbox.stats.max_in_flight,
        "patched": len(sandbox.stats.patched),
        # where the time went: start-up to the first request, the requests, the last request to the end
        "before_first": min(arrivals) - launched,
        "window": max(arrivals) - min(arrivals),
        "after_last": ended - max(arrivals),
    }


def curl_version() -> tuple[int, int] | None:
    """curl's (major, minor), or None when there is no curl on the PATH."""
    if shutil.which("curl") is None:
        return None
    first = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=True).stdout
    found = re.match(r"curl (\d+)\.(\d+)", first)
    return (int(found[1]), int(found[2])) if found else None


def curl_parallel(count: int, latency_ms: float, concurrency: int) -> dict[str, float]:
    """The one-liner an operator could write instead: `curl --parallel --parallel-max C --config urls.txt`, the
    same PATCHes (same headers and body as apply sends) against a fresh sandbox."""
    sandbox = Sandbox(KEY, accept_any_account=True, latency_ms=latency_ms)
    server = ServerThread(sandbox).start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            urls = Path(scratch) / "urls.txt"
            urls.write_text(
                "".join(
                    f'url = "{server.url}/accounts/acc_{i:07d}"\noutput = "/dev/null"\n' for i in range(count)
                )
            )
            elapsed, cpu, output = run_child(
                [
                    "curl",
                    "--silent",
                    "--show-error",
                    "--request",
                    "PATCH",
                    "--header",
                    f"X-API-KEY: {KEY}",
                    "--header",
                    "Accept: application/json",
                    "--header",
                    "Content-Type: application/json",
                    "--data",
                    '{"country":"US"}',
                    "--write-out",
                    "%{http_code}\\n",
                    "--parallel",
                    "--parallel-max",
                    str(concurrency),
                    "--config",
                    str(urls),
                ]
            )
    finally:
        server.stop()
    return {
        "seconds": elapsed,
        "cpu": cpu,
        "ok": output.split().count("200"),
        "patched": len(sandbox.stats.patched),
        "max_in_flight": sandbox.stats.max_in_flight,
    }


def sequential_loop(count: int, latency_ms: float, sample: int = 500) -> float:
    """The script a user would otherwise write: one httpx.Client, one PATCH after another; scaled to `count`."""
    import httpx

    sandbox = Sandbox(KEY, accept_any_account=True, latency_ms=latency_ms)
    server = ServerThread(sandbox).start()
    try:
        with httpx.Client(headers={"X-API-KEY": KEY}) as client:
            started = time.perf_counter()
            for i in range(sample):
                client.patch(f"{server.url}/accounts/acc_{i:07d}", json={"country": "US"}).raise_for_status()
            elapsed = time.perf_counter() - started
    finally:
        server.stop()
    return elapsed * count / sample


FLOOR_LOOP = """
import asyncio, sys, time, aiohttp
url, key, count, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
async def main():
    ids = iter(range(count))
    async with aiohttp.ClientSession(headers={"X-API-KEY": key},
                                     connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        round_trips = []
        async def worker():
            for i in ids:
                sent = time.perf_counter()
                async with session.patch(f"{url}/accounts/acc_{i:07d}", json={"country": "US"}) as answer:
                    assert answer.status == 200
                    await answer.read()
                round_trips.append(time.perf_counter() - sent)
        started = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        print(time.perf_counter() - started, sorted(round_trips)[len(round_trips) // 2])
asyncio.run(main())
"""


def transport_floor(count: int, latency_ms: float, concurrency: int) -> tuple[float, float, float]:
    """Seconds, the median round trip in seconds and the process's CPU seconds, for the same PATCHes from a bare
    aiohttp loop (no start-up, no plan, no recording, no retries): what that client library, this sandbox and
    this machine allow, before anything reconciler does."""
    sandbox = Sandbox(KEY, accept_any_account=True, latency_ms=latency_ms)
    server = ServerThread(sandbox).start()
    try:
        _, cpu, output = run_child(
            [sys.executable, "-c", FLOOR_LOOP, server.url, KEY, str(count), str(concurrency)]
        )
    finally:
        server.stop()
    seconds, median = output.split()
    return float(seconds), float(median), cpu


def peak_rss(count: int, concurrency: int) -> dict[str, float]:
    """Peak RSS (MiB) of `apply` and of `plan` on the same generated config of `count` accounts, none recorded."""
    sandbox = Sandbox(KEY, accept_any_account=True, sync_polls=1)
    server = ServerThread(sandbox).start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            config = Path(scratch) / "accounts.yaml"
            write_config(count, config)
            env = {**os.environ, **PASSWORD_ENV, "POSTPRESS_API_KEY": KEY, "POSTPRESS_API_URL": server.url}
            state = str(Path(scratch) / "state.json")
            plan_s, plan_rss = measure(
                reconciler_command("plan", config, state, "--format", "json"),
                env,
            )
            apply_s, apply_rss = measure(
                reconciler_command(
                    "apply", config, state, "--concurrency", str(concurrency), "--sync-poll-interval", "0.05"
                ),
                env,
            )
    finally:
        server.stop()
    return {
        "plan_s": plan_s,
        "plan_rss_mib": plan_rss,
        "apply_s": apply_s,
        "apply_rss_mib": apply_rss,
        "patched": len(sandbox.stats.patched),
    }


def _median(rounds: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def _spread(rounds: list[dict[str, float]], key: str) -> str:
    values = sorted(r[key] for r in rounds)
    return f" ({values[0]:.2f}-{values[-1]:.2f})" if len(values) > 1 else ""


def main() -> None:
    byte_compile_reconciler()
    count, latency_ms, concurrency = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 1
    with_curl = "--no-curl" not in sys.argv
    if with_curl and (curl_version() or (0, 0)) < CURL_PARALLEL_SINCE:
        sys.exit("curl 7.66 or later is needed for --parallel (see BENCHMARKS.md), or pass --no-curl")
    applies: list[dict[str, float]] = []
    curls: list[dict[str, float]] = []
    floors: list[dict[str, float]] = []
    for _ in range(rounds):  # interleaved, so that a change of the machine's load hits every contender
        applies.append(bench(count, latency_ms, concurrency))
        if with_curl:
            curls.append(curl_parallel(count, latency_ms, concurrency))
            if curls[-1]["ok"] != count:
                sys.exit(f"curl got {curls[-1]['ok']} answers 200 of {count}")
        if "--floor" in sys.argv:
            seconds, median, cpu = transport_floor(count, latency_ms, concurrency)
            floors.append({"seconds": seconds, "median": median, "cpu": cpu})
    label = f"median of {rounds} rounds" if rounds > 1 else "one round"
    seconds, ideal = _median(applies, "seconds"), applies[0]["ideal"]
    ratio = f", {seconds / ideal:.2f}x the ideal {ideal:.2f} s" if ideal else ""
    print(
        f"apply {count} accounts at {latency_ms:g} ms, concurrency {concurrency} ({label}): "
        f"{seconds:.2f} s{_spread(applies, 'seconds')} ({count / seconds:.0f} PATCH/s{ratio}); "
        f"CPU {_median(applies, 'cpu'):.2f} s = {_median(applies, 'cpu') / count * 1000:.3f} ms per PATCH; "
        f"max in flight at the server {max(r['max_in_flight'] for r in applies):.0f}; "
        f"{_median(applies, 'before_first'):.2f} s to the first request, {_median(applies, 'window'):.2f} s of "
        f"requests, {_median(applies, 'after_last'):.2f} s after the last"
    )
    if curls:
        curl_s = _median(curls, "seconds")
        ratios = sorted(a["seconds"] / c["seconds"] for a, c in zip(applies, curls, strict=True))
        print(
            f"curl --parallel --parallel-max {concurrency}: {curl_s:.2f} s{_spread(curls, 'seconds')} "
            f"({count / curl_s:.0f} PATCH/s); CPU {_median(curls, 'cpu'):.2f} s = "
            f"{_median(curls, 'cpu') / count * 1000:.3f} ms per PATCH; apply is {seconds / curl_s:.2f}x that "
            f"(per round: {', '.join(f'{r:.2f}' for r in ratios)})"
        )
    if floors:
        floor = _median(floors, "seconds")
        versus_ideal = f" = {floor / ideal:.2f}x the ideal" if ideal else ""
        print(
            f"bare aiohttp loop, same requests, no start-up: {floor:.2f} s{_spread(floors, 'seconds')}"
            f"{versus_ideal}, median round trip {_median(floors, 'median') * 1000:.1f} ms, CPU "
            f"{_median(floors, 'cpu'):.2f} s; apply is {seconds / floor:.2f}x that"
        )
    if "--sequential" in sys.argv:
        loop = sequential_loop(count, latency_ms)
        print(
            f"sequential httpx loop over 500 accounts, scaled to {count}: {loop:.1f} s "
            f"(apply is {loop / seconds:.0f}x faster)"
        )
    if "--rss" in sys.argv:
        m = peak_rss(count, concurrency)
        print(
            f"peak RSS on the generated config of {count}: apply {m['apply_rss_mib']:.0f} MiB "
            f"({m['apply_s']:.1f} s, {m['patched']} patched), plan {m['plan_rss_mib']:.0f} MiB: "
            f"{m['apply_rss_mib'] / m['plan_rss_mib']:.2f}x"
        )


if __name__ == "__main__":
    main()
