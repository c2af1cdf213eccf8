"""`apply`: parse flags, check the environment, call `runs.apply_run`, render the report, choose the exit code."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

from reconciler import collector, logs
from reconciler.api.endpoint import DEFAULT_API_URL, check_api_key, check_api_url, tls_context
from reconciler.applying import ApplyOptions, Progress
from reconciler.cli.common import (
    ExitCode,
    FiniteRange,
    ShardType,
    bound_options,
    config_argument,
    fail,
    format_option,
    given,
    load_or_exit,
    lock_timeout_option,
    open_state,
    render_plan,
    run_redactor,
    select_option,
    state_option,
    target_option,
)
from reconciler.cli.progress import progress_display
from reconciler.cli.reports import ReportFile, emit_report
from reconciler.errors import UsageError
from reconciler.escape import terminal
from reconciler.install import extra_command
from reconciler.model import Plan
from reconciler.runs import (
    ApiAccess,
    ApplyOutcome,
    ApplyRequest,
    ApplyScope,
    Confirmer,
    SafetyBounds,
    StateAccess,
    apply_run,
)
from reconciler.secrets import fingerprint_key
from reconciler.state import SHARDS_NEED_POSTGRES, Backend, display_location, resolve_state_location
from reconciler.urls import display_url

if TYPE_CHECKING:
    from reconciler import planfile

log = logs.get("apply")

#: `apply --sandbox` polls its embedded sandbox this often unless told otherwise (it answers at once).
SANDBOX_POLL_INTERVAL = 0.05


@contextlib.contextmanager
def _api(sandbox: bool, api_url: str | None, any_path: bool = False) -> Iterator[tuple[str, str]]:
    """The API's base URL and key: an embedded sandbox's, or the user's (checked before anything is sent)."""
    if not sandbox:
        api_key = check_api_key(os.environ.get("POSTPRESS_API_KEY", ""))
        url = api_url or os.environ.get("POSTPRESS_API_URL") or DEFAULT_API_URL
        for warning in check_api_url(url, run_redactor(), any_path):
            click.echo(f"Warning: {terminal(warning)}", err=True)
        yield url, api_key
        return
    try:
        from reconciler.sandbox import Sandbox, ServerThread, random_api_key
    except ImportError:
        fail(f"--sandbox needs the sandbox extra: {extra_command('sandbox')}")
    api_key = random_api_key()
    server = ServerThread(Sandbox(api_key, accept_any_account=True, sync_polls=1)).start()
    try:
        yield server.url, api_key
    finally:
        server.stop()


class Destination:
    """The one line that says where the changes go and where they are recorded, said once: before the
    confirmation prompt, or (with `--yes`) when requests are about to go, so that a refusal before them stays
    one line."""

    def __init__(self, url: str, backend: Backend, sandbox: bool) -> None:
        api = f"the sandbox at {url} (nothing leaves this machine)" if sandbox else display_url(url)
        self.line = f"Applying to {terminal(api)}; state {terminal(str(backend.reference()))}."
        self.said = False

    def say(self) -> None:
        if not self.said:
            click.echo(self.line, err=True)
            self.said = True

    def watch(self, progress: Progress) -> contextlib.AbstractContextManager[None]:
        """The progress display, after the line (unless the confirmation said it)."""
        self.say()
        return progress_display(progress)


def _load_saved_plan(path: str) -> planfile.SavedPlan:
    from reconciler import planfile  # only `apply --plan` reads one

    return planfile.load(path)


def _state_of_apply(
    state_location: str | None, sandbox: bool, saved: planfile.SavedPlan | None
) -> tuple[str, bool | None, str]:
    """The state to apply to: (location, whether the user named it, what chose it, as a message says it).

    `--state`, else the sandbox's state with `--sandbox`, else `RECONCILER_STATE`, else the state a saved plan
    was made against (when it names one apply may use: `SavedPlan.own_state`), else the default."""
    if state_location:
        return state_location, None, "--state names"
    if sandbox:
        return resolve_state_location(None, sandbox=True), None, "--sandbox uses"
    if os.environ.get("RECONCILER_STATE"):
        return resolve_state_location(None), None, "RECONCILER_STATE names"
    if saved is not None:
        return saved.own_state(), False, "the saved plan names"
    return resolve_state_location(None), None, "the default state is"


def _open_state(location: str, explicit: bool | None, shard: tuple[int, int] | None) -> Backend:
    """The state's backend (`_state_of_apply` chose it); a shard needs PostgreSQL, said before a sandbox starts
    or a key is read."""
    backend = open_state(
        location, explicit, "the saved plan's state" if explicit is False else "the default state"
    )
    if shard is not None and not backend.shards:
        raise UsageError(SHARDS_NEED_POSTGRES)
    return backend


def _say_outcome(outcome: ApplyOutcome, location: str) -> None:
    """What the run did, on standard error: its warnings, then that nothing was to do, or where it recorded (and
    that nothing was applied, when no operation succeeded)."""
    for warning in outcome.warnings:
        click.echo(f"Warning: {terminal(warning)}", err=True)
    if outcome.plan.empty:
        click.echo("No changes. Nothing to apply.", err=True)
        return
    state = terminal(display_location(location))
    if any(result.outcome == "succeeded" for result in outcome.results):
        click.echo(f"Applied in {outcome.elapsed:.1f}s; state {state}.", err=True)
    else:
        click.echo(f"Finished in {outcome.elapsed:.1f}s with nothing applied; state {state}.", err=True)


def _say_at_once(line: str) -> None:
    """A line while the run goes on (a signal arrived): on a line of its own below a progress bar."""
    click.echo(("\n" if sys.stderr.isatty() else "") + line, err=True)


def _confirm_on_terminal(config: str, destination: Destination) -> Confirmer:
    def confirm(plan: Plan) -> None:
        click.echo(render_plan(plan, "text", config), nl=False, err=True)
        if not sys.stdin.isatty():
            raise UsageError("refusing to apply without --yes: no terminal to confirm on")
        destination.say()
        click.confirm("Apply these changes?", abort=True, err=True)

    return confirm


@click.command(short_help="Apply CONFIG or a saved plan to the postpress API.")
@config_argument
@click.option("--plan", "plan_path", default=None, metavar="PLANFILE", help="Apply exactly this saved plan.")
@state_option
@click.option("--api-url", default=None, help="API base URL (else $POSTPRESS_API_URL, else the public API).")
@click.option(
    "--any-api-path",
    "any_api_path",
    is_flag=True,
    help="Accept an API URL whose path does not end in /api/v1 (a proxy in front of the API that rewrites paths).",
)
@click.option(
    "--sandbox", is_flag=True, help="Apply against an embedded local sandbox with a separate state."
)
@click.option("--concurrency", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option("--max-attempts", type=click.IntRange(1, 20), default=4, show_default=True)
@click.option(
    "--timeout", type=FiniteRange(0.1), default=30.0, show_default=True, help="Seconds per request."
)
@click.option(
    "--rate-limit",
    type=FiniteRange(0.1),
    default=None,
    help="Requests per second at most (a ceiling: the pace may go slower when the API pushes back).",
)
@click.option(
    "--pace",
    type=click.Choice(["adaptive", "fixed"]),
    default="adaptive",
    show_default=True,
    help="adaptive: slow down when the API throttles and speed up again, under the ceilings --concurrency and "
    "--rate-limit; fixed: hold the ceilings whatever the API answers.",
)
@click.option(
    "--throttle-timeout",
    type=FiniteRange(0),
    default=300.0,
    show_default=True,
    help="Seconds one operation may keep being refused by throttling (429, 503, 504) and sent again without "
    "using an attempt; after that such answers count against --max-attempts.",
)
@click.option("--sync-poll-interval", type=FiniteRange(0.0), default=5.0, show_default=True)
@click.option("--sync-timeout", type=FiniteRange(0.0), default=1800.0, show_default=True)
@click.option(
    "--max-consecutive-failures",
    type=click.IntRange(0),
    default=None,
    help="Stop sending after this many consecutive failed requests of one kind across accounts (a wrong key, "
    "an API down); 0 turns it off. Default: the concurrency, at least 5.",
)
@click.option(
    "--max-retry-after",
    type=FiniteRange(0),
    default=120.0,
    show_default=True,
    help="Longest Retry-After (seconds) honoured; a longer one stops the run.",
)
@click.option(
    "--grace",
    type=FiniteRange(0),
    default=5.0,
    show_default=True,
    help="After Ctrl-C or SIGTERM, seconds that requests in flight may take to answer.",
)
@lock_timeout_option
@bound_options
@click.option(
    "--ca-bundle",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="PEM file of CA certificates to trust for the API.",
)
@click.option(
    "--shard",
    default=None,
    type=ShardType(),
    help="Apply only shard K of N (PostgreSQL state): N runners can apply shards 1..N at once.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Apply even past the safety bounds.")
@click.option("--report", "report_path", default=None, metavar="FILE", help="Write the JSON report here.")
@format_option
@target_option
@select_option
@collector.paused()
# long: a click command takes one parameter per option (29 here); its body is the steps of an apply, in order
def apply(
    config: str,
    plan_path: str | None,
    state_location: str | None,
    api_url: str | None,
    any_api_path: bool,
    sandbox: bool,
    concurrency: int,
    max_attempts: int,
    timeout: float,
    rate_limit: float | None,
    pace: str,
    throttle_timeout: float,
    sync_poll_interval: float,
    sync_timeout: float,
    max_consecutive_failures: int | None,
    max_retry_after: float,
    grace: float,
    lock_timeout: float,
    max_update_percent: float,
    max_forget_percent: float,
    max_resync_percent: float,
    ca_bundle: str | None,
    shard: tuple[int, int] | None,
    yes: bool,
    force: bool,
    report_path: str | None,
    output_format: str,
    targets: tuple[str, ...],
    selectors: tuple[tuple[str, str], ...],
) -> None:
    """Apply CONFIG (or a saved plan) to the postpress API; exit 0 all done, 3 some failed, 1 nothing attempted."""
    if plan_path and (given("config") or targets or selectors or shard):
        raise UsageError(
            "--plan applies exactly the saved plan: give no CONFIG, --target, --select or --shard"
        )
    saved = _load_saved_plan(plan_path) if plan_path else None
    if saved is not None:
        config, targets, selectors = saved.config, saved.targets, saved.selectors
        saved.check_config()  # inside the working directory, before any file is opened
    if ca_bundle:
        tls_context(ca_bundle)  # a bad bundle is one line before anything else
    desired = load_or_exit(
        config,
        need_secrets=False,
        check_digest=saved.check_config_digest if saved is not None else None,
        decrypt="always",
    )
    if sandbox and not given("sync_poll_interval"):
        sync_poll_interval = SANDBOX_POLL_INTERVAL
    if sandbox and not given("max_resync_percent"):
        max_resync_percent = 100.0  # the sandbox's accounts are not real: a resync costs them nothing
    location, explicit, named_by = _state_of_apply(state_location, sandbox, saved)
    backend = _open_state(location, explicit, shard)
    options = ApplyOptions(
        concurrency=concurrency,
        max_attempts=max_attempts,
        timeout=timeout,
        rate_limit=rate_limit,
        adaptive=pace == "adaptive",
        throttle_timeout=throttle_timeout,
        sync_poll_interval=sync_poll_interval,
        sync_timeout=sync_timeout,
        max_consecutive_failures=max_consecutive_failures,
        max_retry_after=max_retry_after,
        grace=grace,
    )
    with ReportFile.open(report_path) as report_file, _api(sandbox, api_url, any_api_path) as (url, api_key):
        run_redactor().register(api_key)
        log.debug(
            "API %s, concurrency %d, up to %d attempt(s), timeout %g s",
            url,
            concurrency,
            max_attempts,
            timeout,
        )
        request = ApplyRequest(
            scope=ApplyScope(desired, targets=targets, selectors=selectors, shard=shard, saved=saved),
            state=StateAccess(backend, lock_timeout=lock_timeout, named_by=named_by),
            api=ApiAccess(url, api_key, ca_bundle=ca_bundle),
            options=options,
            safety=SafetyBounds(
                force=force,
                max_update_percent=max_update_percent,
                max_forget_percent=max_forget_percent,
                max_resync_percent=max_resync_percent,
                look_elsewhere=not sandbox,
            ),
            fingerprint_key=fingerprint_key(os.environ, run_redactor()),
            redactor=run_redactor(),
        )
        destination = Destination(url, backend, sandbox)
        outcome = apply_run(
            request,
            confirm=None if yes else _confirm_on_terminal(config, destination),
            watch=destination.watch,
            notify=_say_at_once,
        )
        _say_outcome(outcome, location)
        emit_report(outcome.results, outcome.stop_reason, outcome.pace, output_format, report_file)
    if outcome.cancelled_by is not None:
        sys.exit(128 + outcome.cancelled_by)  # 130 for SIGINT, 143 for SIGTERM
    if not outcome.complete:
        sys.exit(ExitCode.PARTIAL)
