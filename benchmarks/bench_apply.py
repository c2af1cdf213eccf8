"""apply of N accounts against the sandbox at a given latency and concurrency, beside the ideal.

Usage: python benchmarks/bench_apply.py N LATENCY_MS CONCURRENCY [--floor] [--sequential] [--rss]
The ideal is N x latency / concurrency; the sandbox runs in this process, the apply in a fresh one.
--floor adds a bare aiohttp loop over the same requests (what the transport allows); --sequential adds the
plain httpx loop a user would otherwise write; --rss adds peak RSS of apply beside that of
plan on the same realistic generated config (benchmarks/generate.py), every account created.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.sandbox import Sandbox, ServerThread

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from bench_plan import measure  # noqa: E402
from generate import PASSWORD_ENV, write_config  # noqa: E402

KEY = "bench-key"


def bench(count: int, latency_ms: float, concurrency: int) -> dict[str, float]:
    sandbox = Sandbox(KEY, accept_any_account=True, latency_ms=latency_ms)
    server = ServerThread(sandbox).start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            config = Path(scratch) / "accounts.yaml"
            lines = ["version: 1", "accounts:"] + [f"  acc_{i:07d}: {{country: US}}" for i in range(count)]
            config.write_text("\n".join(lines) + "\n")
            env = {**os.environ, "POSTPRESS_API_KEY": KEY, "POSTPRESS_API_URL": server.url}
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "reconciler",
                    "apply",
                    str(config),
                    "--yes",
                    "--state",
                    str(Path(scratch) / "state.json"),
                    "--concurrency",
                    str(concurrency),
                ],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            elapsed = time.perf_counter() - started
            ended = time.monotonic()
    finally:
        server.stop()
    ideal = count * latency_ms / 1000 / concurrency
    arrivals = [moment for moment, _, _ in sandbox.stats.request_times]
    return {
        "accounts": count,
        "seconds": elapsed,
        "ideal": ideal,
        "per_second": count / elapsed,
        "max_in_flight": sandbox.stats.max_in_flight,
        "patched": len(sandbox.stats.patched),
        # where the time went: start-up to the first request, the requests, the last request to the end
        "before_first": min(arrivals) - (ended - elapsed),
        "window": max(arrivals) - min(arrivals),
        "after_last": ended - max(arrivals),
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


def transport_floor(count: int, latency_ms: float, concurrency: int) -> tuple[float, float]:
    """Seconds, and the median round trip in seconds, for the same PATCHes from a bare aiohttp loop (no
    start-up, no plan, no recording, no retries): what this client library, this sandbox and this machine
    allow, before anything reconciler does."""
    sandbox = Sandbox(KEY, accept_any_account=True, latency_ms=latency_ms)
    server = ServerThread(sandbox).start()
    try:
        output = subprocess.run(
            [sys.executable, "-c", FLOOR_LOOP, server.url, KEY, str(count), str(concurrency)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    finally:
        server.stop()
    seconds, median = output.split()
    return float(seconds), float(median)


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
                [
                    sys.executable,
                    "-m",
                    "reconciler",
                    "plan",
                    str(config),
                    "--state",
                    state,
                    "--format",
                    "json",
                ],
                env,
            )
            apply_s, apply_rss = measure(
                [
                    sys.executable,
                    "-m",
                    "reconciler",
                    "apply",
                    str(config),
                    "--yes",
                    "--state",
                    state,
                    "--concurrency",
                    str(concurrency),
                    "--sync-poll-interval",
                    "0.05",
                ],
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


def main() -> None:
    count, latency_ms, concurrency = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    r = bench(count, latency_ms, concurrency)
    ratio = f", {r['seconds'] / r['ideal']:.2f}x the ideal {r['ideal']:.2f} s" if r["ideal"] else ""
    print(
        f"apply {count} accounts at {latency_ms:g} ms, concurrency {concurrency}: {r['seconds']:.2f} s "
        f"({r['per_second']:.0f} PATCH/s{ratio}); max in flight at the server {r['max_in_flight']}; "
        f"{r['before_first']:.2f} s to the first request, {r['window']:.2f} s of requests, "
        f"{r['after_last']:.2f} s after the last"
    )
    if "--floor" in sys.argv:
        floor, median = transport_floor(count, latency_ms, concurrency)
        ideal = f" = {floor / r['ideal']:.2f}x the ideal" if r["ideal"] else ""
        print(
            f"bare aiohttp loop, same requests, no start-up: {floor:.2f} s{ideal}, median round trip "
            f"{median * 1000:.1f} ms; apply is {r['seconds'] / floor:.2f}x that"
        )
    if "--sequential" in sys.argv:
        loop = sequential_loop(count, latency_ms)
        print(
            f"sequential httpx loop over 500 accounts, scaled to {count}: {loop:.1f} s "
            f"(apply is {loop / r['seconds']:.0f}x faster)"
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
