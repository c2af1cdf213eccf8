"""Redaction: the cost of `Redactor.redact` on failure messages when many secrets are known.

Usage: python benchmarks/bench_redact.py [--passwords N] [--messages M] [--rounds R] [--against DIR ...]

Each round runs, in a fresh process per checkout, what an apply of a large fleet does: N distinct proxy passwords
(24 random URL-safe characters, as `secrets.token_urlsafe(18)` makes them) and an API key are registered, then M
failure messages of 60 to 300 characters are redacted, one in ten of them echoing a secret (whole, cut short,
upper-cased, in hex or base64). It prints, per checkout, the medians of: the first `redact` (which builds the
index of the secrets), the M redactions after it (both in CPU time of the process, which other processes on the
machine disturb less than wall time), the process's peak RSS, and how many messages redaction changed. The
current checkout is this file's; `--against DIR` adds the package at DIR (another commit's tree, say), imported
through PYTHONPATH.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

_CHILD = r"""
import base64, json, random, resource, sys, time
from reconciler import secrets

passwords, messages = int(sys.argv[1]), int(sys.argv[2])
rng = random.Random(7)
alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
known = ["".join(rng.choice(alphabet) for _ in range(24)) for _ in range(passwords)]
key = "KEY_" + "".join(rng.choice(alphabet) for _ in range(32))
texts = []
for index in range(messages):
    host = f"proxy-{index % 977}.example.com:{8000 + index % 100}"
    text = (
        f"HTTP 502: the proxy {host} refused the connection for account acc_{index:06d}: upstream answered "
        f"'407 Proxy Authentication Required' after {index % 300} ms (request id {rng.getrandbits(64):016x})"
    )[: 60 + index % 241]
    if index % 10 == 0:
        secret = known[index % len(known)] if known else key
        shape = (index // 10) % 5
        echoed = (
            secret if shape == 0
            else secret[:12] + "..." if shape == 1
            else secret.upper() if shape == 2
            else secret.encode().hex() if shape == 3
            else base64.b64encode(json.dumps({"password": secret}).encode()).decode()
        )
        text = f"HTTP 400: bad credentials {echoed} for acc_{index:06d}"
    texts.append(text)
started = time.process_time()
redactor = secrets.Redactor()
for value in known:
    redactor.register(value)
redactor.register(key)
registered = time.process_time()
redactor.redact("warm-up: builds the index")
built = time.process_time()
redacted = [redactor.redact(text, limit=300) for text in texts]
done = time.process_time()
print(json.dumps({
    "register": registered - started,
    "first_redact": built - registered,
    "redact_all": done - built,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "changed": sum(1 for before, after in zip(texts, redacted) if before != after),
}))
"""


def run_once(package_root: Path, passwords: int, messages: int) -> dict[str, float]:
    environment = {**os.environ, "PYTHONPATH": str(package_root)}
    finished = subprocess.run(
        [sys.executable, "-c", _CHILD, str(passwords), str(messages)],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        cwd=package_root,
    )
    result: dict[str, float] = json.loads(finished.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passwords", type=int, default=60_000)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", action="append", default=[], type=Path)
    arguments = parser.parse_args()
    roots = [HERE.parent, *(path.resolve() for path in arguments.against)]
    results: dict[Path, list[dict[str, float]]] = {root: [] for root in roots}
    for round_number in range(arguments.rounds):
        order = roots if round_number % 2 == 0 else roots[::-1]
        for root in order:
            results[root].append(run_once(root, arguments.passwords, arguments.messages))
    print(
        f"{arguments.passwords:,} passwords known, {arguments.messages:,} messages, "
        f"medians of {arguments.rounds} round(s)"
    )
    print("| checkout | register | first redact (index) | redact all | per message | peak RSS | changed |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for root, rounds in results.items():

        def median(name: str, rounds: list[dict[str, float]] = rounds) -> float:
            return statistics.median(result[name] for result in rounds)

        per_message = median("redact_all") / max(1, arguments.messages) * 1e6
        print(
            f"| {root} | {median('register'):.2f} s | {median('first_redact'):.2f} s | "
            f"{median('redact_all'):.2f} s | {per_message:.1f} µs | {median('peak_rss_mib'):.0f} MiB | "
            f"{median('changed'):.0f} |"
        )


if __name__ == "__main__":
    main()
