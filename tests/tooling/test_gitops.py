"""The GitOps files: workflows and action lint clean, nothing installs a bare or unpinned name, one version
everywhere, and the CLI steps behave as the workflows expect."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.helpers import fleet
from tests.workflow_lint import ACTION, lint_action, lint_workflows, workflow_files

ROOT = Path(__file__).resolve().parents[2]
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["version"]
REPOSITORY = "postpress/reconciler"
DISTRIBUTION = "postpress-reconciler"


def test_workflows_and_action_validate_against_github_schemas() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in workflow_files()}
    assert names == {
        ".github/workflows/ci.yml",
        "examples/workflows/plan.yml",
        "examples/workflows/apply.yml",
        "examples/workflows/reconcile.yml",
    }
    checker = str(Path(sys.executable).with_name("check-jsonschema"))
    for schema, paths in (("vendor.github-workflows", workflow_files()), ("vendor.github-actions", [ACTION])):
        result = subprocess.run(
            [checker, "--builtin-schema", schema, *map(str, paths)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_finds_nothing_in_the_workflows_and_the_action() -> None:
    for result in (lint_workflows(workflow_files()), lint_action(ACTION)):
        assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_checks_the_action_inputs_steps_and_scripts(tmp_path: Path) -> None:
    broken = tmp_path / "action.yml"
    text = ACTION.read_text("utf-8")
    text = text.replace("${{ inputs.args }}", "${{ inputs.arguments }}")
    text = text.replace("${{ steps.run.outputs.report }}", "${{ steps.runs.outputs.report }}", 1)
    text = text.replace("command=${INPUT_COMMAND:-}", "command=$INPUT_COMMAND\n        unused=1")
    broken.write_text(text, encoding="utf-8")
    found = lint_action(broken).stdout
    assert 'property "arguments" is not defined' in found
    assert 'property "runs" is not defined' in found
    assert "SC2034" in found  # shellcheck ran on the run: script


# -- nothing installs a bare or unpinned name ------------------------------------------------------------------

PINNED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==\d+(\.\d+)*$")
GIT_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])? @ git\+https://\S+@v?\d+(\.\d+)*$")
INSTALL = re.compile(r"pip install((?:[ \t]+(?:\\\n\s*)?[^\s`|;&)]+)+)")


def install_offenders(text: str, markdown: bool = False) -> list[str]:
    """What `pip install` in `text` would take from an index without a pinned version or a git ref of a release.

    In markdown only code (fenced blocks and `inline` spans) counts. Local paths (`.`, `'.[sandbox]'`,
    `"$GITHUB_ACTION_PATH"`) and files (`-r`, `-c`) are fine; so is pip itself (the installer); a word built at
    run time (`'{pinned}'`) is left to the code that builds it."""
    segments = re.findall(r"```.*?```|`[^`\n]+`", text, re.S) if markdown else [text]
    offenders = []
    for match in (found for segment in segments for found in INSTALL.finditer(segment)):
        arguments = match.group(1).replace("\\\n", " ")
        try:
            words = shlex.split(arguments, comments=True)
        except ValueError:
            words = [word.strip("'\"") for word in arguments.split()]
        skip_next = False
        for word in words:
            if skip_next or word.startswith("-"):
                skip_next = word in ("-r", "-c", "--requirement", "--constraint", "-e", "--editable")
                continue
            if word.startswith((".", "/", "$")) or word == "pip" or "{" in word:
                continue
            if not (PINNED.match(word) or GIT_REF.match(word)):
                offenders.append(word)
    return offenders


def test_the_install_check_finds_bare_and_unpinned_names() -> None:
    assert install_offenders("pip install reconciler") == ["reconciler"]
    assert install_offenders(
        "Run `pip install reconciler` first; pip install is fine in prose.", markdown=True
    ) == ["reconciler"]
    assert install_offenders("run: pip install postpress-reconciler\n") == ["postpress-reconciler"]
    assert install_offenders("pip install 'postpress-reconciler[sandbox]>=0.2'") == [
        "postpress-reconciler[sandbox]>=0.2"
    ]
    assert install_offenders("pip install 'postpress-reconciler @ git+https://github.com/x/y@main'") != []
    assert (
        install_offenders('pip install -q -e ".[test]" "$GITHUB_ACTION_PATH[postgres]" --upgrade pip') == []
    )
    assert install_offenders("pip install 'postpress-reconciler[sandbox]==0.2.0'") == []
    assert install_offenders("pip install 'postpress-reconciler @ git+https://github.com/x/y@v0.2.0'") == []


def repository_text_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    paths = [
        ROOT / name for name in listed if (ROOT / name).is_file() and name != "tests/tooling/test_gitops.py"
    ]
    return [
        path for path in paths if path.suffix in (".md", ".yml", ".yaml", ".toml", ".py", ".sh", ".txt", "")
    ]


def test_nothing_in_the_repository_installs_a_bare_or_unpinned_name() -> None:
    offenders = {}
    for path in repository_text_files():
        found = install_offenders(path.read_text("utf-8", errors="replace"), markdown=path.suffix == ".md")
        if found:
            offenders[path.relative_to(ROOT).as_posix()] = found
    assert offenders == {}
    assert "RECONCILER_PACKAGE" not in "".join(path.read_text("utf-8") for path in workflow_files())


def test_one_version_everywhere() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("reconciler")), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == f"reconciler, version {VERSION}"
    uses = {
        match
        for path in [*workflow_files(), ROOT / "docs" / "gitops.md", ROOT / "README.md"]
        for match in re.findall(rf"uses: {REPOSITORY}@([\w.-]+)", path.read_text("utf-8"))
    }
    assert uses == {f"v{VERSION}"}  # the templates and docs name the action at this release's tag
    docs = (ROOT / "docs" / "gitops.md").read_text("utf-8") + (ROOT / "README.md").read_text("utf-8")
    assert f"{DISTRIBUTION}=={VERSION}" in docs
    assert f"## [{VERSION}]" in (ROOT / "CHANGELOG.md").read_text("utf-8")
    # Each schema's $id is its address at this release's tag, which the editor line of the docs names.
    raw = f"https://raw.githubusercontent.com/{REPOSITORY}/v{VERSION}/"
    for path in sorted((ROOT / "reconciler" / "schemas").glob("*.schema.json")):
        assert json.loads(path.read_text("utf-8"))["$id"] == raw + path.relative_to(ROOT).as_posix()
    editor_line = f"# yaml-language-server: $schema={raw}reconciler/schemas/accounts.schema.json\n"
    assert editor_line in (ROOT / "docs" / "configuration.md").read_text("utf-8")


@pytest.mark.parametrize("name", ["LICENSE", "CHANGELOG.md", "CONTRIBUTING.md", ".pre-commit-config.yaml"])
def test_the_files_of_a_well_kept_project_exist(name: str) -> None:
    assert (ROOT / name).stat().st_size > 500


def test_ci_steps_against_the_sandbox(run, write, api, workdir, monkeypatch) -> None:
    summary, outputs = workdir / "summary.md", workdir / "outputs.txt"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))

    write("accounts.yaml", fleet(3).replace("country: US, ip: 203.0.113.2", "country: uk, ip: 203.0.113.2"))
    invalid = run("validate", "accounts.yaml")
    assert invalid.code == 1
    assert "::error file=accounts.yaml,line=4,col=23::account 'acc_0001': country 'uk'" in invalid.err

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
        "Apply: 3 account(s): 3 PATCHed, 0 resynced, 0 forgotten; 3 operation(s): 3 succeeded, 0 failed, 0 skipped."
        in summary.read_text()
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
    assert "<code>errors/proxy_error</code> (HTTP 502, 1 operation(s))" in summary.read_text()
