"""The pre-commit hook this repository offers (`.pre-commit-hooks.yaml`): a configuration repository that lists
it gets `reconciler validate` on every commit that touches its accounts. Run through pre-commit itself, which
installs this repository (the work tree's files) into a virtualenv of its own, as it would from GitHub."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pre_commit.clientlib import load_manifest

from tests.workflow_harness import copy_tree

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / ".pre-commit-hooks.yaml"
PRE_COMMIT = str(Path(sys.executable).with_name("pre-commit"))
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Config Author",
    "GIT_AUTHOR_EMAIL": "author@example.com",
    "GIT_COMMITTER_NAME": "Config Author",
    "GIT_COMMITTER_EMAIL": "author@example.com",
}
#: `host` and `port` level with `proxy:`, not under it.
MISINDENTED = "version: 1\naccounts:\n  acc_a:\n    proxy:\n    host: p.example.com\n    port: 8080\n"
VALID = "version: 1\naccounts:\n  acc_a: {provider: LINKEDIN, country: DE}\n"


def test_the_hooks_file_is_a_valid_pre_commit_manifest() -> None:
    """pre-commit's own schema, and what the hook promises: validate, run once on the whole configuration."""
    [hook] = load_manifest(str(MANIFEST))
    assert hook["id"] == "reconciler-validate"
    assert hook["language"] == "python"
    assert hook["entry"] == "reconciler validate"
    assert hook["pass_filenames"] is False and hook["args"] == ["accounts.yaml"]
    files = re.compile(hook["files"])
    for name in ("accounts.yaml", "accounts.yml", "accounts/emea.yaml", "accounts/amer/us.yml"):
        assert files.search(name), name
    for name in (
        "README.md",
        "my-accounts.yaml",
        "accounts.yaml.bak",
        "other/accounts.yaml",
        "accounts/notes.md",
    ):
        assert not files.search(name), name


def git(cwd: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_IDENTITY},
    )
    return result.stdout.strip()


@pytest.fixture(scope="module")
def hook_repository(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, Path]]:
    """This repository as pre-commit would clone it (the work tree's files, committed), its commit, and a
    PRE_COMMIT_HOME shared by the tests, so the hook's virtualenv is built once."""
    base = tmp_path_factory.mktemp("pre-commit")
    repository = copy_tree(ROOT, base / "reconciler")
    git(repository, "init", "--quiet", "--initial-branch=main")
    git(repository, "add", "--all")
    git(repository, "-c", "commit.gpgsign=false", "commit", "--quiet", "-m", "the work tree")
    yield repository, git(repository, "rev-parse", "HEAD"), base / "home"


def pre_commit(config_repository: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **GIT_IDENTITY, "PRE_COMMIT_HOME": str(home), "NO_COLOR": "1"}
    environment.pop("GITHUB_ACTIONS", None)  # the hook's output as on a developer's machine
    return subprocess.run(
        [PRE_COMMIT, *args],
        cwd=config_repository,
        capture_output=True,
        text=True,
        check=False,
        env=environment,
    )


def config_repository(
    path: Path, files: dict[str, str], hook_repository: tuple[Path, str, Path], hook: str
) -> Path:
    repository, rev, _ = hook_repository
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch=main")
    config = (
        f"repos:\n  - repo: {repository}\n    rev: {rev}\n    hooks:\n      - id: reconciler-validate\n{hook}"
    )
    for name, text in {".pre-commit-config.yaml": config, **files}.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text, encoding="utf-8")
    git(path, "add", "--all")
    return path


@pytest.mark.timeout(600)
def test_the_hook_fails_a_commit_of_a_bad_configuration_with_the_positioned_line(
    tmp_path: Path, hook_repository: tuple[Path, str, Path]
) -> None:
    """Installed by pre-commit from this repository (no index beyond the one pip is given), the hook runs
    `reconciler validate accounts.yaml` and fails with the problem at its line and column; fixed, it passes;
    a commit that touches no account file skips it."""
    home = hook_repository[2]
    repository = config_repository(
        tmp_path / "config", {"accounts.yaml": MISINDENTED, "README.md": "acme\n"}, hook_repository, ""
    )

    failed = pre_commit(repository, home, "run", "--all-files")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "reconciler validate" in failed.stdout and "Failed" in failed.stdout
    assert (
        "accounts.yaml:5:5: accounts.acc_a.proxy is empty: 'host' and 'port' below it are indented level with "
        "'proxy:' (line 4), not under it; indent them further"
    ) in failed.stdout

    skipped = pre_commit(repository, home, "run", "--files", "README.md")
    assert skipped.returncode == 0 and "(no files to check)Skipped" in skipped.stdout, skipped.stdout

    (repository / "accounts.yaml").write_text(VALID, encoding="utf-8")
    passed = pre_commit(repository, home, "run", "--files", "accounts.yaml")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "Passed" in passed.stdout


@pytest.mark.timeout(600)
def test_the_hook_validates_a_configuration_directory_whole(
    tmp_path: Path, hook_repository: tuple[Path, str, Path]
) -> None:
    """`args: [accounts]` for a directory: a change to one file is checked against the others (an id declared
    in two files), which running validate on each changed file alone would miss."""
    files = {
        "accounts/amer.yaml": "version: 1\naccounts:\n  acc_a: {country: US}\n",
        "accounts/emea.yaml": "version: 1\naccounts:\n  acc_a: {country: DE}\n",
    }
    repository = config_repository(tmp_path / "config", files, hook_repository, "        args: [accounts]\n")

    result = pre_commit(repository, hook_repository[2], "run", "--files", "accounts/emea.yaml")
    assert result.returncode == 1, result.stdout + result.stderr
    assert (
        "accounts/emea.yaml:3:3: account 'acc_a' is also declared in accounts/amer.yaml:3:3" in result.stdout
    )
