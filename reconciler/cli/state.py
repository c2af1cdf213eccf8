"""`state` (list, show, forget, migrate) and `import`: read and edit the recorded state without the API."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from reconciler.cli.common import (
    config_argument,
    fail,
    load_or_exit,
    lock_timeout_option,
    open_state,
    run_redactor,
    select_option,
    state_option,
    target_option,
)
from reconciler.errors import ReconcilerError
from reconciler.escape import json_document, terminal
from reconciler.model import Desired, Recorded
from reconciler.planning import make_plan
from reconciler.secrets import fingerprint_key, masked, needed_message
from reconciler.state import Backend, close_schema_note, held_elsewhere, resolve_state_location
from reconciler.state import events as recording
from reconciler.state.stored import typed
from reconciler.suggestions import suggestion, unknown_ids


@click.group(short_help="Inspect and edit the recorded state.")
def state() -> None:
    """Inspect and edit the recorded state."""


def _nothing_recorded(backend: Backend) -> None:
    """For a state that holds no accounts: say so on stderr, and where accounts are, if another state that plan
    would look at holds some (a mistyped `workspace=` or `schema=`, a state moved without `state migrate`)."""
    line = f"nothing recorded in {backend.describe()}"
    elsewhere = held_elsewhere(backend)
    if elsewhere is not None:
        where, use = elsewhere.pointer()
        line += f"; {where} holds {elsewhere.holds} account(s): {use}"
    click.echo(terminal(line), err=True)
    close = close_schema_note(backend) if elsewhere is None else None
    if close:
        click.echo(terminal(close), err=True)


text_or_json = click.option(
    "--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True
)


def _echo_json(document: object) -> None:
    click.echo(json_document(json.dumps(document, indent=2, ensure_ascii=False)))


@state.command("list", short_help="List the recorded accounts.")
@state_option
@click.option("--sandbox", is_flag=True, help="List the sandbox's own state (as apply --sandbox records it).")
@text_or_json
def state_list(state_location: str | None, sandbox: bool, output_format: str) -> None:
    """List the recorded accounts (none: a line on stderr says so, and where accounts are if another state
    holds some)."""
    backend = open_state(resolve_state_location(state_location, sandbox=sandbox))
    recorded = backend.read()
    if not recorded.accounts:
        _nothing_recorded(backend)
    rows = []
    for account_id in sorted(recorded.accounts):
        record = recorded.accounts[account_id]
        failure = record.last_failure or {}
        rows.append(
            {
                "account_id": account_id,
                "status": "failed" if record.last_failure else "ok",
                "applied_at": record.applied_at,
                "resync_generation": record.resync_generation,
                "last_failure_type": failure.get("error_type"),
            }
        )
    if output_format == "json":
        _echo_json({"format_version": 1, "accounts": rows})
        return
    for row in rows:
        columns = [
            str(row["account_id"]),
            str(row["status"]),
            f"applied {row['applied_at'] or '-'}",
            f"resync generation {row['resync_generation']}",
        ]
        if row["last_failure_type"]:
            columns.append(str(row["last_failure_type"]))
        click.echo("\t".join(map(terminal, columns)))


@state.command("show", short_help="Show one account's record, secrets as (sensitive).")
@click.argument("account_id")
@state_option
@click.option("--sandbox", is_flag=True, help="Read the sandbox's own state.")
@text_or_json
def state_show(account_id: str, state_location: str | None, sandbox: bool, output_format: str) -> None:
    """Show one account's record (secrets as (sensitive)); the same JSON in both formats."""
    location = resolve_state_location(state_location, sandbox=sandbox)
    backend = open_state(location)
    record = backend.read_accounts([account_id]).accounts.get(account_id)
    if record is None:
        fail(f"{account_id!r} is not in the state{suggestion(account_id, backend.account_ids())}")
    _echo_json({"account_id": account_id, **masked({**record.to_json(), "settings": typed(record.settings)})})


def _edit_state(
    backend: Backend,
    edit: Callable[[Recorded], Any],
    accounts: Sequence[str] | None = None,
    lock_timeout: float = 0.0,
) -> Any:
    """Run `edit` on the state under its lock and write the result (serial + 1); nothing is written if it
    raises or returns None.

    With `accounts`, `edit` changes only those accounts: a backend with `partial_reads` (PostgreSQL) then reads
    and writes only their records (rows), and `edit` sees only them."""
    with backend.lock(timeout=lock_timeout, command="state edit"):
        recorded, journal = backend.open_journal(accounts=accounts)
        journal.close()
        outcome = edit(recorded)
        if outcome is not None:
            backend.write(recorded, accounts=accounts)
    return outcome


@state.command("forget", short_help="Remove accounts from the state; no API call.")
@click.argument("account_ids", nargs=-1, required=True)
@state_option
@lock_timeout_option
@text_or_json
def state_forget(
    account_ids: tuple[str, ...], state_location: str | None, lock_timeout: float, output_format: str
) -> None:
    """Remove accounts from the state without any API call."""

    backend = open_state(resolve_state_location(state_location))

    def edit(recorded: Recorded) -> list[str]:
        missing = sorted({account_id for account_id in account_ids if account_id not in recorded.accounts})
        if missing:  # `recorded` may hold only these accounts (partial reads): the close ids are asked for
            raise ReconcilerError(f"not in the state: {unknown_ids(missing, backend.account_ids())}")
        for account_id in account_ids:
            recording.fold(recorded, recording.forgotten(account_id))
        return sorted(set(account_ids))

    forgotten = _edit_state(backend, edit, accounts=account_ids, lock_timeout=lock_timeout)
    if output_format == "json":
        _echo_json({"format_version": 1, "forgotten": forgotten})
    click.echo(f"Forgot {len(forgotten)} account(s): {', '.join(forgotten)}.", err=True)


@state.command("migrate", short_help="Copy a state to another backend, lineage and salt kept.")
@click.option(
    "--from", "source", required=True, help="The state to copy (path, file:// or postgresql:// URL)."
)
@click.option("--to", "target", required=True, help="Where to copy it.")
@click.option("--force", is_flag=True, help="Overwrite a target that already holds accounts.")
@lock_timeout_option
def state_migrate(source: str, target: str, force: bool, lock_timeout: float) -> None:
    """Copy a state between backends, keeping its lineage and salt (so fingerprints stay valid)."""
    source_backend, target_backend = open_state(source), open_state(target)
    with (
        source_backend.lock(timeout=lock_timeout, command="state migrate"),
        target_backend.lock(timeout=lock_timeout, command="state migrate"),
    ):
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
    click.echo(
        f"Copied {len(snapshot.accounts)} account(s) to {terminal(target_backend.describe())}.", err=True
    )


def _check_import_variables(
    desired: Desired, targets: tuple[str, ...], selectors: tuple[tuple[str, str], ...]
) -> None:
    """Exit 1 when a variable that the accounts to import need is unset, before the state is opened. Only theirs:
    `--target c` needs none of another account's. The plan names the variables of every declared account it
    chooses, so an empty state will do; a target or selection it cannot choose from the file alone is left to
    the plan against the recorded state (a recorded account is never imported: it needs no variable)."""
    declared = tuple(target for target in targets if target in desired.accounts)
    if targets and not declared:
        return
    try:
        unset = make_plan(desired, Recorded(None, 0, ""), declared, list(selectors)).unset_variables
    except ReconcilerError:
        return
    if unset:
        fail(needed_message(unset, "import", "records"))


@click.command("import", short_help="Record declared accounts as applied, without the API.")
@config_argument
@state_option
@target_option
@select_option
@click.option(
    "--resynced/--no-resynced",
    default=True,
    show_default=True,
    help="Record each declared resync generation as done (--no-resynced: leave resyncs planned).",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation on a terminal.")
@lock_timeout_option
@text_or_json
def import_(
    config: str,
    state_location: str | None,
    targets: tuple[str, ...],
    selectors: tuple[tuple[str, str], ...],
    resynced: bool,
    yes: bool,
    lock_timeout: float,
    output_format: str,
) -> None:
    """Record declared accounts as already applied, without calling the API.

    Use it when the accounts already have these settings (set by hand, or by another tool). Declared resync
    generations are recorded as done too, unless --no-resynced.
    """
    desired = load_or_exit(config, need_secrets=False)
    if desired.unset_variables:
        _check_import_variables(desired, targets, selectors)

    def edit(recorded: Recorded) -> dict[str, list[str]] | None:
        the_plan = make_plan(
            desired,
            recorded,
            targets,
            list(selectors),
            fingerprint_key=fingerprint_key(os.environ, run_redactor()),
        )
        imported: list[str] = []
        resync_done: list[str] = []
        failed_before = [
            change.account_id
            for change in the_plan.changes
            if (record := recorded.accounts.get(change.account_id)) is not None and record.last_failure
        ]
        for change in the_plan.changes:
            spec = desired.accounts.get(change.account_id)
            if spec is None:
                continue
            if change.action in ("create", "update"):
                recording.fold(recorded, recording.applied(spec.account_id, change.after, spec.provider))
                imported.append(spec.account_id)
            if resynced and change.resync and spec.resync:
                recording.fold(recorded, recording.resynced(spec.account_id, spec.resync.generation))
                resync_done.append(spec.account_id)
        if not imported and not resync_done:
            return None
        if not yes and sys.stdin.isatty():
            click.echo(
                f"Import will record {len(imported)} account(s) as applied"
                + (f" and {len(resync_done)} resync(s) as done" if resync_done else "")
                + " without calling the API.",
                err=True,
            )
            click.confirm("Write the state?", abort=True, err=True)
        return {"imported": imported, "resynced": resync_done, "previously_failed": failed_before}

    result = _edit_state(
        open_state(resolve_state_location(state_location)), edit, lock_timeout=lock_timeout
    ) or {
        "imported": [],
        "resynced": [],
        "previously_failed": [],
    }
    if output_format == "json":
        _echo_json({"format_version": 1, **result})
    for account_id in result["imported"]:
        click.echo(f"imported {account_id}", err=True)
    for account_id in result["previously_failed"]:
        click.echo(f"note: {account_id}'s last apply had failed; it is now recorded as applied", err=True)
    summary = f"Imported {len(result['imported'])} account(s)"
    if result["resynced"]:
        summary += f"; recorded {len(result['resynced'])} resync(s) as done"
    click.echo(summary + ".", err=True)
