"""The whole path at 100,000 accounts on PostgreSQL: plan, apply, the plan comment a reviewer gets, and one account's
`state show`, for this checkout and (with --against DIR) another, side by side.

Usage: python benchmarks/bench_scale.py [--accounts N] [--rounds R] [--pg URL] [--against DIR]

The configuration is 50 files by team and region: 60% custom proxies whose password is one of five `${VAR}`s, 40%
managed by country, 1% with a resync. Each round and build, on a fresh PostgreSQL schema:

- `plan` of the whole fleet against no state (wall seconds, peak RSS);
- `apply` of the whole fleet against a sandbox in this process (50 ms latency, `--concurrency 64`);
- a pull request that moves the first 500 accounts of one file to new proxy hosts (300 of them have a custom
  proxy, so 300 updates): `plan --format markdown` (wall seconds, the comment's characters, whether it has the
  per-file table and names the cut files), and the same plan without the secrets (a fork): how many accounts it
  lists (300 is right: the others differ only, perhaps, by their password);
- a change of 42% of the accounts: whether `plan` says that apply would refuse it;
- `state show ID` of one account (wall seconds, peak RSS).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from reconciler.sandbox import Sandbox, ServerThread

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

from generate import byte_compile_reconciler  # noqa: E402

KEY = "bench-key"
FILES = 50
REGIONS = ("EU", "US", "APAC", "LATAM", "MEA")
SECRETS = {f"PROXY_PW_{region}": f"bench-{region.lower()}-secret" for region in REGIONS}
COUNTRIES = ("US", "DE", "FR", "GB", "BR", "JP", "SG", "IN", "ZA", "AE")


def _file_name(index: int) -> str:
    return f"team{index // len(REGIONS):02d}-{REGIONS[index % len(REGIONS)].lower()}.yaml"


def write_fleet(count: int, directory: Path, moved: int = 0, changed_share: float = 0.0) -> None:
    """`count` accounts in FILES files; the first `moved` accounts of the first file get new proxy hosts, and a
    `changed_share` of all accounts new ports (a large change)."""
    directory.mkdir(parents=True, exist_ok=True)
    per_file = -(-count // FILES)
    for file_index in range(FILES):
        region = REGIONS[file_index % len(REGIONS)]
        lines = ["version: 1", "defaults:", "  proxy: {protocol: https, port: 8080}", "accounts:"]
        for i in range(file_index * per_file, min(count, (file_index + 1) * per_file)):
            account_id = f"acc_{i:07d}"
            provider = "LINKEDIN" if i % 2 else "TELEGRAM"
            resync = ", resync: {generation: 1}" if i % 100 == 7 else ""
            if i % 5 < 3:  # 60% custom
                host = f"p{i % 97}.{region.lower()}.proxy.example.com"
                if file_index == 0 and i - file_index * per_file < moved:
                    host = f"p{i % 97}.{region.lower()}.proxy2.example.com"
                port = 9090 if changed_share and (i % 1000) < changed_share * 1000 else 8080
                lines.append(
                    f"  {account_id}: {{provider: {provider}, proxy: {{host: {host}, port: {port}, "
                    f'username: u{i}, password: "${{PROXY_PW_{region}}}"}}{resync}}}'
                )
            else:
                country = COUNTRIES[i % len(COUNTRIES)]
                if changed_share and (i % 1000) < changed_share * 1000:
                    country = "NL"
                lines.append(f"  {account_id}: {{provider: {provider}, country: {country}{resync}}}")
        (directory / _file_name(file_index)).write_text("\n".join(lines) + "\n")


#: Runs a command and prints, on stderr after its own, its wall seconds, peak RSS (KiB) and exit code: one
#: process per command, so that RUSAGE_CHILDREN's peak is that command's alone.
PROBE = (
    "import resource, subprocess, sys, time; t = time.perf_counter(); "
    "r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE); "
    "e = time.perf_counter() - t; sys.stdout.buffer.write(r.stdout); "
    "sys.stderr.write(r.stderr.decode(errors='replace')[-300:] + "
    "f'\\n@@ {e} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} {r.returncode}\\n')"
)


def timed(arguments: list[str], environ: dict[str, str], cwd: str) -> tuple[float, float, str, int]:
    """Wall seconds, peak RSS (MiB), stdout and exit code of `python -m reconciler ARGUMENTS` in a fresh process."""
    command = [sys.executable, "-c", PROBE, sys.executable, "-m", "reconciler", *arguments]
    process = subprocess.run(command, env=environ, cwd=cwd, capture_output=True)
    tail = process.stderr.decode(errors="replace")
    match = re.search(r"@@ ([0-9.]+) ([0-9]+) (-?[0-9]+)\n\Z", tail)
    assert match, tail
    seconds, peak, code = float(match.group(1)), int(match.group(2)) / 1024, int(match.group(3))
    if code not in (0, 2):
        print(f"  {arguments[:2]}: exit {code}: {tail[-400:]}", file=sys.stderr)
    return seconds, peak, process.stdout.decode("utf-8", "replace"), code


def one_round(count: int, source: Path | None, pg_url: str) -> dict[str, float]:
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    separator = "&" if "?" in pg_url else "?"
    state = f"{pg_url}{separator}schema={schema}&workspace=bench"
    sandbox = Sandbox(KEY, accept_any_account=True, latency_ms=50)
    server = ServerThread(sandbox).start()
    found: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as scratch:
            config = Path(scratch) / "accounts"
            write_fleet(count, config)
            env = {**os.environ, **SECRETS, "POSTPRESS_API_KEY": KEY, "POSTPRESS_API_URL": server.url}
            env.pop("GITHUB_STEP_SUMMARY", None)
            if source is not None:
                env["PYTHONPATH"] = str(source)
            fork = {name: value for name, value in env.items() if name not in SECRETS}

            found["plan s"], found["plan MiB"], _, _ = timed(
                ["plan", "accounts", "--state", state], env, scratch
            )
            apply = ["apply", "accounts", "--yes", "--state", state, "--concurrency", "64"]
            found["apply s"], _, _, found["apply exit"] = timed(apply, env, scratch)
            found["patched"] = len(sandbox.stats.patched)

            write_fleet(count, config, moved=500)
            markdown_plan = ["plan", "accounts", "--state", state, "--format", "markdown"]
            found["plan500 s"], _, markdown, _ = timed(markdown_plan, env, scratch)
            found["comment chars"] = len(markdown)
            found["comment names cut files"] = float(bool(re.search(r"in \d+ file\(s\) left out", markdown)))
            found["comment has file table"] = float(
                "| file | create | update | forget | resync |" in markdown
            )
            _, _, text, _ = timed(["plan", "accounts", "--state", state], fork, scratch)
            found["fork plan lists"] = len(re.findall(r"^  [~+\-] acc_", text, flags=re.MULTILINE))

            write_fleet(count, config, changed_share=0.42)
            _, _, text, _ = timed(["plan", "accounts", "--state", state], env, scratch)
            found["42% plan says refuse"] = float("apply would refuse this plan" in text)

            show = ["state", "show", "acc_0000001", "--state", state]
            found["state show s"], found["state show MiB"], _, _ = timed(show, env, scratch)
    finally:
        server.stop()
        import psycopg

        with psycopg.connect(pg_url, autocommit=True) as connection:
            connection.execute(f'drop schema if exists "{schema}" cascade')
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--pg", default=os.environ.get("RECONCILER_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--against", type=Path, default=None, help="another checkout to run side by side")
    arguments = parser.parse_args()
    byte_compile_reconciler()
    contenders: list[tuple[str, Path | None]] = [("this", None)]
    if arguments.against is not None:
        contenders.append((arguments.against.name, arguments.against.resolve()))
    measured: dict[str, list[dict[str, float]]] = {}
    for _ in range(arguments.rounds):
        for label, source in contenders:
            measured.setdefault(label, []).append(one_round(arguments.accounts, source, arguments.pg))
    keys = list(next(iter(measured.values()))[0])
    print(f"{arguments.accounts:,} accounts, median of {arguments.rounds} round(s)")
    print(f"{'':<28}" + "".join(f"{label:>14}" for label in measured))
    for key in keys:
        row = [statistics.median(run.get(key, float("nan")) for run in runs) for runs in measured.values()]
        print(f"{key:<28}" + "".join(f"{value:>14.2f}" for value in row))


if __name__ == "__main__":
    main()
