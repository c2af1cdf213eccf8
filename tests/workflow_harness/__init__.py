"""Run GitHub Actions workflows and composite actions on this machine, step by step, as a hosted runner would.

The tests use it to execute the ready-to-copy workflows and the action (not only to validate their schema).

What it honours, as GitHub documents it:
- triggers: the event's name, `branches` and `paths` filters (`*`, `**`, `?`); a workflow_dispatch's `inputs`
  context holds each declared input's default unless the event gives it, and an undeclared input is refused;
- jobs in `needs` order, job `if:` (default `success()`), job `outputs`, the `needs` context;
- steps in order: `if:` (default `success()`; `always()`, `success()`, `failure()`, `cancelled()`), `id`,
  `continue-on-error`, `working-directory`, `shell` (`bash` is `bash --noprofile --norc -eo pipefail`, no shell
  is `bash -e`), `defaults.run`, `env` merged workflow -> job -> step (and GITHUB_ENV from earlier steps);
- `${{ }}` expressions (contexts github, env, vars, secrets, inputs, steps, needs, job, runner; operators, loose
  equality, the functions contains, startsWith, endsWith, format, join, toJSON, fromJSON), substituted into
  `run:` text before the shell sees it, as GitHub does;
- the files a step writes: GITHUB_OUTPUT (`k=v` and `k<<DELIM`), GITHUB_ENV, GITHUB_PATH, GITHUB_STEP_SUMMARY;
  workflow commands in the log (`::error ...::`, `::warning`, `::notice`) become annotations;
- secrets as the `secrets` context (a secret that is not given is an empty string, as for a fork's pull request);
  configuration variables as `vars`; the token's permissions (workflow or job `permissions`, read-only for a pull
  request from a fork);
- each job on a fresh runner: its own workspace and RUNNER_TEMP, deleted when the job ends, and a minimal
  environment (no variable of the test process leaks into a step);
- composite actions (`uses: ./` or a name given to the Runner): inputs with defaults, `github.action_path` and
  GITHUB_ACTION_PATH, the action's own `steps` context, outputs mapped from its steps.

Stand-ins for `uses:` steps (anything else is an error, never silently skipped):
- actions/checkout: `git clone` of the repository into the job's fresh workspace, at `ref` or the event's sha
  (for a pull request, the head commit, published in the repository as refs/pull/N/head as GitHub does; GitHub
  would check out a merge commit);
- actions/setup-python: puts one Python on PATH for every job, a venv that sees the test venv's packages (so
  installing the action does not download its dependencies); the requested version is recorded, not honoured;
- actions/upload-artifact, actions/download-artifact: copy to and from a per-run directory; a name already
  uploaded in the run is an error (as from v4), `if-no-files-found` is honoured;
- marocchino/sticky-pull-request-comment: one comment per pull request and `header`, created then updated in
  place, refused without `pull-requests: write`;
- the `gh` CLI: a fake on PATH that keeps issues and labels in a JSON file (issue list/create/edit/close, label
  create; `--jq` through the system's jq), refused without `issues: write`.

Not modelled: matrices, services, containers, job-level `continue-on-error`, concurrency (runs here are
sequential), `hashFiles`, reusable workflows.
"""

from tests.workflow_harness.errors import HarnessError
from tests.workflow_harness.repository import Event, Repository
from tests.workflow_harness.runner import (
    JobResult,
    Runner,
    StepResult,
    WorkflowRun,
    copy_tree,
    toolcache_python,
)

__all__ = [
    "Event",
    "HarnessError",
    "JobResult",
    "Repository",
    "Runner",
    "StepResult",
    "WorkflowRun",
    "copy_tree",
    "toolcache_python",
]
