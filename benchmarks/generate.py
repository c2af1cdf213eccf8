"""Generate a realistic config of N accounts and a matching recorded state with 1% of accounts changed.

A third managed by country, two thirds custom proxies with `${VAR}` passwords, a tenth with resync blocks.
Usage: python benchmarks/generate.py N OUT_DIR   (writes OUT_DIR/accounts.yaml and OUT_DIR/state.json)
"""

from __future__ import annotations

import compileall
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import reconciler
from reconciler.config import load_config
from reconciler.model import Desired
from reconciler.secrets import fingerprinted
from reconciler.state.base import new_salt

COUNTRIES = ["US", "DE", "FR", "GB", "ES", "IT", "NL", "SE", "PL", "BR"]
PASSWORD_ENV = {"BENCH_PROXY_PASSWORD": "bench-secret"}


def byte_compile_reconciler() -> None:
    """Write the package's bytecode, as `pip install` does: measured processes then load it instead of compiling
    every module from source (~70 ms per start with PYTHONDONTWRITEBYTECODE set and an editable install)."""
    compileall.compile_dir(Path(reconciler.__file__).parent, quiet=1)


def reconciler_command(command: str, config: Path | str, state: Path | str, *options: str) -> list[str]:
    """`python -m reconciler COMMAND CONFIG --state STATE OPTIONS` as a fresh process runs it (`apply` with --yes)."""
    yes = ["--yes"] if command == "apply" else []
    return [sys.executable, "-m", "reconciler", command, str(config), *yes, "--state", str(state), *options]


def write_managed_fleet(count: int, path: Path) -> None:
    """The simplest config of `count` accounts, all managed (`{country: US}`): what the apply benchmarks send."""
    lines = ["version: 1", "accounts:"] + [f"  acc_{i:07d}: {{country: US}}" for i in range(count)]
    path.write_text("\n".join(lines) + "\n")


def write_config(count: int, path: Path) -> None:
    lines = ["version: 1", "defaults:", "  proxy:", "    protocol: https", "accounts:"]
    for i in range(count):
        account_id = f"acc_{i:07d}"
        provider = "LINKEDIN" if i % 2 else "TELEGRAM"
        lines.append(f"  {account_id}:")
        lines.append(f"    provider: {provider}")
        lines.append(f"    labels: {{team: team{i % 7}}}")
        if i % 3 == 0:
            lines.append(f"    country: {COUNTRIES[i % len(COUNTRIES)]}")
        else:
            lines += [
                "    proxy:",
                f"      host: proxy{i % 97}.example.com",
                f"      port: {8000 + i % 1000}",
                f"      username: user{i}",
                "      password: ${BENCH_PROXY_PASSWORD}",
            ]
        if i % 10 == 0:
            lines += ["    resync:", "      generation: 1", "      chunk_size: 50"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_state(config: Path, path: Path, changed_share: float = 0.01) -> None:
    desired = load_config(str(config), PASSWORD_ENV)
    path.write_text(json.dumps(state_document(desired, changed_share)), encoding="utf-8")


def state_document(desired: Desired, changed_share: float = 0.01) -> dict[str, Any]:
    """A state recording `desired` as applied, with `changed_share` of its accounts recorded otherwise."""
    salt = new_salt()
    step = max(1, int(1 / changed_share))
    accounts = {}
    for index, (account_id, spec) in enumerate(sorted(desired.accounts.items())):
        settings = fingerprinted(spec.settings, salt)
        if index % step == 0 and settings and "country" in settings:
            settings = {"country": "ZZ"}  # recorded differently: planned as an update
        elif index % step == 0 and settings:
            settings = {"proxy": {**settings["proxy"], "port": 1}}
        accounts[account_id] = {
            "settings": settings,
            "applied_at": "2026-11-01T00:00:00Z",
            "resync_generation": 1 if spec.resync else 0,
            "resynced_at": None,
            "last_failure": None,
            "provider": spec.provider,
        }
    return {
        "format_version": 1,
        "lineage": str(uuid.uuid4()),
        "serial": 1,
        "salt": salt,
        "accounts": accounts,
    }


def main() -> None:
    count, out = int(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    write_config(count, out / "accounts.yaml")
    write_state(out / "accounts.yaml", out / "state.json")
    print(f"wrote {out / 'accounts.yaml'} and {out / 'state.json'} ({count} accounts)")


if __name__ == "__main__":
    main()
