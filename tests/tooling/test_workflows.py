"""The ready-to-copy workflows and the action, executed step by step (tests/workflow_harness.py) against the sandbox
and a PostgreSQL state: a config repository of 50 accounts, a pull request, a fork's pull request, the merge, and
the scheduled reconcile."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.planning import changed_fields
from reconciler.sandbox import Fault, Sandbox
from tests.helpers import SENTINEL_KEY, SENTINEL_PASSWORD, SENTINELS, assert_no_secrets, fresh_postgres_state
from tests.workflow_harness import Repository, Runner, WorkflowRun, copy_tree, toolcache_python

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "examples" / "workflows"
ACTION = "postpress/reconciler"
LEGACY_PASSWORD = "legacy-SENTINEL-0b94e1"
WORKFLOW_SECRETS = (*SENTINELS, LEGACY_PASSWORD)
ACCOUNTS = [f"acc_{i:02d}" for i in range(50)]


def fleet(**entries: str | None) -> str:
    """50 accounts: every third managed by country, the others custom proxies whose password is a secret;
    `entries` replaces (or with None removes) an account's line."""
    lines = ["version: 1", "defaults:", "  proxy:", "    protocol: https", "    port: 8080", "accounts:"]
    for index, account_id in enumerate(ACCOUNTS):
        if account_id in entries:
            entry = entries[account_id]
        elif index % 3 == 0:
            entry = "{provider: TELEGRAM, country: US}"
        else:
            entry = (
                f"{{provider: LINKEDIN, proxy: {{host: p{index:02d}.proxy.example.com, username: proxyuser, "
                'password: "${PROXY_PASSWORD}"}}'
            )
        if entry is not None:
            lines.append(f"  {account_id}: {entry}")
    return "\n".join(lines) + "\n"


#: acc_01 still has an old shared password, rotated by the pull request.
INITIAL = fleet(
    acc_01="{provider: LINKEDIN, proxy: {host: p01.proxy.example.com, username: proxyuser, "
    'password: "${LEGACY_PASSWORD}"}}'
)
#: The pull request: a password rotation, a custom proxy switched to a managed country, a removal.
PULL_REQUEST = fleet(acc_02="{provider: LINKEDIN, country: DE}", acc_03=None)
#: Its second push: the managed country was meant to be France.
SECOND_PUSH = fleet(acc_02="{provider: LINKEDIN, country: FR}", acc_03=None)


@pytest.fixture(scope="session")
def runner_image(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The runners' shared Python (their tool cache) and a checkout of this action at the work tree's state."""
    base = tmp_path_factory.mktemp("runner-image")
    return toolcache_python(base / "python"), copy_tree(ROOT, base / "actions" / "reconciler")


@pytest.fixture
def pg_state() -> Iterator[str]:
    with fresh_postgres_state("production") as url:
        yield url


@dataclass
class GitOps:
    """A config repository on "GitHub" whose 50 accounts were applied once, and the runners that serve it."""

    runner: Runner
    repository: Repository
    api: Sandbox
    state: str
    secrets: dict[str, str]
    variables: dict[str, str]

    def run(self, workflow: str, event: Any, **overrides: Any) -> WorkflowRun:
        options = {"secrets": self.secrets, "variables": self.variables, **overrides}
        result = self.runner.run(TEMPLATES / workflow, self.repository, event, **options)
        assert result.triggered, f"{workflow} did not trigger on {event.name}"
        return result

    def requests(self) -> list[tuple[str, str, int]]:
        """What reached the sandbox since the last reset: (method, account id, status)."""
        return sorted((e["method"], e["path"].rsplit("/", 1)[-1], e["status"]) for e in self.api.stats.log)


@pytest.fixture
def gitops(
    tmp_path: Path, runner_image: tuple[Path, Path], pg_state: str, run, api: Sandbox, monkeypatch
) -> GitOps:
    python_bin, action_dir = runner_image
    repository = Repository(tmp_path / "origin", "acme/accounts")
    repository.commit({"accounts.yaml": INITIAL}, "50 accounts")
    monkeypatch.setenv("LEGACY_PASSWORD", LEGACY_PASSWORD)
    applied = run("apply", str(repository.path / "accounts.yaml"), "--yes", "--state", pg_state)
    assert applied.code == 0, applied.err
    api.reset_stats()
    runner = Runner(tmp_path / "github", python_bin, {ACTION: action_dir})
    secrets = {
        "RECONCILER_STATE": pg_state,
        "PROXY_PASSWORD": SENTINEL_PASSWORD,
        "POSTPRESS_API_KEY": SENTINEL_KEY,
    }
    return GitOps(
        runner, repository, api, pg_state, secrets, {"POSTPRESS_API_URL": os.environ["POSTPRESS_API_URL"]}
    )


def shown(run: WorkflowRun, runner: Runner) -> str:
    """Everything a person can see of a run: logs, summaries, annotations, outputs, comments, issues, artifacts."""
    parts = [run.log]
    for job in run.jobs.values():
        parts += [
            job.summary,
            *job.annotations,
            repr(job.outputs),
            *(repr(step.outputs) for step in job.steps),
        ]
    for directory in runner.comments.glob("*"):
        parts += [comment["body"] for comment in runner.comments_on(int(directory.name)).values()]
    parts += [repr(issue) for issue in runner.issues()]
    parts += [
        path.read_text("utf-8", errors="replace") for path in runner.artifacts.rglob("*") if path.is_file()
    ]
    return "\n".join(parts)


def accounts_named(text: str) -> set[str]:
    return set(re.findall(r"\bacc_\d\d\b", text))


def test_pull_request_plan_is_one_comment_updated_in_place(gitops: GitOps) -> None:
    gitops.repository.commit({"accounts.yaml": PULL_REQUEST}, "Rotate, switch, remove", branch="change")
    first = gitops.run("plan.yml", gitops.repository.pull_request(1, "change"))

    assert first.conclusion == "success", first.log
    comments = gitops.runner.comments_on(1)
    assert list(comments) == ["reconciler-plan"]
    body = comments["reconciler-plan"]["body"]
    assert body.startswith("<!-- reconciler-plan -->\n### reconciler plan")
    assert "**Plan: 0 to create, 2 to update, 1 to forget, 0 to resync.** 47 unchanged." in body
    assert "~ acc_01 (update)\n    proxy.password : (sensitive) -> (sensitive)" in body
    assert "~ acc_02 (update)" in body
    assert re.search(r'\n    country +: \(none\) -> "DE"\n', body)
    assert re.search(r"\n    proxy\.password +: \(sensitive\) -> \(none\)\n", body)
    assert "- acc_03 (forget)" in body
    assert accounts_named(body) == {"acc_01", "acc_02", "acc_03"}
    action = first.jobs["plan"].steps[1]
    assert action.outputs["exit-code"] == "2"
    assert action.outputs["changes"] == "true"
    assert action.outputs["counts"] == '{"create":0,"update":2,"forget":1,"resync":0,"unchanged":47}'
    assert body in first.jobs["plan"].summary
    assert gitops.requests() == []  # a plan sends nothing

    gitops.repository.commit({"accounts.yaml": SECOND_PUSH}, "France, not Germany", branch="change")
    second = gitops.run("plan.yml", gitops.repository.pull_request(1, "change"))

    assert second.conclusion == "success", second.log
    comments = gitops.runner.comments_on(1)
    assert list(comments) == ["reconciler-plan"]
    assert comments["reconciler-plan"]["updates"] == 1
    assert re.search(r'\n    country +: \(none\) -> "FR"\n', comments["reconciler-plan"]["body"])
    assert '"DE"' not in comments["reconciler-plan"]["body"]
    assert_no_secrets(shown(first, gitops.runner) + shown(second, gitops.runner), secrets=WORKFLOW_SECRETS)


def test_a_plan_too_long_for_a_comment_links_to_the_whole_plan(gitops: GitOps) -> None:
    """1,500 new accounts do not fit a comment: it names what it cut and links to the run, whose artifact holds
    the whole plan as text."""
    added = "".join(
        f"  acc_new_{i:04d}: {{provider: LINKEDIN, proxy: {{host: n{i:04d}.proxy.example.com, username: proxyuser, "
        'password: "${PROXY_PASSWORD}"}}\n'
        for i in range(1500)
    )
    gitops.repository.commit({"accounts.yaml": INITIAL + added}, "1,500 more accounts", branch="grow")
    run = gitops.run("plan.yml", gitops.repository.pull_request(5, "grow"))

    assert run.conclusion == "success", run.log
    body = gitops.runner.comments_on(5)["reconciler-plan"]["body"]
    assert len(body) <= 60_000
    assert "| `accounts.yaml` | 1,500 | 0 | 0 | 0 |" in body
    listed = len(re.findall(r"^\+ acc_new_", body, flags=re.MULTILINE))
    assert 0 < listed < 1500
    assert (
        f"**Details of {1500 - listed:,} account(s) in 1 file(s) left out to stay under 60,000 characters**; the "
        "whole plan is the artifact `reconciler-plan-text` of "
        f"[this workflow run](https://github.com/acme/accounts/actions/runs/{run.run_id}). Left out:\n"
        f"- `accounts.yaml`: {1500 - listed:,}\n"
    ) in body
    whole = (gitops.runner.artifact(run, "reconciler-plan-text") / "plan.txt").read_text("utf-8")
    assert len(re.findall(r"^  \+ acc_new_\d{4} \(create\)$", whole, flags=re.MULTILINE)) == 1500
    assert "Plan: 1500 to create, 0 to update, 0 to forget, 0 to resync." in whole
    assert_no_secrets(shown(run, gitops.runner), secrets=WORKFLOW_SECRETS)


def test_a_switch_from_custom_proxy_to_managed_country_names_each_field() -> None:
    """The pull request's switch: each field of the proxy leaves, the country arrives (not one change at `root`)."""
    before = {"proxy": {"host": "p02.proxy.example.com", "port": 8080, "password": "fingerprint"}}
    assert changed_fields(before, {"country": "DE"}) == (
        "country",
        "proxy.host",
        "proxy.password",
        "proxy.port",
    )


def test_plan_workflow_ignores_pull_requests_that_do_not_touch_the_accounts(gitops: GitOps) -> None:
    gitops.repository.commit({"README.md": "The accounts of acme.\n"}, "Readme", branch="docs")
    run = gitops.runner.run(
        TEMPLATES / "plan.yml", gitops.repository, gitops.repository.pull_request(4, "docs")
    )
    assert not run.triggered


def test_fork_pull_request_plans_without_secrets(gitops: GitOps) -> None:
    gitops.repository.commit({"accounts.yaml": PULL_REQUEST}, "Rotate, switch, remove", branch="fork-change")
    run = gitops.run("plan.yml", gitops.repository.pull_request(2, "fork-change", fork_owner="outsider"))

    job = run.jobs["plan"]
    assert_no_secrets(shown(run, gitops.runner), secrets=WORKFLOW_SECRETS)
    assert gitops.runner.comments_on(2) == {}  # a fork's token cannot comment; the plan is in the summary
    assert job.result == "success", run.log
    assert job.steps[1].outputs["exit-code"] == "2"
    assert "not known here" in job.summary
    assert "PROXY_PASSWORD" in job.summary


def test_merge_applies_the_saved_plan_from_another_checkout(gitops: GitOps, run) -> None:
    gitops.repository.commit({"accounts.yaml": SECOND_PUSH}, "Rotate, switch, remove", branch="change")
    before, after = gitops.repository.merge("change")
    applied = gitops.run("apply.yml", gitops.repository.push(before, after))

    plan_job, apply_job = applied.jobs["plan"], applied.jobs["apply"]
    assert plan_job.outputs == {"changes": "true"}
    assert plan_job.workspace != apply_job.workspace
    assert_no_secrets(shown(applied, gitops.runner), secrets=WORKFLOW_SECRETS)
    assert apply_job.result == "success", applied.log
    assert gitops.requests() == [("PATCH", "acc_01", 200), ("PATCH", "acc_02", 200)]
    assert gitops.api.stats.patched["acc_01"]["proxy"]["password"] == SENTINEL_PASSWORD
    assert gitops.api.stats.patched["acc_02"] == {"country": "FR"}
    report = (gitops.runner.artifact(applied, "reconciler-report") / "report.json").read_text("utf-8")
    assert '"succeeded": 2' in report
    assert (
        "Apply: 3 account(s): 2 PATCHed, 0 resynced, 1 forgotten; 2 operation(s): 2 succeeded, 0 failed, 0 skipped."
        in apply_job.summary
    )

    listed = run("state", "list", "--state", gitops.state)
    assert {line.split("\t")[0] for line in listed.out.splitlines()} == set(ACCOUNTS) - {"acc_03"}
    assert (
        run("plan", str(gitops.repository.path / "accounts.yaml"), "--state", gitops.state).out
        == "No changes. 49 account(s) match the recorded state.\n"
    )

    gitops.api.reset_stats()
    again = run("apply", str(gitops.repository.path / "accounts.yaml"), "--yes", "--state", gitops.state)
    assert again.code == 0 and "No changes. Nothing to apply." in again.err
    assert gitops.requests() == []


def test_a_run_by_hand_passes_its_args_to_the_apply_job_only(gitops: GitOps) -> None:
    """A change past the safety bound is refused on merge, with the flag that sets the bound; a run by hand
    with `args` applies it. The input reaches the action as an argument list, never as a script."""
    moved = {f"acc_{i:02d}": "{provider: TELEGRAM, country: FR}" for i in range(20)}  # 20 of 50: 40%
    before = gitops.repository.git("rev-parse", "main")
    after = gitops.repository.commit({"accounts.yaml": fleet(**moved)}, "Move 20 accounts to France")
    refused = gitops.run("apply.yml", gitops.repository.push(before, after))
    assert refused.jobs["apply"].result == "failure"
    assert (
        "too many updates: 40.00% is over 30.00% (20/50); --force applies it anyway, or --max-update-percent "
        "sets the bound" in refused.log
    )
    assert gitops.requests() == []

    by_hand = gitops.run(
        "apply.yml", gitops.repository.dispatch({"args": "--max-update-percent 60 '$(touch pwned)'"})
    )
    assert by_hand.jobs["apply"].result == "failure"  # a quoted word is one argument, never run
    assert not any((job.workspace / "pwned").exists() for job in by_hand.jobs.values() if job.workspace)
    assert gitops.requests() == []

    applied = gitops.run("apply.yml", gitops.repository.dispatch({"args": "--max-update-percent 60"}))
    assert applied.jobs["plan"].result == "success", applied.log
    assert applied.jobs["apply"].result == "success", applied.log
    assert [request[:2] for request in gitops.requests()] == [("PATCH", f"acc_{i:02d}") for i in range(20)]


def test_scheduled_reconcile_keeps_one_failures_issue_until_a_clean_run(gitops: GitOps) -> None:
    moved = fleet(
        acc_01="{provider: LINKEDIN, proxy: {host: p01.proxy.example.com, username: proxyuser, "
        'password: "${PROXY_PASSWORD}"}}',
        acc_05="{provider: LINKEDIN, proxy: {host: p05-new.proxy.example.com, username: proxyuser, "
        'password: "${PROXY_PASSWORD}"}}',
    )
    gitops.repository.commit({"accounts.yaml": moved}, "Move acc_05, rotate acc_01")
    gitops.api.faults = [Fault.parse("errors/proxy_error@acc_05;retry_after=0")]

    failing = gitops.run("reconcile.yml", gitops.repository.schedule("23 */6 * * *"))

    assert failing.conclusion == "failure"
    assert failing.jobs["reconcile"].step("apply").outputs["exit-code"] == "3"
    [issue] = gitops.runner.issues()
    assert issue["state"] == "open" and issue["labels"] == ["reconciler-failures"]
    assert (
        "**Apply: 2 account(s): 1 PATCHed, 0 resynced, 0 forgotten; 2 operation(s): 1 succeeded, 1 failed, 0 skipped."
        in issue["body"]
    )
    assert "<code>errors/proxy_error</code> (HTTP 502, 1 operation(s))" in issue["body"]
    assert "- acc_05 (patch, 4 attempt(s))" in issue["body"]
    assert accounts_named(issue["body"]) == {"acc_05"}
    assert any("the reconcile exited 3" in line for line in failing.jobs["reconcile"].annotations)

    still_failing = gitops.run("reconcile.yml", gitops.repository.schedule("23 */6 * * *"))
    assert still_failing.conclusion == "failure"
    [issue] = gitops.runner.issues()
    assert issue["edits"] == 1 and issue["state"] == "open"
    assert (
        "**Apply: 1 account(s): 0 PATCHed, 0 resynced, 0 forgotten; 1 operation(s): 0 succeeded, 1 failed, 0 skipped."
        in issue["body"]
    )  # only the failed account is retried

    gitops.api.faults = []
    clean = gitops.run("reconcile.yml", gitops.repository.schedule("23 */6 * * *"))

    assert clean.conclusion == "success", clean.log
    [issue] = gitops.runner.issues()
    assert issue["state"] == "closed"
    assert issue["comments"][0].startswith("Closed by a clean reconcile")
    assert gitops.api.stats.patched["acc_05"]["proxy"]["host"] == "p05-new.proxy.example.com"
    assert_no_secrets(
        shown(failing, gitops.runner) + shown(still_failing, gitops.runner) + shown(clean, gitops.runner),
        secrets=WORKFLOW_SECRETS,
    )


# -- a secret added in the one place the templates name reaches every job ---------------------------------------

SECRETS_HERE = "# Add your proxy secrets here"
#: What a user adds: a username per region, a secret that none of the templates names yet.
US_PROXY_USER = "us-user-SENTINEL-4c81d0"


def with_secret(template: str, name: str, into: Path) -> Path:
    """`template` as a user edits it: one line for the secret `name` under the comment that says where."""
    lines = (TEMPLATES / template).read_text("utf-8").splitlines(keepends=True)
    marked = [index for index, line in enumerate(lines) if line.lstrip().startswith(SECRETS_HERE)]
    assert len(marked) == 1, f"{template}: one line must say where proxy secrets go, found {len(marked)}"
    index = marked[0]
    while lines[index + 1].lstrip().startswith("#"):  # the comment may go on
        index += 1
    indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
    lines.insert(index + 1, f"{indent}{name}: ${{{{ secrets.{name} }}}}\n")
    edited = into / template
    edited.parent.mkdir(parents=True, exist_ok=True)
    edited.write_text("".join(lines), encoding="utf-8")
    return edited


@pytest.mark.parametrize("template", ["plan.yml", "apply.yml", "reconcile.yml"])
def test_proxy_secrets_are_set_in_one_place_per_template(template: str, tmp_path: Path) -> None:
    """The workflow-level `env:` holds the configuration's secrets, under the comment that says so; no step sets
    one of its own (only the API key, which only applying steps need)."""
    workflow = yaml.safe_load(with_secret(template, "US_PROXY_USER", tmp_path).read_text())
    assert workflow["env"]["US_PROXY_USER"] == "${{ secrets.US_PROXY_USER }}"
    assert "PROXY_PASSWORD" in workflow["env"]
    for job in workflow["jobs"].values():
        assert "env" not in job
        for step in job["steps"]:
            secrets = {value for value in (step.get("env") or {}).values() if "secrets." in value}
            assert secrets <= {"${{ secrets.POSTPRESS_API_KEY }}"}, (template, step)


def test_a_secret_added_where_the_templates_say_reaches_the_plan_and_the_apply_job(
    gitops: GitOps, tmp_path: Path
) -> None:
    """A new `${US_PROXY_USER}` in the configuration and one line in each template: the pull request's plan knows
    it, the merge's apply job applies the plan job's saved plan (not refused as made while it was unset), and the
    scheduled reconcile applies with it."""
    secrets = {**gitops.secrets, "US_PROXY_USER": US_PROXY_USER}
    edited = {
        name: with_secret(name, "US_PROXY_USER", tmp_path / "edited") for name in ("plan.yml", "apply.yml")
    }
    edited["reconcile.yml"] = with_secret("reconcile.yml", "US_PROXY_USER", tmp_path / "edited")
    us_user = (
        "{provider: LINKEDIN, proxy: {host: p04.proxy.example.com, username: '${US_PROXY_USER}', "
        'password: "${PROXY_PASSWORD}"}}'
    )
    changed = fleet(acc_04=us_user)  # acc_01's legacy password rotated too
    gitops.repository.commit({"accounts.yaml": changed}, "acc_04 uses the US proxy user", branch="us-user")

    planned = gitops.run(edited["plan.yml"], gitops.repository.pull_request(7, "us-user"), secrets=secrets)
    assert planned.conclusion == "success", planned.log
    body = gitops.runner.comments_on(7)["reconciler-plan"]["body"]
    assert "not known here" not in body and "US_PROXY_USER" not in body
    assert "**Plan: 0 to create, 2 to update, 0 to forget, 0 to resync.**" in body

    before, after = gitops.repository.merge("us-user")
    applied = gitops.run(edited["apply.yml"], gitops.repository.push(before, after), secrets=secrets)
    assert applied.jobs["plan"].outputs == {"changes": "true"}
    assert applied.jobs["apply"].result == "success", applied.log
    assert "unset" not in applied.log
    assert gitops.requests() == [("PATCH", "acc_01", 200), ("PATCH", "acc_04", 200)]
    assert gitops.api.stats.patched["acc_04"]["proxy"]["username"] == US_PROXY_USER

    gitops.repository.commit({"accounts.yaml": changed.replace("p04.proxy", "p04-new.proxy")}, "Move acc_04")
    gitops.api.reset_stats()
    reconciled = gitops.run(
        edited["reconcile.yml"], gitops.repository.schedule("23 */6 * * *"), secrets=secrets
    )
    assert reconciled.conclusion == "success", reconciled.log
    assert gitops.requests() == [("PATCH", "acc_04", 200)]
    assert gitops.api.stats.patched["acc_04"]["proxy"] == {
        "host": "p04-new.proxy.example.com",
        "port": 8080,
        "protocol": "https",
        "username": US_PROXY_USER,
        "password": SENTINEL_PASSWORD,
    }
    assert_no_secrets(
        shown(planned, gitops.runner) + shown(applied, gitops.runner) + shown(reconciled, gitops.runner),
        secrets=(*WORKFLOW_SECRETS, US_PROXY_USER),
    )
