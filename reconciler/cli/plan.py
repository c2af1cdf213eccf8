"""`validate`, `plan` and `show`: read the configuration (and the state), print what is wrong or what would change;
print a saved plan."""

from __future__ import annotations

import json
import os
import sys

import click

from reconciler import collector, logs, planfile
from reconciler.cli.common import (
    ExitCode,
    config_argument,
    format_option,
    given,
    load_or_exit,
    not_decrypted,
    open_state,
    plan_bound_options,
    render_plan,
    run_redactor,
    say_not_decrypted,
    select_option,
    show_warnings,
    state_option,
    target_option,
    write_github_outputs,
)
from reconciler.config import load_config, name_in_messages
from reconciler.errors import ConfigError, Problem
from reconciler.escape import terminal, terminal_line
from reconciler.model import Elsewhere, Plan
from reconciler.planning import make_plan, to_create, unkeyed_secrets, weigh
from reconciler.secrets import fingerprint_key, sources_text
from reconciler.state import (
    Backend,
    close_schema_note,
    look_elsewhere,
    resolve_state_location,
    sandbox_state_note,
)

log = logs.get("plan")


def _problem_json(problem: Problem) -> dict[str, object]:
    return {
        "file": problem.file,
        "line": problem.line,
        "column": problem.col,
        "path": problem.path,
        "severity": problem.severity,
        "message": problem.message,
    }


@click.command(short_help="Check CONFIG; exit 0 when valid, 1 when not.")
@config_argument
@click.option(
    "--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True
)
@collector.paused()
def validate(config: str, output_format: str) -> None:
    """Check CONFIG (`-` reads standard input); exit 0 when valid, 1 when not. Needs no secret: a `${VAR}` must
    be well-formed, not set."""
    if output_format == "text":
        desired = load_or_exit(config, need_secrets=False, decrypt="never")
        count = len(desired.accounts)
        click.echo(
            terminal_line(f"{name_in_messages(config)}: valid ({count} account{'' if count == 1 else 's'})"),
            err=True,
        )
        return
    try:
        desired = load_config(config, decrypt="never", redactor=run_redactor())
    except ConfigError as exc:
        document = {
            "format_version": 1,
            "valid": False,
            "problems": [_problem_json(p) for p in exc.problems],
            "warnings": [_problem_json(p) for p in exc.warnings],
            "note": exc.note,
        }
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
        sys.exit(ExitCode.ERROR)
    document = {
        "format_version": 1,
        "valid": True,
        "accounts": len(desired.accounts),
        "problems": [],
        "warnings": [_problem_json(p) for p in desired.warnings],
        "unset_variables": list(desired.unset_variables),
    }
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def _look_elsewhere(backend: Backend, the_plan: Plan) -> Elsewhere | None:
    """For a plan against a state that holds no account: another state that holds most of the accounts to create
    (apply refuses the plan), said on stderr; else a schema of a name close to the one named, if one holds
    reconciler state."""
    elsewhere = look_elsewhere(backend, to_create(the_plan))
    if elsewhere is not None:
        click.echo(f"note: {terminal(elsewhere.refusal())}", err=True)
        return elsewhere
    close = close_schema_note(backend)
    if close:
        click.echo(terminal(close), err=True)
    return None


def _say_unkeyed(unkeyed: int) -> None:
    """The note for secrets that differ from the state only by RECONCILER_FINGERPRINT_KEY (`unkeyed_secrets`)."""
    if unkeyed:
        click.echo(
            f"note: {unkeyed} secret(s) this plan updates are unchanged: the state recorded them without "
            "RECONCILER_FINGERPRINT_KEY, which is set here; if nothing else is pending, reconciler import records "
            "them under the key without any API call (docs/secrets-at-rest.md)",
            err=True,
        )


def _said_on_the_plan(the_plan: Plan, output_format: str, reasons: dict[str, str]) -> dict[str, str]:
    """Of the secrets files not decrypted (`reasons`), those the text plan's `Not known here` line names (with
    why); the others are said on stderr now."""
    on_the_plan = output_format == "text" and not the_plan.empty
    said = {
        source: why for source, why in reasons.items() if on_the_plan and source in the_plan.unset_variables
    }
    say_not_decrypted({source: why for source, why in reasons.items() if source not in said})
    return said


@click.command(short_help="Show what apply would change; needs no API key.")
@config_argument
@state_option
@format_option
@click.option("--out", "out_path", default=None, metavar="PLANFILE", help="Save the plan for apply --plan.")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when no changes, 2 when changes.")
@click.option(
    "--sandbox", is_flag=True, help="Plan against the sandbox's own state (as apply --sandbox records it)."
)
@plan_bound_options
@target_option
@select_option
@collector.paused()
def plan(
    config: str,
    state_location: str | None,
    output_format: str,
    out_path: str | None,
    detailed_exitcode: bool,
    sandbox: bool,
    max_update_percent: float,
    max_forget_percent: float,
    max_resync_percent: float,
    targets: tuple[str, ...],
    selectors: tuple[tuple[str, str], ...],
) -> None:
    """Show what apply would change, and whether apply's safety bounds would refuse it. Needs no network, no API
    key and no lock."""
    if out_path:
        planfile.config_name(config)  # a plan apply could not read is refused before anything is printed
    desired = load_or_exit(config, need_secrets=False, decrypt="auto")
    location = resolve_state_location(state_location, sandbox=sandbox)
    backend = open_state(location)
    # With --target, a backend that reads accounts apart (PostgreSQL) reads only the targets' rows; the safety
    # verdict still weighs every recorded account (a count), and every recorded id is read only to name close
    # ones when a target matches nothing.
    targeted = bool(targets) and backend.partial_reads
    recorded = backend.read_accounts(targets) if targeted else backend.read()
    log.debug(
        "read the state %s: %d account(s), serial %d",
        backend.describe(),
        len(recorded.accounts),
        recorded.serial,
    )
    note = sandbox_state_note(location)
    if note:
        click.echo(note, err=True)
    key = fingerprint_key(os.environ, run_redactor())
    the_plan = make_plan(
        desired,
        recorded,
        targets,
        list(selectors),
        fingerprint_key=key,
        recorded_ids=backend.account_ids if targeted else None,
    )
    _say_unkeyed(unkeyed_secrets(the_plan, desired, recorded, key))
    existing = backend.count_accounts() if targeted else len(recorded.accounts)
    if sandbox and not given("max_resync_percent"):
        max_resync_percent = 100.0  # as apply --sandbox weighs it
    elsewhere = None if sandbox or existing else _look_elsewhere(backend, the_plan)
    safety = weigh(the_plan, existing, max_update_percent, max_forget_percent, max_resync_percent, elsewhere)
    if out_path:  # first: a plan file that cannot be written leaves nothing on stdout
        planfile.save(
            out_path,
            the_plan,
            desired,
            recorded,
            state=backend.reference(),
            config=config,
            targets=list(targets),
            selectors=list(selectors),
            fingerprint_key=key,
            safety=safety,
        )
        if the_plan.unset_variables:  # said now, not first at apply --plan
            click.echo(
                f"note: {terminal(out_path)} cannot be applied (made while "
                f"{sources_text(the_plan.unset_variables)}): apply --plan refuses it; plan again where every "
                "value is known",
                err=True,
            )
    said = _said_on_the_plan(the_plan, output_format, not_decrypted(desired))
    click.echo(render_plan(the_plan, output_format, config, backend.reference(), safety, said), nl=False)
    write_github_outputs(
        {
            "changes": "true" if not the_plan.empty else "false",
            **{key: str(value) for key, value in the_plan.summary.items()},
        }
    )
    if detailed_exitcode and not the_plan.empty:
        sys.exit(ExitCode.CHANGES)


@click.command(short_help="Print a saved plan (from plan --out).")
@click.argument("planfile_path", metavar="PLANFILE")
@format_option
def show(planfile_path: str, output_format: str) -> None:
    """Print a saved plan (from plan --out). Needs no network, no state and no secret."""
    saved = planfile.load(planfile_path)
    the_plan = saved.plan
    show_warnings(list(the_plan.warnings))
    click.echo(render_plan(the_plan, output_format, saved.config, saved.state, saved.safety), nl=False)
