"""The repository on "GitHub" the workflows run in (a git repository that tests commit to), its events, and
which workflows an event triggers."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.workflow_harness.errors import HarnessError


@dataclass
class Event:
    name: str
    sha: str
    ref: str
    payload: dict[str, Any]
    changed_files: list[str] | None = None  # for `paths` filters; None: no filter applies


class Repository:
    """The GitHub repository the workflows run in: a git repository on disk that tests commit to."""

    def __init__(self, path: Path, full_name: str) -> None:
        self.path = path
        self.full_name = full_name
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "--quiet", "--initial-branch=main")
        self.git("config", "user.name", "Config Author")
        self.git("config", "user.email", "author@example.com")
        self.git("config", "commit.gpgsign", "false")

    def git(self, *args: str) -> str:
        result = subprocess.run(["git", *args], cwd=self.path, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise HarnessError(f"git {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout.strip()

    def commit(self, files: dict[str, str | None], message: str, branch: str = "main") -> str:
        """Commit `files` (None deletes) on `branch`, created from main when new; return the commit."""
        if branch != "main":
            exists = bool(self.git("branch", "--list", branch))
            self.git("checkout", "--quiet", *((branch,) if exists else ("-b", branch, "main")))
        for name, text in files.items():
            target = self.path / name
            if text is None:
                self.git("rm", "--quiet", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            self.git("add", name)
        self.git("commit", "--quiet", "--allow-empty", "-m", message)
        sha = self.git("rev-parse", "HEAD")
        self.git("checkout", "--quiet", "main")
        return sha

    def merge(self, branch: str) -> tuple[str, str]:
        """Merge `branch` into main (a merge commit); return (main before, main after)."""
        before = self.git("rev-parse", "main")
        self.git("merge", "--quiet", "--no-ff", "-m", f"Merge {branch}", branch)
        return before, self.git("rev-parse", "main")

    def changed(self, base: str, head: str) -> list[str]:
        return self.git("diff", "--name-only", f"{base}...{head}").splitlines()

    def _repo_payload(self) -> dict[str, Any]:
        owner = self.full_name.split("/")[0]
        return {"full_name": self.full_name, "name": self.full_name.split("/")[1], "owner": {"login": owner}}

    def pull_request(self, number: int, branch: str, fork_owner: str | None = None) -> Event:
        """A pull request event for `branch`'s head; with `fork_owner`, from that owner's fork."""
        head = self.git("rev-parse", branch)
        base = self.git("rev-parse", "main")
        self.git("update-ref", f"refs/pull/{number}/head", head)
        head_repo = (
            {"full_name": f"{fork_owner}/{self.full_name.split('/')[1]}", "fork": True}
            if fork_owner
            else {**self._repo_payload(), "fork": False}
        )
        payload = {
            "action": "synchronize",
            "number": number,
            "pull_request": {
                "number": number,
                "head": {"sha": head, "ref": branch, "repo": head_repo},
                "base": {"sha": base, "ref": "main", "repo": self._repo_payload()},
            },
            "repository": self._repo_payload(),
        }
        return Event("pull_request", head, f"refs/pull/{number}/merge", payload, self.changed(base, head))

    def push(self, before: str, after: str, branch: str = "main") -> Event:
        payload = {
            "ref": f"refs/heads/{branch}",
            "before": before,
            "after": after,
            "repository": self._repo_payload(),
        }
        return Event("push", after, f"refs/heads/{branch}", payload, self.changed(before, after))

    def schedule(self, cron: str) -> Event:
        sha = self.git("rev-parse", "main")
        return Event(
            "schedule", sha, "refs/heads/main", {"schedule": cron, "repository": self._repo_payload()}
        )

    def dispatch(self, inputs: dict[str, str] | None = None) -> Event:
        """A run by hand on main, with the workflow_dispatch `inputs` given (none by default)."""
        sha = self.git("rev-parse", "main")
        return Event(
            "workflow_dispatch",
            sha,
            "refs/heads/main",
            {"inputs": dict(inputs or {}), "repository": self._repo_payload()},
        )


def _glob(pattern: str) -> re.Pattern[str]:
    out, index = [], 0
    while index < len(pattern):
        if pattern.startswith("**", index):
            out.append(".*")
            index += 2
        elif pattern[index] == "*":
            out.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            out.append("[^/]")
            index += 1
        else:
            out.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(out) + r"\Z")


def _matches(patterns: list[str], value: str) -> bool:
    matched = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        if _glob(pattern[1:] if negated else pattern).match(value):
            matched = not negated
    return matched


def triggered(workflow: dict[str, Any], event: Event) -> bool:
    """Whether `event` starts `workflow`, its branches and paths filters included."""
    on = workflow.get("on", workflow.get(True))
    triggers: dict[str, Any] = (
        {on: None} if isinstance(on, str) else dict.fromkeys(on) if isinstance(on, list) else on
    )
    if event.name not in triggers:
        return False
    filters = triggers[event.name] or {}
    if event.name in ("push", "pull_request") and "branches" in filters:
        branch = (
            event.payload["pull_request"]["base"]["ref"]
            if event.name == "pull_request"
            else event.ref.removeprefix("refs/heads/")
        )
        if not _matches(filters["branches"], branch):
            return False
    if "paths" in filters and event.changed_files is not None:
        return any(_matches(filters["paths"], name) for name in event.changed_files)
    return True


def event_inputs(workflow: dict[str, Any], event: Event) -> dict[str, Any]:
    """The `inputs` context of a run: for workflow_dispatch, each declared input's default, overridden by what
    the event gives; an input the workflow does not declare is refused, as GitHub refuses it."""
    given: dict[str, Any] = event.payload.get("inputs", {})
    if event.name != "workflow_dispatch":
        return given
    on = workflow.get("on", workflow.get(True))
    declared = ((on.get("workflow_dispatch") or {}) if isinstance(on, dict) else {}).get("inputs") or {}
    unknown = set(given) - set(declared)
    if unknown:
        raise HarnessError(f"workflow_dispatch: unexpected inputs {sorted(unknown)}")
    return {name: given.get(name, (spec or {}).get("default", "")) for name, spec in declared.items()}
