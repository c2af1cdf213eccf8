"""actionlint over this repository's workflows, the ready-to-copy workflows and the composite action.

actionlint reads workflows, not action metadata, so the action is checked as the workflow it amounts to: its
inputs become `workflow_call` inputs (so `${{ inputs.x }}` must name a declared input), its steps one job's steps,
its outputs that job's outputs (so `${{ steps.id.outputs.x }}` must name a step). shellcheck, from its wheel,
checks every `run:` script.

Run as `python -m tests.workflow_lint` (from .ci/run); exit 0 clean, 1 with findings printed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
ACTION = ROOT / "action.yml"


def workflow_files(root: Path = ROOT) -> list[Path]:
    """This repository's CI workflows and the templates a config repository copies."""
    return sorted(
        [*(root / ".github" / "workflows").glob("*.yml"), *(root / "examples" / "workflows").glob("*.yml")]
    )


def _literal_blocks(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


def action_as_workflow(action_path: Path) -> str:
    """The composite action at `action_path` as a workflow that actionlint can check."""
    action: dict[str, Any] = yaml.safe_load(action_path.read_text("utf-8"))
    if action.get("runs", {}).get("using") != "composite":
        raise ValueError(f"{action_path}: not a composite action")
    inputs = {
        name: {"type": "string", "required": bool(spec.get("required", False))}
        for name, spec in (action.get("inputs") or {}).items()
    }
    outputs = {name: spec["value"] for name, spec in (action.get("outputs") or {}).items()}
    job: dict[str, Any] = {"runs-on": "ubuntu-latest", "steps": action["runs"]["steps"]}
    if outputs:
        job["outputs"] = outputs
    workflow = {
        "name": action.get("name", "action"),
        "on": {"workflow_call": {"inputs": inputs}},
        "jobs": {"action": job},
    }
    dumper = type("LiteralDumper", (yaml.SafeDumper,), {})
    dumper.add_representer(str, _literal_blocks)
    return yaml.dump(workflow, Dumper=dumper, sort_keys=False, width=10_000, allow_unicode=True)


def _actionlint(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    bin_dir = Path(sys.executable).parent
    command = [str(bin_dir / "actionlint"), "-no-color", "-shellcheck", str(bin_dir / "shellcheck"), *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, cwd=ROOT, check=False)


def lint_workflows(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    return _actionlint(*map(str, paths))


def lint_action(action_path: Path) -> subprocess.CompletedProcess[str]:
    name = f"{action_path.name} (checked as a workflow)"
    return _actionlint("-stdin-filename", name, "-", stdin=action_as_workflow(action_path))


def main() -> int:
    failed = False
    for result in (lint_workflows(workflow_files()), lint_action(ACTION)):
        sys.stdout.write(result.stdout + result.stderr)
        failed = failed or result.returncode != 0
    if not failed:
        print(f"actionlint: {len(workflow_files())} workflows and {ACTION.name} are clean")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
