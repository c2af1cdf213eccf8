"""The workflows with proxy passwords kept in the repository, SOPS-encrypted for an age key that is the secret
SOPS_AGE_KEY: a pull request that rotates one password plans it with the key, the same pull request from a fork
plans without it (what depends on the file is not known, counted by file), and the merge applies it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.sandbox import Sandbox
from tests.helpers import SENTINEL_KEY, assert_no_secrets
from tests.integration.test_sops import AgeKey, encrypt
from tests.tooling import test_workflows
from tests.tooling.test_workflows import ACTION, GitOps, shown
from tests.workflow_harness import Repository, Runner

#: The fixtures of tests/tooling/test_workflows.py: the runners' shared Python and a PostgreSQL state.
runner_image = test_workflows.runner_image
pg_state = test_workflows.pg_state

ACCOUNTS = [f"acc_{i:02d}" for i in range(12)]
PASSWORDS = {account: f"pw-WF-SENTINEL-{index:02d}-e4" for index, account in enumerate(ACCOUNTS)}
ROTATED = "pw-WF-SENTINEL-rotated-77"

CONFIG = (
    "version: 1\nsecrets:\n  vault: secrets.sops.yaml\ndefaults:\n  proxy:\n    port: 8080\n"
    "    password: ${vault.proxy_passwords.$account}\naccounts:\n"
    + "".join(f"  {account}: {{proxy: {{host: p{account[-2:]}.example.com}}}}\n" for account in ACCOUNTS)
)


def _passwords(**changed: str) -> str:
    values = {**PASSWORDS, **changed}
    return "proxy_passwords:\n" + "".join(f"  {account}: {value}\n" for account, value in values.items())


def _encrypted(text: str, key: AgeKey, scratch: Path) -> str:
    encrypt(scratch / "secrets.sops.yaml", text, key)
    return (scratch / "secrets.sops.yaml").read_text()


@pytest.fixture
def sops_gitops(
    tmp_path: Path,
    runner_image: tuple[Path, Path],
    pg_state: str,
    run,
    api: Sandbox,
    monkeypatch,
) -> tuple[GitOps, AgeKey]:
    key = AgeKey()
    python_bin, action_dir = runner_image
    repository = Repository(tmp_path / "origin", "acme/accounts")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    repository.commit(
        {"accounts.yaml": CONFIG, "secrets.sops.yaml": _encrypted(_passwords(), key, scratch)}, "12 accounts"
    )
    monkeypatch.setenv("SOPS_AGE_KEY", key.secret)
    applied = run("apply", str(repository.path / "accounts.yaml"), "--yes", "--state", pg_state)
    assert applied.code == 0, applied.err
    monkeypatch.delenv("SOPS_AGE_KEY")
    api.reset_stats()
    runner = Runner(tmp_path / "github", python_bin, {ACTION: action_dir})
    secrets = {"RECONCILER_STATE": pg_state, "POSTPRESS_API_KEY": SENTINEL_KEY, "SOPS_AGE_KEY": key.secret}
    variables = {"POSTPRESS_API_URL": os.environ["POSTPRESS_API_URL"]}
    gitops = GitOps(runner, repository, api, pg_state, secrets, variables)
    gitops.repository.commit(
        {"secrets.sops.yaml": _encrypted(_passwords(acc_05=ROTATED), key, scratch)},
        "Rotate acc_05's proxy password",
        branch="rotate",
    )
    return gitops, key


def test_a_password_rotated_in_the_encrypted_file_plans_and_applies(sops_gitops) -> None:
    gitops, key = sops_gitops
    secrets = (*PASSWORDS.values(), ROTATED, key.secret, SENTINEL_KEY)

    planned = gitops.run("plan.yml", gitops.repository.pull_request(1, "rotate"))
    job = planned.jobs["plan"]
    assert job.result == "success", planned.log
    assert "~ acc_05 (update)\n    proxy.password : (sensitive) -> (sensitive)" in job.summary
    assert "**Plan: 0 to create, 1 to update, 0 to forget, 0 to resync.**" in job.summary
    assert len(gitops.runner.comments_on(1)) == 1

    forked = gitops.run("plan.yml", gitops.repository.pull_request(2, "rotate", fork_owner="outsider"))
    fork_job = forked.jobs["plan"]
    assert fork_job.result == "success", forked.log
    assert gitops.runner.comments_on(2) == {}
    assert "Not known here: vault.* not decrypted" in fork_job.summary
    # Without RECONCILER_STATE either, every account shows as created, its password not known.
    assert "**Plan: 12 to create, 0 to update, 0 to forget, 0 to resync.**" in fork_job.summary
    assert "proxy.password = (not known here: vault.* not decrypted)" in fork_job.summary
    assert "secrets.sops.yaml (vault): not decrypted here (no SOPS key given here)" in forked.log

    before, after = gitops.repository.merge("rotate")
    applied = gitops.run("apply.yml", gitops.repository.push(before, after))
    assert applied.jobs["apply"].result == "success", applied.log
    assert gitops.requests() == [("PATCH", "acc_05", 200)]
    assert gitops.api.stats.patched["acc_05"]["proxy"]["password"] == ROTATED

    assert_no_secrets(
        shown(planned, gitops.runner) + shown(forked, gitops.runner) + shown(applied, gitops.runner),
        secrets=secrets,
    )
