"""The sandbox's own speed: requests/s at zero latency, and requests held in flight under latency.

The load comes from raw asyncio keep-alive connections (the cheapest client: ~15,400 requests/s against a
minimal asyncio server on this machine), so the server, not the client, is what is measured. The sandbox runs
as `reconciler sandbox` in its own process.
Usage: python benchmarks/bench_sandbox.py [SECONDS]
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

BODY = b'{"country":"US"}'
REQUEST = (
    b"PATCH /api/v1/accounts/acc_1 HTTP/1.1\r\nhost: x\r\nx-api-key: k\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


async def _connection(port: int, until: float, counter: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < until:
            writer.write(REQUEST)
            header = await reader.readuntil(b"\r\n\r\n")
            length = int(header.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            counter[0] += 1
    finally:
        writer.close()


async def _load(port: int, connections: int, seconds: float) -> float:
    counter = [0]
    started = time.monotonic()
    await asyncio.gather(*[_connection(port, started + seconds, counter) for _ in range(connections)])
    return counter[0] / (time.monotonic() - started)


def run(latency_ms: float, connections: int, seconds: float) -> float:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "sandbox",
            "--port",
            "0",
            "--api-key",
            "k",
            "--accept-any-account",
            "--latency-ms",
            str(latency_ms),
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(process.stderr.readline().rsplit(":", 1)[-1].split("/")[0])
        return asyncio.run(_load(port, connections, seconds))
    finally:
        process.terminate()
        process.wait()
        process.stderr.close()


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    rate = run(0, 32, seconds)
    print(f"sandbox at 0 ms latency, 32 connections: {rate:.0f} requests/s")
    rate = run(200, 256, seconds)
    ideal = 256 / 0.2
    print(
        f"sandbox at 200 ms latency, 256 connections: {rate:.0f} requests/s (ideal {ideal:.0f}: "
        f"{rate / ideal:.0%} of it, so {rate * 0.2:.0f} requests in flight on average)"
    )


if __name__ == "__main__":
    main()
