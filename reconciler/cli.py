"""Commands only: parse flags, call one function, render, choose the exit code."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import click

from reconciler import logs, planfile
from reconciler.config import load_config
from reconciler.errors import ConfigError, Problem, ReconcilerError
from reconciler.model import Desired, Plan, Recorded
from reconciler.planning import make_plan
from reconciler.render import plan_json, plan_markdown, plan_text
from reconciler.secrets import masked
from reconciler.state import events as recording
from reconciler.state import open_backend, resolve_state_location

MAX_WARNINGS_SHOWN = 10
DEFAULT_CONFIG = "accounts.yaml"


def fail(message: str) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def github_annotation(problem: Problem) -> str:
    level = "warning" if problem.severity == "warning" else "error"
    message = problem.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return f"::{level} file={problem.file},line={problem.line},col={problem.col}::{message}"


def show_warnings(warnings: list[Problem]) -> None:
    for warning in warnings[:MAX_WARNINGS_SHOWN]:
        click.echo(str(warning), err=True)
    if len(warnings) > MAX_WARNINGS_SHOWN:
        click.echo(f"... and {len(warnings) - MAX_WARNINGS_SHOWN} more warnings", err=True)


log = logs.get("cli")


def load_or_exit(config: str) -> Desired:
    """Load the configuration, or print every problem (one line each) and exit 1."""
    annotate = os.environ.get("GITHUB_ACTIONS") == "true"
    started = time.monotonic()
    try:
        desired = load_config(config)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        show_warnings(exc.warnings)
        if annotate:
            for problem in exc.problems + exc.warnings:
                click.echo(github_annotation(problem))
        click.echo(f"{len(exc.problems)} error(s) in {config}", err=True)
        sys.exit(1)
    log.debug(
        "loaded %d account(s) from %s in %.2f s",
        len(desired.accounts),
        ", ".join(desired.files),
        time.monotonic() - started,
    )
    show_warnings(desired.warnings)
    if annotate:
        for warning in desired.warnings:
            click.echo(github_annotation(warning))
    return desired


def write_github_outputs(outputs: dict[str, str]) -> None:
    """Append `key=value` lines to $GITHUB_OUTPUT when running in GitHub Actions."""
    path = os.environ.get("GITHUB_OUTPUT")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.writelines(f"{key}={value}\n" for key, value in outputs.items())


def parse_selectors(values: tuple[str, ...]) -> list[tuple[str, str]]:
    selectors = []
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--select")
        selectors.append((key, wanted))
    return selectors


def render_plan(plan: Plan, output_format: str, config: str, state: str) -> str:
    if output_format == "json":
        return plan_json.render(plan)
    if output_format == "markdown":
        return plan_markdown.render(plan, config=config, state=state)
    return plan_text.render(plan)


state_option = click.option(
    "--state",
    "state_location",
    default=None,
    help="State: a path, file:// or postgresql:// URL (else $RECONCILER_STATE, else .reconciler/state.json).",
)
target_option = click.option(
    "--target", "targets", multiple=True, metavar="ID", help="Only this account (repeatable)."
)
select_option = click.option(
    "--select",
    "selects",
    multiple=True,
    metavar="KEY=VALUE",
    help="Only declared accounts with this label (repeatable; all must match).",
)
config_argument = click.argument("config", required=False, default=DEFAULT_CONFIG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="postpress-reconciler")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    envvar="RECONCILER_VERBOSE",
    help="Debug log on stderr: files, state, each request and retry (secrets redacted).",
)
def cli(verbose: bool) -> None:
    """Declare postpress account proxies in YAML; plan and apply them."""
    logs.configure(verbose)


@cli.command()
@config_argument
def validate(config: str) -> None:
    """Check CONFIG; exit 0 when valid, 1 when not."""
    desired = load_or_exit(config)
    click.echo(f"{config}: valid ({len(desired.accounts)} accounts)", err=True)


@cli.command()
@config_argument
@state_option
@click.option("--format", "output_format", type=click.Choice(["text", "json", "markdown"]), default="text")
@click.option("--out", "out_path", default=None, metavar="PLANFILE", help="Save the plan for apply --plan.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when no changes, 2 when changes.")
@click.option(
    "--sandbox", is_flag=True, help="Plan against the sandbox's own state (as apply --sandbox records it)."
)
@target_option
@select_option
def plan(
    config: str,
    state_location: str | None,
    output_format: str,
    out_path: str | None,
    detailed_exitcode: bool,
    sandbox: bool,
    targets: tuple[str, ...],
    selects: tuple[str, ...],
) -> None:
    """Show what apply would change. Needs no network, no API key and no lock."""
    selectors = parse_selectors(selects)
    desired = load_or_exit(config)
    location = resolve_state_location(state_location, sandbox=sandbox)
    recorded = open_backend(location).read()
    the_plan = make_plan(desired, recorded, targets, selectors)
    click.echo(render_plan(the_plan, output_format, config, location), nl=False)
    if out_path:
        planfile.save(the_plan, config, list(targets), selectors, out_path)
    write_github_outputs(
        {
            "changes": "true" if not the_plan.empty else "false",
            **{key: str(value) for key, value in the_plan.summary.items()},
        }
    )
    if detailed_exitcode and not the_plan.empty:
        sys.exit(2)


@cli.group()
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


@cli.command("import")
@config_argument
@state_option
@target_option
@select_option
def import_(
    config: str, state_location: str | None, targets: tuple[str, ...], selects: tuple[str, ...]
) -> None:
    """Record declared accounts as already applied, without calling the API."""
    selectors = parse_selectors(selects)
    desired = load_or_exit(config)

    def edit(recorded: Recorded) -> int:
        the_plan = make_plan(desired, recorded, targets, selectors)
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


def _register_optional_commands() -> None:
    from reconciler import commands

    commands.register(cli)


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors exit 1 (never 2, which means "changes present"); no tracebacks."""
    _register_optional_commands()
    try:
        cli.main(args=argv, prog_name="reconciler", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(1)
    except ReconcilerError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except OSError as exc:
        fail(f"{exc.filename or ''}: {exc.strerror or exc}".lstrip(": "))
    sys.exit(0)
