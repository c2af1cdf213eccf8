"""`state` (list, show, forget, migrate) and `import`: read and edit the recorded state without the API."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import click

from reconciler.cli.common import (
    config_argument,
    fail,
    load_or_exit,
    select_option,
    state_option,
    target_option,
)
from reconciler.errors import ReconcilerError
from reconciler.model import Recorded
from reconciler.planning import make_plan
from reconciler.secrets import fingerprint_key, masked
from reconciler.state import events as recording
from reconciler.state import open_backend, resolve_state_location


@click.group()
def state() -> None:
    """Inspect and edit the recorded state."""


def _read_state(state_location: str | None) -> tuple[str, Recorded]:
    location = resolve_state_location(state_location)
    return location, open_backend(location).read()


@state.command("list")
@state_option
def state_list(state_location: str | None) -> None:
    """List the recorded accounts."""
    _, recorded = _read_state(state_location)
    for account_id in sorted(recorded.accounts):
        record = recorded.accounts[account_id]
        status = "failed" if record.last_failure else "ok"
        click.echo(
            f"{account_id}\t{status}\tapplied {record.applied_at or '-'}\tresync generation "
            f"{record.resync_generation}"
        )


@state.command("show")
@click.argument("account_id")
@state_option
def state_show(account_id: str, state_location: str | None) -> None:
    """Show one account's record (secrets as (sensitive))."""
    _, recorded = _read_state(state_location)
    record = recorded.accounts.get(account_id)
    if record is None:
        fail(f"{account_id!r} is not in the state")
    click.echo(
        json.dumps({"account_id": account_id, **masked(record.to_json())}, indent=2, ensure_ascii=False)
    )


def _edit_state(state_location: str | None, edit: Callable[[Recorded], Any]) -> Any:
    """Run `edit` on the state under its lock and write the result (serial + 1); nothing is written if it raises."""
    location = resolve_state_location(state_location)
    backend = open_backend(location)
    with backend.lock(command="state edit"):
        recorded, journal = backend.open_journal()
        journal.close()
        outcome = edit(recorded)
        backend.write(recorded)
    return outcome


@state.command("forget")
@click.argument("account_ids", nargs=-1, required=True)
@state_option
def state_forget(account_ids: tuple[str, ...], state_location: str | None) -> None:
    """Remove accounts from the state without any API call."""

    def edit(recorded: Recorded) -> None:
        missing = [account_id for account_id in account_ids if account_id not in recorded.accounts]
        if missing:
            raise ReconcilerError(f"not in the state: {', '.join(missing)}")
        for account_id in account_ids:
            recording.fold(recorded, recording.forgotten(account_id))

    _edit_state(state_location, edit)
    click.echo(f"Forgot {len(account_ids)} account(s).", err=True)


@state.command("migrate")
@click.option(
    "--from", "source", required=True, help="The state to copy (path, file:// or postgresql:// URL)."
)
@click.option("--to", "target", required=True, help="Where to copy it.")
@click.option("--force", is_flag=True, help="Overwrite a target that already holds accounts.")
def state_migrate(source: str, target: str, force: bool) -> None:
    """Copy a state between backends, keeping its lineage and salt (so fingerprints stay valid)."""
    source_backend, target_backend = open_backend(source), open_backend(target)
    with source_backend.lock(command="state migrate"), target_backend.lock(command="state migrate"):
        snapshot = source_backend.read()
        if not snapshot.exists:
            fail(f"{source_backend.describe()} holds no state")
        existing = target_backend.read()
        if existing.accounts and not force:
            fail(
                f"{target_backend.describe()} already holds {len(existing.accounts)} account(s); --force overwrites"
            )
        _, journal = target_backend.open_journal(salt=snapshot.salt)
        journal.close()
        snapshot.serial = max(snapshot.serial, existing.serial)
        target_backend.write(snapshot)
    click.echo(f"Copied {len(snapshot.accounts)} account(s) to {target_backend.describe()}.", err=True)


@click.command("import")
@config_argument
@state_option
@target_option
@select_option
def import_(
    config: str, state_location: str | None, targets: tuple[str, ...], selectors: tuple[tuple[str, str], ...]
) -> None:
    """Record declared accounts as already applied, without calling the API."""
    desired = load_or_exit(config)

    def edit(recorded: Recorded) -> int:
        the_plan = make_plan(
            desired, recorded, targets, list(selectors), fingerprint_key=fingerprint_key(os.environ)
        )
        imported = 0
        for change in the_plan.changes:
            spec = desired.accounts.get(change.account_id)
            if spec is None:
                continue
            if change.action in ("create", "update"):
                recording.fold(recorded, recording.applied(spec.account_id, change.after, spec.provider))
            if change.resync and spec.resync:
                recording.fold(recorded, recording.resynced(spec.account_id, spec.resync.generation))
            imported += 1
        return imported

    imported = _edit_state(state_location, edit)
    click.echo(f"Imported {imported} account(s).", err=True)
