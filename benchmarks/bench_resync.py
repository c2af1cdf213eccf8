"""resync of N accounts whose syncs take P polls each, beside the ideal; in flight never above the concurrency.

Usage: python benchmarks/bench_resync.py N POLLS LATENCY_MS CONCURRENCY POLL_INTERVAL_S
The ideal is the larger of the request bound (N x (P + 2) requests x latency / concurrency) and one sync's own
chain ((P + 1) poll intervals + (P + 2) requests x latency).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.sandbox import Sandbox, ServerThread

sys.path.insert(0, str(Path(__file__).parent))

from generate import reconciler_command  # noqa: E402

KEY = "bench-key"


def bench(count: int, polls: int, latency_ms: float, concurrency: int, interval: float) -> dict[str, float]:
    sandbox = Sandbox(KEY, accept_any_account=True, latency_ms=latency_ms, sync_polls=polls)
    server = ServerThread(sandbox).start()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            config = Path(scratch) / "accounts.yaml"
            lines = ["version: 1", "accounts:"] + [
                f"  acc_{i:07d}: {{provider: LINKEDIN, resync: {{generation: 1}}}}" for i in range(count)
            ]
            config.write_text("\n".join(lines) + "\n")
            env = {**os.environ, "POSTPRESS_API_KEY": KEY, "POSTPRESS_API_URL": server.url}
            started = time.perf_counter()
            subprocess.run(
                reconciler_command(
                    "apply",
                    config,
                    Path(scratch) / "state.json",
                    "--concurrency",
                    str(concurrency),
                    "--sync-poll-interval",
                    str(interval),
                    "--max-resync-percent",  # a new fleet that asks every account for a resync, on purpose
                    "100",
                ),
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            elapsed = time.perf_counter() - started
    finally:
        server.stop()
    calls = polls + 2  # SYNC_STARTED, P x SYNC_RUNNING, then the terminal answer
    ideal = max(
        count * calls * latency_ms / 1000 / concurrency, (calls - 1) * interval + calls * latency_ms / 1000
    )
    return {
        "seconds": elapsed,
        "ideal": ideal,
        "max_in_flight": sandbox.stats.max_in_flight,
        "syncs": sum(sandbox.stats.syncs_started.values()),
        "after_terminal": sum(sandbox.stats.after_terminal.values()),
    }


def main() -> None:
    count, polls, latency_ms, concurrency, interval = (
        int(sys.argv[1]),
        int(sys.argv[2]),
        float(sys.argv[3]),
        int(sys.argv[4]),
        float(sys.argv[5]),
    )
    r = bench(count, polls, latency_ms, concurrency, interval)
    print(
        f"resync {count} accounts x {polls} polls at {latency_ms:g} ms, concurrency {concurrency}, poll every "
        f"{interval:g} s: {r['seconds']:.1f} s, {r['seconds'] / r['ideal']:.2f}x the ideal {r['ideal']:.1f} s; "
        f"max in flight {r['max_in_flight']}; syncs started {r['syncs']}, requests after a terminal status "
        f"{r['after_terminal']}"
    )


if __name__ == "__main__":
    main()
