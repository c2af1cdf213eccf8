"""plan of N accounts whose passwords come from one SOPS-encrypted file, beside the same plan with `${VAR}` passwords.

Both configurations are the same N accounts, every one with a custom proxy, and differ in one line of `defaults`:
`password: ${BENCH_PROXY_PASSWORD}` (one variable for all) against `password: ${vault.$account}` (each account's
own entry of a SOPS file of N passwords, encrypted for an age key made here). Each is planned against a state
recorded from it with 1% of the accounts changed; every plan is a fresh process, `reconciler plan --format json`;
the rounds interleave the two (VAR, file, VAR, file, ...) and the medians are compared. The target: the file costs
at most 1.5x.

Usage: python benchmarks/bench_sops.py [N] [--rounds R] [--format dotenv|yaml|json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from generate import byte_compile_reconciler, state_document  # noqa: E402

from reconciler import sops  # noqa: E402
from reconciler.config import load_config  # noqa: E402

VARIABLE = {"BENCH_PROXY_PASSWORD": "bench-secret-shared"}
FILES = {"dotenv": "passwords.sops.env", "yaml": "passwords.sops.yaml", "json": "passwords.sops.json"}


def write_config(count: int, path: Path, password: str, secrets_file: str | None = None) -> None:
    lines = ["version: 1"]
    if secrets_file:
        lines += ["secrets:", f"  vault: {secrets_file}"]
    lines += ["defaults:", "  proxy:", "    protocol: https", f"    password: {password}", "accounts:"]
    for i in range(count):
        lines += [
            f"  acc_{i:07d}:",
            f"    provider: {'LINKEDIN' if i % 2 else 'TELEGRAM'}",
            f"    labels: {{team: team{i % 7}}}",
            "    proxy:",
            f"      host: proxy{i % 97}.example.com",
            f"      port: {8000 + i % 1000}",
            f"      username: user{i}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def passwords_text(count: int, fmt: str) -> str:
    passwords = {f"acc_{i:07d}": f"pw-{i:07d}-{os.urandom(6).hex()}" for i in range(count)}
    if fmt == "dotenv":
        return "".join(f"{key}={value}\n" for key, value in passwords.items())
    if fmt == "json":
        return json.dumps(passwords)
    return "".join(f"{key}: {value}\n" for key, value in passwords.items())


def encrypt(text: str, fmt: str, recipient: str, out: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sops.program(os.environ), "encrypt", "--input-type", fmt, "--output-type", fmt, "--age", recipient]
        + ["/dev/stdin"],
        input=text.encode(),
        capture_output=True,
        check=True,
        env={**os.environ, "SOPS_DISABLE_VERSION_CHECK": "1"},
    )
    out.write_bytes(done.stdout)
    return time.perf_counter() - started


def write_state(config: Path, path: Path, environ: dict[str, str]) -> None:
    desired = load_config(str(config), environ, decrypt="always")
    path.write_text(json.dumps(state_document(desired)), encoding="utf-8")


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of a fresh process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, rusage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.stderr is not None
    errors = process.stderr.read()
    process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"{command[:4]} failed: {errors.decode(errors='replace')[-500:]}")
    return elapsed, rusage.ru_maxrss / 1024


def bench(count: int, rounds: int, fmt: str, say: Callable[[str], object] = print) -> dict[str, float]:
    """The medians of both sides over `rounds` interleaved rounds (seconds, MiB) and their ratios."""
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    key, recipient = str(identity), str(identity.to_public())
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(scratch)
        name = FILES[fmt]
        encrypted_in = encrypt(passwords_text(count, fmt), fmt, recipient, directory / name)
        write_config(count, directory / "var.yaml", "${BENCH_PROXY_PASSWORD}")
        write_config(count, directory / "file.yaml", "${vault.$account}", name)
        base = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
        env_var = {**base, **VARIABLE}
        env_file = {**base, "SOPS_AGE_KEY": key, "SOPS_DISABLE_VERSION_CHECK": "1"}
        write_state(directory / "var.yaml", directory / "var-state.json", env_var)
        write_state(directory / "file.yaml", directory / "file-state.json", env_file)
        sides = {
            "${VAR}": (directory / "var.yaml", directory / "var-state.json", env_var),
            "SOPS file": (directory / "file.yaml", directory / "file-state.json", env_file),
        }
        size = (directory / name).stat().st_size
        say(
            f"{count:,} accounts; {name}: {size / 2**20:.1f} MiB encrypted (sops encrypt: {encrypted_in:.1f} s)"
        )
        times: dict[str, list[float]] = {side: [] for side in sides}
        rss: dict[str, list[float]] = {side: [] for side in sides}
        for round_number in range(1, rounds + 1):
            for side, (config, state, env) in sides.items():
                command = [sys.executable, "-m", "reconciler", "plan", str(config), "--state", str(state)]
                elapsed, peak = measure([*command, "--format", "json"], env)
                times[side].append(elapsed)
                rss[side].append(peak)
                say(f"round {round_number} {side}: {elapsed:.2f} s, {peak:.0f} MiB")
    result = {
        "var_s": statistics.median(times["${VAR}"]),
        "file_s": statistics.median(times["SOPS file"]),
        "var_rss_mib": statistics.median(rss["${VAR}"]),
        "file_rss_mib": statistics.median(rss["SOPS file"]),
    }
    result["time_ratio"] = result["file_s"] / result["var_s"]
    result["rss_ratio"] = result["file_rss_mib"] / result["var_rss_mib"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("count", type=int, nargs="?", default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--format", choices=sorted(FILES), default="dotenv")
    args = parser.parse_args()
    byte_compile_reconciler()
    r = bench(args.count, args.rounds, args.format, say=lambda line: print(line, flush=True))
    print(f"median ${{VAR}}: {r['var_s']:.2f} s, {r['var_rss_mib']:.0f} MiB")
    print(f"median SOPS file: {r['file_s']:.2f} s, {r['file_rss_mib']:.0f} MiB")
    print(f"ratio: {r['time_ratio']:.2f}x time, {r['rss_ratio']:.2f}x peak RSS (target: at most 1.5x time)")


if __name__ == "__main__":
    main()
