"""apply of N accounts against the sandbox at a given latency and concurrency, beside the ideal.

Usage: python benchmarks/bench_apply.py N LATENCY_MS CONCURRENCY
The ideal is N x latency / concurrency; the sandbox runs in this process, the apply in a fresh one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.sandbox.server import Sandbox, ServerThread

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
            subprocess.run([sys.executable, "-m", "reconciler", "apply", str(config), "--yes", "--state",
                            str(Path(scratch) / "state.json"), "--concurrency", str(concurrency)],
                           env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            elapsed = time.perf_counter() - started
    finally:
        server.stop()
    ideal = count * latency_ms / 1000 / concurrency
    return {"accounts": count, "seconds": elapsed, "ideal": ideal, "per_second": count / elapsed,
            "max_in_flight": sandbox.stats.max_in_flight, "patched": len(sandbox.stats.patched)}


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


def main() -> None:
    count, latency_ms, concurrency = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
    r = bench(count, latency_ms, concurrency)
    ratio = f", {r['seconds'] / r['ideal']:.2f}x the ideal {r['ideal']:.2f} s" if r["ideal"] else ""
    print(f"apply {count} accounts at {latency_ms:g} ms, concurrency {concurrency}: {r['seconds']:.2f} s "
          f"({r['per_second']:.0f} PATCH/s{ratio}); max in flight at the server {r['max_in_flight']}")
    if "--sequential" in sys.argv:
        loop = sequential_loop(count, latency_ms)
        print(f"sequential httpx loop over 500 accounts, scaled to {count}: {loop:.1f} s "
              f"(apply is {loop / r['seconds']:.0f}x faster)")


if __name__ == "__main__":
    main()
