"""The workflow harness itself: expressions, file commands, triggers, jobs and steps as GitHub runs them, on tiny
workflows (no install), so that what tests/tooling/test_workflows.py concludes from it can be trusted."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.workflow_harness import HarnessError, Repository, Runner
from tests.workflow_harness.expressions import Scope
from tests.workflow_harness.runner import parse_file_command


def scope(**contexts: object) -> Scope:
    return Scope({"github": {}, "env": {}, "steps": {}, "inputs": {}, "secrets": {}, "vars": {}, **contexts})


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("vars.URL || 'https://default'", "https://default"),
        ("vars.url || 'https://default'", "https://set"),  # context keys are case-insensitive
        ("'ABC' == 'abc'", True),  # so is string equality
        ("steps.run.outputs.exit-code != '0'", True),
        ("steps.run.outputs.missing == ''", True),  # null and '' both coerce to 0
        ("!steps.run.outputs.missing", True),
        ("1 == '1'", True),
        ("null == 0", True),
        ("github.event.pull_request.head.repo.full_name == github.repository", False),
        ("contains(fromJSON('[\"a\",\"b\"]'), 'B')", True),
        ("format('{0}-{1}{{x}}', 'a', 2)", "a-2{x}"),
        ("startsWith('refs/heads/main', 'refs/heads/')", True),
        ("'it''s'", "it's"),
        ("(false || 0) && 'x'", 0.0),
    ],
)
def test_expressions_follow_github(expression: str, expected: object) -> None:
    contexts = scope(
        vars={"URL": "https://set"} if "url" in expression else {},
        steps={"run": {"outputs": {"exit-code": "3"}}},
        github={"repository": "acme/accounts", "event": {}},
    )
    assert contexts.evaluate(expression) == expected


def test_conditions_default_to_success_and_status_functions_override() -> None:
    failed = scope()
    failed.status = "failure"
    assert not failed.condition("true")
    assert not failed.condition(None)
    assert failed.condition("always()")
    assert failed.condition("${{ failure() }}")
    assert failed.condition("!cancelled() && 1 == 1")
    with pytest.raises(HarnessError, match="hashfiles"):
        failed.condition("always() && hashFiles('x') != ''")


def test_interpolation_substitutes_text_as_github_does() -> None:
    contexts = scope(inputs={"n": 2.0, "flag": True, "none": None})
    assert contexts.interpolate("a ${{ inputs.n }} ${{inputs.flag}} [${{ inputs.none }}]") == "a 2 true []"


def test_file_commands_read_lines_and_delimited_blocks() -> None:
    text = "a=1\nbody<<EOF\nline one\nline=two\nEOF\nempty=\n"
    assert parse_file_command(text) == {"a": "1", "body": "line one\nline=two", "empty": ""}
    with pytest.raises(HarnessError, match="unterminated"):
        parse_file_command("x<<END\nno end\n")


WORKFLOW = """
name: harness check
on:
  push:
    branches: [main]
    paths: ["accounts.yaml"]
env:
  FROM_WORKFLOW: w
jobs:
  first:
    runs-on: ubuntu-latest
    env:
      FROM_JOB: ${{ secrets.TOKEN_LIKE }}
    outputs:
      said: ${{ steps.say.outputs.said }}
    steps:
      - id: say
        run: |
          echo "said=$FROM_WORKFLOW-$FROM_JOB-$FROM_STEP" >> "$GITHUB_OUTPUT"
          echo "LATER=set by GITHUB_ENV" >> "$GITHUB_ENV"
          echo "### summary" >> "$GITHUB_STEP_SUMMARY"
          echo "::warning file=accounts.yaml,line=1::careful"
          test -z "${HOME_SECRET:-}"
        env:
          FROM_STEP: s
      - id: broken
        continue-on-error: true
        run: exit 4
      - run: test "$LATER" = "set by GITHUB_ENV" && test ! -e accounts.yaml  # nothing checked out
      - id: after-failure
        if: failure()
        run: echo never
  second:
    needs: first
    if: needs.first.outputs.said == 'w-tok-s'
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
      - uses: ./action
        id: composite
        with:
          word: hello
      - if: steps.composite.outputs.echoed != 'hello'
        run: exit 1
  skipped:
    needs: first
    if: needs.first.outputs.said == 'something else'
    runs-on: ubuntu-latest
    steps:
      - run: exit 1
"""

ACTION = """
name: echo
description: echo an input
inputs:
  word:
    description: what to echo
    required: true
  suffix:
    description: added
    default: ${{ github.repository }}
outputs:
  echoed:
    description: the word
    value: ${{ steps.echo.outputs.word }}
runs:
  using: composite
  steps:
    - id: echo
      shell: bash
      run: |
        test "$GITHUB_ACTION_PATH" = "${{ github.action_path }}"
        test "${{ inputs.suffix }}" = "acme/accounts"
        echo "word=${{ inputs.word }}" >> "$GITHUB_OUTPUT"
"""


@pytest.fixture
def repository(tmp_path: Path) -> Repository:
    repository = Repository(tmp_path / "origin", "acme/accounts")
    repository.commit({"accounts.yaml": "version: 1\n"}, "first")
    return repository


def test_a_workflow_runs_as_github_runs_it(tmp_path: Path, repository: Repository, monkeypatch) -> None:
    monkeypatch.setenv("HOME_SECRET", "must not reach a step")
    before = repository.git("rev-parse", "main")
    repository.commit(
        {
            ".github/workflows/check.yml": textwrap.dedent(WORKFLOW),
            "action/action.yml": ACTION,
            "accounts.yaml": "2",
        },
        "change",
    )
    after = repository.git("rev-parse", "main")
    runner = Runner(tmp_path / "github", Path("/nonexistent"))

    run = runner.run(repository.path / ".github/workflows/check.yml", repository, repository.push(before, after),
                     secrets={"TOKEN_LIKE": "tok"})  # fmt: skip

    assert run.triggered
    first, second, skipped = run.jobs["first"], run.jobs["second"], run.jobs["skipped"]
    assert first.result == "success", run.log
    assert first.outputs == {"said": "w-tok-s"}
    assert [(s.outcome, s.conclusion) for s in first.steps] == [
        ("success", "success"),
        ("failure", "success"),  # continue-on-error
        ("success", "success"),
        ("skipped", "skipped"),
    ]
    assert first.summary == "### summary\n"
    assert first.annotations == ["::warning file=accounts.yaml,line=1::careful"]
    assert second.result == "success", run.log
    assert second.step("composite").outputs == {"echoed": "hello"}
    assert skipped.result == "skipped"
    assert first.workspace != second.workspace and not first.workspace.exists()


def test_triggers_honour_paths_and_branches(tmp_path: Path, repository: Repository) -> None:
    before = repository.git("rev-parse", "main")
    after = repository.commit({"README.md": "x"}, "docs only")
    workflow = tmp_path / "w.yml"
    workflow.write_text(textwrap.dedent(WORKFLOW), encoding="utf-8")
    runner = Runner(tmp_path / "github", Path("/nonexistent"))
    assert not runner.run(workflow, repository, repository.push(before, after)).triggered
    assert not runner.run(workflow, repository, repository.schedule("0 * * * *")).triggered


def test_fake_gh_refuses_writes_without_issues_permission(tmp_path: Path, repository: Repository) -> None:
    workflow = tmp_path / "w.yml"
    workflow.write_text(
        textwrap.dedent(
            """
            on: workflow_dispatch
            permissions:
              contents: read
            jobs:
              open:
                runs-on: ubuntu-latest
                steps:
                  - run: gh label create x --force
                    env:
                      GH_TOKEN: ${{ github.token }}
                      GH_REPO: ${{ github.repository }}
            """
        ),
        encoding="utf-8",
    )
    runner = Runner(tmp_path / "github", Path("/nonexistent"))
    run = runner.run(workflow, repository, repository.dispatch())
    assert run.conclusion == "failure"
    assert "HTTP 403" in run.log
    assert runner.issues() == []
