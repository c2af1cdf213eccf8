"""The GitOps workflows validate offline, and the CLI steps they run behave as the workflows expect."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.test_apply import fleet

WORKFLOWS = sorted((Path(__file__).parent.parent / ".github" / "workflows").glob("*.yml"))


def test_workflows_validate_against_github_schema() -> None:
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "plan.yml", "apply.yml"}
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ci_steps_against_the_sandbox(run, write, api, workdir, monkeypatch) -> None:
    summary, outputs = workdir / "summary.md", workdir / "outputs.txt"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))

    write("accounts.yaml", fleet(3).replace("country: US, ip: 203.0.113.2", "country: uk, ip: 203.0.113.2"))
    invalid = run("validate", "accounts.yaml")
    assert invalid.code == 1
    assert "::error file=accounts.yaml,line=4,col=23::account 'acc_0001': country 'uk'" in invalid.out

    write("accounts.yaml", fleet(3))
    assert run("validate", "accounts.yaml").code == 0
    planned = run("plan", "accounts.yaml", "--format", "markdown", "--out", "plan.bin", "--detailed-exitcode")
    assert planned.code == 2
    assert planned.out.startswith("<!-- reconciler-plan -->\n### reconciler plan")
    assert "Config `accounts.yaml` against state `.reconciler/state.json` (new state)." in planned.out
    assert outputs.read_text().splitlines()[:2] == ["changes=true", "create=3"]

    applied = run("apply", "--plan", "plan.bin", "--yes", "--report", "report.json")
    assert applied.code == 0
    assert "<!-- reconciler-report -->" in summary.read_text()
    assert (
        "Apply: 3 account(s): 3 PATCHed, 0 resynced, 0 forgotten, 0 failed, 0 skipped." in summary.read_text()
    )

    api.faults = []
    write("accounts.yaml", fleet(3).replace("ip: 203.0.113.1}", "ip: 203.0.113.1, country: DE}"))
    assert run("plan", "accounts.yaml", "--detailed-exitcode").code == 1  # invalid: duplicate key
    write(
        "accounts.yaml",
        fleet(3).replace(
            "  acc_0000: {country: US, ip: 203.0.113.1}", "  acc_0000: {proxy: {host: down.invalid, port: 1}}"
        ),
    )
    failed = run("apply", "accounts.yaml", "--yes", "--max-attempts", "1", "--report", "report.json")
    assert failed.code == 3
    assert "errors/proxy_error (HTTP 502, 1 operation(s))" in summary.read_text()
