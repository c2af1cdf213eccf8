"""The runner: jobs and steps as a hosted runner executes them, with stand-ins for the actions they use (see the
package's docstring for what is honoured)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.workflow_harness.errors import HarnessError
from tests.workflow_harness.expressions import Scope, as_text
from tests.workflow_harness.repository import Event, Repository, event_inputs, triggered

STEP_TIMEOUT_SECONDS = 300
ANNOTATION = re.compile(r"^::(error|warning|notice)(?: ([^:]*))?::(.*)$")


def parse_file_command(text: str) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV: `name=value` lines and `name<<DELIMITER` blocks."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if not line.strip():
            continue
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            while index < len(lines) and lines[index] != delimiter:
                body.append(lines[index])
                index += 1
            if index >= len(lines):
                raise HarnessError(f"unterminated {name}<<{delimiter} block")
            index += 1
            values[name] = "\n".join(body)
        else:
            name, separator, value = line.partition("=")
            if not separator:
                raise HarnessError(f"not a file command line: {line!r}")
            values[name] = value
    return values


@dataclass
class StepResult:
    name: str
    id: str | None
    outcome: str  # success | failure | skipped
    conclusion: str
    outputs: dict[str, str] = field(default_factory=dict)


@dataclass
class JobResult:
    id: str
    result: str  # success | failure | skipped
    outputs: dict[str, str] = field(default_factory=dict)
    steps: list[StepResult] = field(default_factory=list)
    summary: str = ""
    log: str = ""
    annotations: list[str] = field(default_factory=list)
    workspace: Path | None = None

    def step(self, step_id: str) -> StepResult:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)


@dataclass
class WorkflowRun:
    workflow: str
    run_id: int
    triggered: bool
    jobs: dict[str, JobResult] = field(default_factory=dict)

    @property
    def conclusion(self) -> str:
        results = {job.result for job in self.jobs.values()}
        return "failure" if "failure" in results else "success"

    @property
    def log(self) -> str:
        return "\n".join(job.log for job in self.jobs.values())


StandIn = Callable[
    [dict[str, Any], "Scope", "_JobState", Repository, WorkflowRun], tuple[bool, dict[str, str]]
]
CHECKOUT_INPUTS = {"ref", "path", "fetch-depth", "persist-credentials"}
SETUP_PYTHON_INPUTS = {"python-version", "cache"}
UPLOAD_INPUTS = {"name", "path", "if-no-files-found", "retention-days", "overwrite", "include-hidden-files"}
DOWNLOAD_INPUTS = {"name", "path"}
STICKY_INPUTS = {"header", "path", "message", "GITHUB_TOKEN", "number"}
READ_ONLY = {"contents": "read", "metadata": "read"}
SCOPES = (
    "actions",
    "checks",
    "contents",
    "deployments",
    "issues",
    "metadata",
    "packages",
    "pull-requests",
    "statuses",
)
#: GitHub refuses a comment or an issue body longer than this (HTTP 422).
COMMENT_LIMIT = 65_536


def toolcache_python(directory: Path) -> Path:
    """A venv whose packages are the test venv's (through a .pth), so `pip install` of the action finds every
    dependency already there; returns its bin directory. Created once and shared by every job, as a runner image's
    tool cache is."""
    bin_dir = directory / "bin"
    if not (bin_dir / "python").exists():
        venv.EnvBuilder(with_pip=False, symlinks=True).create(directory)
        paths = sysconfig.get_paths()
        site = Path(
            subprocess.run(
                [str(bin_dir / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
        )
        site.joinpath("test-venv.pth").write_text(
            f"{paths['purelib']}\n{paths['platlib']}\n", encoding="utf-8"
        )
    return bin_dir


@dataclass
class _JobState:
    """What one job's steps share: its fresh runner directories, environment and files."""

    job_id: str
    workspace: Path
    temp: Path
    env: dict[str, str]  # GITHUB_ENV additions
    path: list[str]  # GITHUB_PATH additions, newest first
    summary: list[str]
    log: list[str]
    annotations: list[str]
    token: str
    permissions: dict[str, str]
    counter: int = 0


class Runner:
    """Runs workflows against a Repository; keeps what GitHub keeps between jobs and runs (artifacts, comments,
    issues) under `root`."""

    def __init__(self, root: Path, python_bin: Path, actions: dict[str, Path] | None = None) -> None:
        self.root = root
        self.python_bin = python_bin
        self.actions = actions or {}
        self.bin = root / "bin"
        self.tokens = root / "tokens"
        self.comments = root / "comments"
        self.artifacts = root / "artifacts"
        self.issues_file = root / "issues.json"
        for directory in (self.bin, self.tokens, self.comments, self.artifacts):
            directory.mkdir(parents=True, exist_ok=True)
        gh = self.bin / "gh"
        fake = Path(__file__).with_name("fake_gh.py")
        gh.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" "{fake}" "{self.issues_file}" "{self.tokens}" "$@"\n',
            encoding="utf-8",
        )
        gh.chmod(0o755)
        self.run_count = 0

    # -- what GitHub shows -----------------------------------------------------------------------------------
    def comments_on(self, number: int) -> dict[str, dict[str, Any]]:
        """Pull request `number`'s sticky comments, by header: {"body", "created", "updates"}."""
        directory = self.comments / str(number)
        if not directory.exists():
            return {}
        return {path.stem: json.loads(path.read_text("utf-8")) for path in sorted(directory.glob("*.json"))}

    def issues(self) -> list[dict[str, Any]]:
        if not self.issues_file.exists():
            return []
        issues: list[dict[str, Any]] = json.loads(self.issues_file.read_text("utf-8"))["issues"]
        return issues

    def artifact(self, run: WorkflowRun, name: str) -> Path:
        return self.artifacts / str(run.run_id) / name

    # -- running ---------------------------------------------------------------------------------------------
    def run(
        self,
        workflow_path: Path,
        repository: Repository,
        event: Event,
        secrets: dict[str, str] | None = None,
        variables: dict[str, str] | None = None,
    ) -> WorkflowRun:
        workflow: dict[str, Any] = yaml.safe_load(workflow_path.read_text("utf-8"))
        self.run_count += 1
        run = WorkflowRun(workflow_path.name, self.run_count, triggered(workflow, event))
        if not run.triggered:
            return run
        event_file = self.root / f"event-{run.run_id}.json"
        event_file.write_text(json.dumps(event.payload), encoding="utf-8")
        fork = bool(((event.payload.get("pull_request") or {}).get("head") or {}).get("repo", {}).get("fork"))
        jobs: dict[str, Any] = workflow["jobs"]
        remaining = list(jobs)
        while remaining:
            ready = [job_id for job_id in remaining if all(need in run.jobs for need in _needs(jobs[job_id]))]
            if not ready:
                raise HarnessError(f"{workflow_path.name}: jobs {remaining} wait on each other")
            for job_id in ready:
                remaining.remove(job_id)
                run.jobs[job_id] = self._job(
                    workflow, job_id, jobs[job_id], run, repository, event, event_file,
                    {} if fork else dict(secrets or {}), {} if fork else dict(variables or {}), fork,
                )  # fmt: skip
        return run

    def _job(
        self,
        workflow: dict[str, Any],
        job_id: str,
        job: dict[str, Any],
        run: WorkflowRun,
        repository: Repository,
        event: Event,
        event_file: Path,
        secrets: dict[str, str],
        variables: dict[str, str],
        fork: bool,
    ) -> JobResult:
        for unsupported in ("strategy", "services", "container", "continue-on-error", "uses"):
            if unsupported in job:
                raise HarnessError(f"job {job_id}: `{unsupported}` is not modelled")
        needs = {
            need: {"result": run.jobs[need].result, "outputs": run.jobs[need].outputs} for need in _needs(job)
        }
        needs_status = "success" if all(n["result"] == "success" for n in needs.values()) else "failure"
        granted = job.get("permissions", workflow.get("permissions", READ_ONLY))
        if isinstance(granted, str):  # read-all | write-all
            granted = dict.fromkeys(SCOPES, granted.removesuffix("-all"))
        permissions = dict(granted)
        if fork:
            permissions = {scope: "read" for scope in permissions}
        token = f"ghs_harness_{run.run_id}_{job_id}"
        (self.tokens / f"{token}.json").write_text(json.dumps(permissions), encoding="utf-8")
        github = {
            "event_name": event.name,
            "event": event.payload,
            "sha": event.sha,
            "ref": event.ref,
            "ref_name": event.ref.split("/", 2)[-1],
            "repository": repository.full_name,
            "repository_owner": repository.full_name.split("/")[0],
            "run_id": str(run.run_id),
            "run_number": str(run.run_id),
            "run_attempt": "1",
            "server_url": "https://github.com",
            "api_url": "https://api.github.com",
            "workflow": workflow.get("name", run.workflow),
            "job": job_id,
            "token": token,
            "actor": "harness",
            "head_ref": (event.payload.get("pull_request") or {}).get("head", {}).get("ref", ""),
            "base_ref": (event.payload.get("pull_request") or {}).get("base", {}).get("ref", ""),
        }
        scope = Scope(
            {
                "github": github,
                "secrets": {**secrets, "GITHUB_TOKEN": token},
                "vars": variables,
                "inputs": event_inputs(workflow, event),
                "needs": needs,
                "env": {},
                "steps": {},
                "job": {"status": "success"},
                "runner": {"os": "Linux", "arch": "X64", "name": "harness"},
                "strategy": {},
                "matrix": {},
            },
            status=needs_status,
        )
        result = JobResult(job_id, "skipped")
        if not scope.condition(job.get("if")):
            return result
        machine = self.root / "runners" / f"{run.run_id}-{job_id}"
        name = repository.full_name.split("/")[1]
        workspace = machine / "work" / name / name
        temp = machine / "temp"
        workspace.mkdir(parents=True)
        temp.mkdir()
        github["workspace"] = str(workspace)
        scope.contexts["runner"].update({"temp": str(temp), "tool_cache": str(self.python_bin.parent)})
        state = _JobState(job_id, workspace, temp, {}, [], [], [], [], token, permissions)
        base_env = {
            "PATH": f"{self.bin}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": os.environ.get("HOME", str(machine)),
            "LANG": "C.UTF-8",
            **{key: value for key, value in os.environ.items() if key.startswith("PIP_")},
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_EVENT_NAME": event.name,
            "GITHUB_EVENT_PATH": str(event_file),
            "GITHUB_SHA": event.sha,
            "GITHUB_REF": event.ref,
            "GITHUB_REPOSITORY": repository.full_name,
            "GITHUB_RUN_ID": str(run.run_id),
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_API_URL": "https://api.github.com",
            "GITHUB_JOB": job_id,
            "RUNNER_OS": "Linux",
            "RUNNER_TEMP": str(temp),
            "RUNNER_TOOL_CACHE": str(self.python_bin.parent),
        }
        env: dict[str, str] = {}
        for level in (workflow.get("env") or {}, job.get("env") or {}):
            for key, value in level.items():
                scope.contexts["env"] = {**env}
                env[key] = scope.interpolate(value)
        defaults = {
            **((workflow.get("defaults") or {}).get("run") or {}),
            **((job.get("defaults") or {}).get("run") or {}),
        }
        try:
            scope.status = "success"
            result.steps = list(
                self._steps(
                    job.get("steps") or [], scope, state, base_env, env, defaults, repository, run, None
                )
            )
            result.result = "failure" if scope.status == "failure" else "success"
            scope.contexts["job"] = {"status": result.result}
            result.outputs = {
                key: scope.interpolate(value) for key, value in (job.get("outputs") or {}).items()
            }
        finally:
            result.summary = "".join(state.summary)
            result.log = "\n".join(state.log)
            result.annotations = state.annotations
            result.workspace = workspace
            shutil.rmtree(machine)  # an ephemeral runner: nothing is left for the next job
        return result

    def _steps(
        self,
        steps: list[dict[str, Any]],
        scope: Scope,
        state: _JobState,
        base_env: dict[str, str],
        env: dict[str, str],
        defaults: dict[str, Any],
        repository: Repository,
        run: WorkflowRun,
        action_path: Path | None,
    ) -> Iterator[StepResult]:
        for index, step in enumerate(steps):
            name = step.get("name") or step.get("uses") or str(step.get("run", "")).split("\n")[0]
            step_id = step.get("id")
            if not scope.condition(step.get("if")):
                state.log.append(f"--- {name}: skipped")
                result = StepResult(str(name), step_id, "skipped", "skipped")
            else:
                step_env = {**env, **state.env}
                scope.contexts["env"] = dict(step_env)
                for key, value in (step.get("env") or {}).items():
                    step_env[key] = scope.interpolate(value)
                scope.contexts["env"] = dict(step_env)
                state.log.append(f"--- {scope.interpolate(name)}")
                started = time.monotonic()
                if "run" in step:
                    ok, outputs = self._run_step(
                        step, scope, state, base_env, step_env, defaults, action_path
                    )
                elif "uses" in step:
                    ok, outputs = self._uses_step(step, scope, state, base_env, step_env, repository, run)
                else:
                    raise HarnessError(f"step {index} has neither run nor uses")
                state.log.append(f"--- {scope.interpolate(name)}: {time.monotonic() - started:.1f} s")
                outcome = "success" if ok else "failure"
                conclusion = "success" if ok or step.get("continue-on-error") else "failure"
                if conclusion == "failure":
                    scope.status = "failure"
                result = StepResult(str(name), step_id, outcome, conclusion, outputs)
            if step_id:
                scope.contexts["steps"][step_id] = {
                    "outputs": result.outputs,
                    "outcome": result.outcome,
                    "conclusion": result.conclusion,
                }
            yield result

    def _process_env(
        self, state: _JobState, base_env: dict[str, str], step_env: dict[str, str]
    ) -> dict[str, str]:
        process_env = {**base_env, **step_env}
        process_env["PATH"] = ":".join([*state.path, base_env["PATH"]])
        return process_env

    def _file_commands(self, state: _JobState) -> dict[str, Path]:
        state.counter += 1
        directory = state.temp / "_runner_file_commands" / str(state.counter)
        directory.mkdir(parents=True)
        files = {
            name: directory / name.lower()
            for name in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_PATH", "GITHUB_STEP_SUMMARY")
        }
        for path in files.values():
            path.touch()
        return files

    def _collect(self, state: _JobState, files: dict[str, Path]) -> dict[str, str]:
        state.env.update(parse_file_command(files["GITHUB_ENV"].read_text("utf-8")))
        for line in files["GITHUB_PATH"].read_text("utf-8").splitlines():
            if line.strip():
                state.path.insert(0, line.strip())
        state.summary.append(files["GITHUB_STEP_SUMMARY"].read_text("utf-8"))
        return parse_file_command(files["GITHUB_OUTPUT"].read_text("utf-8"))

    def _run_step(
        self,
        step: dict[str, Any],
        scope: Scope,
        state: _JobState,
        base_env: dict[str, str],
        step_env: dict[str, str],
        defaults: dict[str, Any],
        action_path: Path | None,
    ) -> tuple[bool, dict[str, str]]:
        shell = step.get("shell") or (None if action_path else defaults.get("shell"))
        if action_path is not None and not shell:
            raise HarnessError("a composite action's run step needs `shell`")
        script = scope.interpolate(step["run"])
        directory = scope.interpolate(
            step.get("working-directory") or defaults.get("working-directory") or "."
        )
        cwd = (state.workspace / directory).resolve()
        files = self._file_commands(state)
        script_file = files["GITHUB_OUTPUT"].parent / "script"
        script_file.write_text(script, encoding="utf-8")
        command = {
            None: ["bash", "-e", str(script_file)],
            "bash": ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)],
            "sh": ["sh", "-e", str(script_file)],
            "python": ["python", str(script_file)],
        }.get(shell)
        if command is None:
            raise HarnessError(f"shell {shell!r} is not modelled")
        process_env = self._process_env(state, base_env, step_env)
        process_env.update({name: str(path) for name, path in files.items()})
        if action_path is not None:
            process_env["GITHUB_ACTION_PATH"] = str(action_path)
        if shell == "python":
            command[0] = shutil.which("python", path=process_env["PATH"]) or "python"
        completed = subprocess.run(
            command,
            cwd=cwd,
            env=process_env,
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_SECONDS,
            check=False,
        )
        for line in (completed.stdout + completed.stderr).splitlines():
            annotation = ANNOTATION.match(line)
            if annotation:
                state.annotations.append(line)
        state.log.append(completed.stdout + completed.stderr)
        outputs = self._collect(state, files)
        if completed.returncode != 0:
            state.log.append(f"Error: Process completed with exit code {completed.returncode}.")
        return completed.returncode == 0, outputs

    def _inputs(self, step: dict[str, Any], scope: Scope, known: set[str]) -> dict[str, str]:
        values = {key: scope.interpolate(value) for key, value in (step.get("with") or {}).items()}
        unknown = set(values) - known
        if unknown:
            raise HarnessError(f"{step['uses']}: inputs {sorted(unknown)} are not modelled by its stand-in")
        return values

    def _uses_step(
        self,
        step: dict[str, Any],
        scope: Scope,
        state: _JobState,
        base_env: dict[str, str],
        step_env: dict[str, str],
        repository: Repository,
        run: WorkflowRun,
    ) -> tuple[bool, dict[str, str]]:
        uses = str(step["uses"])
        name, _, _ref = uses.partition("@")
        if uses.startswith("./") or name in self.actions:
            action_dir = (state.workspace / uses).resolve() if uses.startswith("./") else self.actions[name]
            return self._composite(action_dir, step, scope, state, base_env, step_env, repository, run)
        stand_ins: dict[str, StandIn] = {
            "actions/checkout": self._checkout,
            "actions/setup-python": self._setup_python,
            "actions/upload-artifact": self._upload,
            "actions/download-artifact": self._download,
            "marocchino/sticky-pull-request-comment": self._sticky_comment,
        }  # fmt: skip
        if name not in stand_ins:
            raise HarnessError(f"no stand-in for {uses}")
        return stand_ins[name](step, scope, state, repository, run)

    def _composite(
        self,
        action_dir: Path,
        step: dict[str, Any],
        scope: Scope,
        state: _JobState,
        base_env: dict[str, str],
        step_env: dict[str, str],
        repository: Repository,
        run: WorkflowRun,
    ) -> tuple[bool, dict[str, str]]:
        metadata: dict[str, Any] = yaml.safe_load((action_dir / "action.yml").read_text("utf-8"))
        if metadata["runs"]["using"] != "composite":
            raise HarnessError(f"{action_dir}: only composite actions are modelled")
        declared: dict[str, Any] = metadata.get("inputs") or {}
        given = self._inputs(step, scope, set(declared))
        inputs = {}
        for input_name, spec in declared.items():
            if input_name in given:
                inputs[input_name] = given[input_name]
            elif spec.get("required"):
                raise HarnessError(f"{step['uses']}: required input {input_name!r} not given")
            else:
                inputs[input_name] = scope.interpolate(spec.get("default", ""))
        inner = Scope(
            {
                **scope.contexts,
                "github": {**scope.contexts["github"], "action_path": str(action_dir)},
                "inputs": inputs,
                "steps": {},
                "env": dict(step_env),
            }
        )
        results = list(
            self._steps(
                metadata["runs"]["steps"], inner, state, base_env, step_env, {}, repository, run, action_dir
            )
        )
        ok = all(result.conclusion != "failure" for result in results)
        outputs = {
            key: inner.interpolate(spec.get("value", ""))
            for key, spec in (metadata.get("outputs") or {}).items()
        }
        return ok, outputs

    # -- stand-ins -------------------------------------------------------------------------------------------
    def _checkout(
        self, step: dict[str, Any], scope: Scope, state: _JobState, repository: Repository, run: WorkflowRun
    ) -> tuple[bool, dict[str, str]]:
        inputs = self._inputs(step, scope, CHECKOUT_INPUTS)
        target = state.workspace / inputs.get("path", ".")
        target.mkdir(parents=True, exist_ok=True)
        ref = inputs.get("ref") or scope.contexts["github"]["sha"]
        for command in (
            ["git", "clone", "--quiet", str(repository.path), "."],
            ["git", "checkout", "--quiet", "--detach", ref],
        ):
            completed = subprocess.run(command, cwd=target, capture_output=True, text=True, check=False)
            if completed.returncode != 0:
                state.log.append(completed.stderr)
                return False, {}
        state.log.append(f"checked out {ref} into {target}")
        return True, {"ref": ref, "commit": ref}

    def _setup_python(
        self, step: dict[str, Any], scope: Scope, state: _JobState, repository: Repository, run: WorkflowRun
    ) -> tuple[bool, dict[str, str]]:
        inputs = self._inputs(step, scope, SETUP_PYTHON_INPUTS)
        state.path.insert(0, str(self.python_bin))
        state.log.append(
            f"python {inputs.get('python-version')} asked for; the harness's {sys.version.split()[0]} given"
        )
        version = ".".join(map(str, sys.version_info[:3]))
        return True, {"python-version": version, "python-path": str(self.python_bin / "python")}

    def _upload(
        self, step: dict[str, Any], scope: Scope, state: _JobState, repository: Repository, run: WorkflowRun
    ) -> tuple[bool, dict[str, str]]:
        inputs = self._inputs(step, scope, UPLOAD_INPUTS)
        name = inputs.get("name") or "artifact"
        source = state.workspace / inputs["path"]
        target = self.artifacts / str(run.run_id) / name
        if target.exists() and inputs.get("overwrite") != "true":
            state.log.append(f"Error: an artifact named {name!r} already exists in this run")
            return False, {}
        if not source.exists():
            mode = inputs.get("if-no-files-found", "warn")
            state.log.append(f"{mode}: no files were found with the provided path: {inputs['path']}")
            return mode != "error", {}
        target.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target / source.name)
        return True, {"artifact-id": f"{run.run_id}-{name}"}

    def _download(
        self, step: dict[str, Any], scope: Scope, state: _JobState, repository: Repository, run: WorkflowRun
    ) -> tuple[bool, dict[str, str]]:
        inputs = self._inputs(step, scope, DOWNLOAD_INPUTS)
        source = self.artifacts / str(run.run_id) / inputs["name"]
        if not source.exists():
            state.log.append(f"Error: artifact {inputs['name']!r} not found in run {run.run_id}")
            return False, {}
        target = state.workspace / inputs.get("path", ".")
        shutil.copytree(source, target, dirs_exist_ok=True)
        return True, {"download-path": str(target)}

    def _sticky_comment(
        self, step: dict[str, Any], scope: Scope, state: _JobState, repository: Repository, run: WorkflowRun
    ) -> tuple[bool, dict[str, str]]:
        inputs = self._inputs(step, scope, STICKY_INPUTS)
        number = inputs.get("number") or as_text(
            (scope.contexts["github"]["event"].get("pull_request") or {}).get("number")
        )
        if not number:
            state.log.append("Error: no pull request number")
            return False, {}
        token = inputs.get("GITHUB_TOKEN") or state.token
        grants_file = self.tokens / f"{token}.json"
        grants = json.loads(grants_file.read_text("utf-8")) if grants_file.exists() else {}
        if grants.get("pull-requests") != "write":
            state.log.append("Error: HTTP 403: Resource not accessible by integration")
            return False, {}
        body = (
            (state.workspace / inputs["path"]).read_text("utf-8")
            if inputs.get("path")
            else inputs.get("message", "")
        )
        if len(body) > COMMENT_LIMIT:
            state.log.append(f"Error: HTTP 422: the body is {len(body)} characters, over {COMMENT_LIMIT}")
            return False, {}
        header = inputs.get("header", "")
        store = self.comments / number / f"{header or 'default'}.json"
        store.parent.mkdir(parents=True, exist_ok=True)
        previous = json.loads(store.read_text("utf-8")) if store.exists() else None
        record = {
            "body": body,
            "created": 1,
            "updates": 0 if previous is None else previous["updates"] + 1,
        }
        store.write_text(json.dumps(record), encoding="utf-8")
        return True, {
            "previous_comment_id": "1" if previous else "",
            "created_comment_id": "" if previous else "1",
        }


def _needs(job: dict[str, Any]) -> list[str]:
    needs = job.get("needs") or []
    return [needs] if isinstance(needs, str) else list(needs)


def copy_tree(source: Path, target: Path) -> Path:
    """This repository's files as a checkout of the action would hold them (tracked and new, not ignored)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=source,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, listed):
        origin = source / name
        if not origin.exists() and not origin.is_symlink():
            continue  # deleted in the work tree, not yet committed
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_symlink():
            destination.symlink_to(os.readlink(origin))
        else:
            shutil.copy2(origin, destination)
    return target
