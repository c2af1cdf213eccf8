"""The commands that talk to an API: `apply` and `sandbox`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from reconciler import logs, planfile, secrets
from reconciler.applying import ApplyOptions, Engine, Progress
from reconciler.cli import (
    config_argument,
    fail,
    load_or_exit,
    parse_selectors,
    render_plan,
    select_option,
    state_option,
    target_option,
)
from reconciler.errors import ReconcilerError, UsageError
from reconciler.model import Plan, Recorded, Result
from reconciler.planning import make_plan, raise_if_unsafe, shard_of
from reconciler.render import report
from reconciler.state import open_backend, resolve_state_location

if TYPE_CHECKING:
    from reconciler.api.client import ApiClient

log = logs.get("apply")
#: Without a terminal (CI logs), a progress line this often.
PROGRESS_LINE_SECONDS = 5.0

DEFAULT_API_URL = "https://api.postpress.ai/api/v1"


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` with 1 <= K <= N."""
    index, _, count = text.partition("/")
    if not (index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count)):
        raise UsageError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 2/4")
    return int(index), int(count)


@contextlib.contextmanager
def _ticking(interval: float, tick: Callable[[], None]) -> Iterator[None]:
    """Call `tick` every `interval` seconds from a background thread while the block runs."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(interval):
            tick()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def progress_display(progress: Progress, client_ref: list[ApiClient]) -> Iterator[None]:
    """A rich progress bar on a terminal; elsewhere a line to stderr every few seconds."""
    if not sys.stderr.isatty():

        def line() -> None:
            click.echo(
                f"apply: {progress.done}/{progress.total} accounts done, "
                f"{progress.syncs_polling} syncs polling",
                err=True,
            )

        with _ticking(PROGRESS_LINE_SECONDS, line):
            yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as Bar

    # On stderr, as the line above: stdout carries the report (JSON with --format json).
    with Bar(
        TextColumn("apply"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        transient=True,
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("apply", total=progress.total or None, detail="")

        def refresh() -> None:
            in_flight = client_ref[0].in_flight if client_ref else 0
            bar.update(
                task,
                total=progress.total,
                completed=progress.done,
                detail=f"{in_flight} in flight, {progress.syncs_polling} syncs polling",
            )

        with _ticking(0.2, refresh):
            yield


async def _run_engine(
    plan: Plan,
    desired: Any,
    journal: Any,
    api_url: str,
    api_key: str,
    options: ApplyOptions,
    ca_bundle: str | None,
    progress: Progress,
    client_ref: list[ApiClient],
) -> Engine:
    from reconciler.api.client import ApiClient  # aiohttp: imported only by the command that sends requests

    client = ApiClient(api_url, api_key, options.concurrency, options.timeout, ca_bundle)
    client_ref.append(client)
    engine = Engine(client, journal, desired.accounts, options, progress)
    try:
        await engine.run(plan.changes)
    finally:
        await client.close()
    return engine


def _emit_report(
    results: list[Result], stop_reason: str | None, output_format: str, report_path: str | None
) -> None:
    if output_format == "json":
        click.echo(report.render_json(results), nl=False)
    elif output_format == "markdown":
        click.echo(report.render_markdown(results, stop_reason), nl=False)
    else:
        click.echo(report.render_text(results, stop_reason), nl=False)
    if report_path:
        Path(report_path).write_text(report.render_json(results), encoding="utf-8")
    summary_path = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_path:
        with open(summary_path, "a", encoding="utf-8") as handle:
            handle.write(report.render_markdown(results, stop_reason) + "\n")


@click.command()
@config_argument
@click.option("--plan", "plan_path", default=None, metavar="PLANFILE", help="Apply exactly this saved plan.")
@state_option
@click.option("--api-url", default=None, help="API base URL (else $POSTPRESS_API_URL, else the public API).")
@click.option(
    "--sandbox", is_flag=True, help="Apply against an embedded local sandbox with a separate state."
)
@click.option("--concurrency", type=click.IntRange(1, 1024), default=8, show_default=True)
@click.option("--max-attempts", type=click.IntRange(1, 20), default=4, show_default=True)
@click.option(
    "--timeout", type=click.FloatRange(0.1), default=30.0, show_default=True, help="Seconds per request."
)
@click.option("--rate-limit", type=click.FloatRange(0.1), default=None, help="Requests per second at most.")
@click.option("--sync-poll-interval", type=click.FloatRange(0.0), default=5.0, show_default=True)
@click.option("--sync-timeout", type=click.FloatRange(0.0), default=1800.0, show_default=True)
@click.option("--lock-timeout", type=click.FloatRange(0.0), default=0.0, show_default=True)
@click.option("--max-update-percent", type=click.FloatRange(0, 100), default=30.0, show_default=True)
@click.option("--max-forget-percent", type=click.FloatRange(0, 100), default=30.0, show_default=True)
@click.option(
    "--ca-bundle",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="PEM file of CA certificates to trust for the API.",
)
@click.option(
    "--shard",
    default=None,
    metavar="K/N",
    help="Apply only shard K of N (PostgreSQL state): N runners can apply shards 1..N at once.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--force", is_flag=True, help="Apply even past the safety bounds.")
@click.option("--report", "report_path", default=None, metavar="FILE", help="Write the JSON report here.")
@click.option("--format", "output_format", type=click.Choice(["text", "json", "markdown"]), default="text")
@target_option
@select_option
def apply(
    config: str,
    plan_path: str | None,
    state_location: str | None,
    api_url: str | None,
    sandbox: bool,
    concurrency: int,
    max_attempts: int,
    timeout: float,
    rate_limit: float | None,
    sync_poll_interval: float,
    sync_timeout: float,
    lock_timeout: float,
    max_update_percent: float,
    max_forget_percent: float,
    ca_bundle: str | None,
    shard: str | None,
    yes: bool,
    force: bool,
    report_path: str | None,
    output_format: str,
    targets: tuple[str, ...],
    selects: tuple[str, ...],
) -> None:
    """Apply CONFIG (or a saved plan) to the postpress API; exit 0 all done, 3 some failed, 1 nothing attempted."""
    selectors = parse_selectors(selects)
    context = click.get_current_context()
    config_given = context.get_parameter_source("config") is not click.core.ParameterSource.DEFAULT
    if plan_path and (config_given or targets or selects or shard):
        raise UsageError(
            "--plan applies exactly the saved plan: give no CONFIG, --target, --select or --shard"
        )
    shard_spec = parse_shard(shard) if shard else None
    saved = planfile.load(plan_path) if plan_path else None
    if saved:
        config = saved["config"]
        targets = tuple(saved["targets"])
        selectors = [tuple(pair) for pair in saved["selectors"]]  # type: ignore[misc]
    desired = load_or_exit(config)
    server = None
    if sandbox:
        from reconciler.sandbox.server import Sandbox, ServerThread, random_api_key

        api_key = random_api_key()
        server = ServerThread(Sandbox(api_key, accept_any_account=True, sync_polls=1)).start()
        api_url = server.url
        if sync_poll_interval == 5.0:
            sync_poll_interval = 0.05
        click.echo(f"Sandbox API at {api_url} (nothing leaves this machine).", err=True)
    else:
        api_key = os.environ.get("POSTPRESS_API_KEY", "")
        api_url = api_url or os.environ.get("POSTPRESS_API_URL") or DEFAULT_API_URL
        if not api_key:
            raise UsageError("POSTPRESS_API_KEY is not set; the API key is read from the environment only")
    secrets.register(api_key)
    log.debug(
        "API %s, concurrency %d, up to %d attempt(s), timeout %g s",
        api_url,
        concurrency,
        max_attempts,
        timeout,
    )
    location = resolve_state_location(state_location, sandbox=sandbox)
    backend = open_backend(location)
    options = ApplyOptions(
        concurrency=concurrency,
        max_attempts=max_attempts,
        timeout=timeout,
        rate_limit=rate_limit,
        sync_poll_interval=sync_poll_interval,
        sync_timeout=sync_timeout,
    )
    try:
        with backend.lock(timeout=lock_timeout, command="apply", shard=shard_spec):
            log.debug("locked the state %s", backend.describe())
            before = backend.read()
            log.debug("read %d recorded account(s), serial %d", len(before.accounts), before.serial)
            if saved and not before.exists:
                before.salt = saved["salt"]  # a first apply keeps the salt its saved plan fingerprinted with
            plan = make_plan(desired, before, targets, selectors, shard_spec)
            if saved:
                planfile.check_fresh(saved, plan)
            if plan.empty:
                click.echo("No changes. Nothing to apply.", err=True)
                _emit_report([], None, output_format, report_path)
                return
            if not force:
                in_scope = (
                    before
                    if shard_spec is None
                    else Recorded(
                        before.lineage,
                        before.serial,
                        before.salt,
                        {
                            i: r
                            for i, r in before.accounts.items()
                            if shard_of(i, shard_spec[1]) == shard_spec[0]
                        },
                    )
                )
                raise_if_unsafe(plan, in_scope, max_update_percent, max_forget_percent)
            if not yes:
                click.echo(render_plan(plan, "text", config, location), nl=False, err=True)
                if not sys.stdin.isatty():
                    fail("refusing to apply without --yes: no terminal to confirm on")
                click.confirm("Apply these changes?", abort=True, err=True)
            recorded, journal = backend.open_journal(salt=before.salt)
            progress = Progress()
            client_ref: list[ApiClient] = []
            started = time.monotonic()
            try:
                with progress_display(progress, client_ref):
                    engine = asyncio.run(
                        _run_engine(
                            plan, desired, journal, api_url, api_key, options, ca_bundle, progress, client_ref
                        )
                    )
            except BaseException:
                with contextlib.suppress(ReconcilerError, OSError):  # report the first failure, not this one
                    journal.close()
                raise
            journal.close()
            click.echo(f"Applied in {time.monotonic() - started:.1f}s; state {location}.", err=True)
    finally:
        if server is not None:
            server.stop()
    _emit_report(engine.results, engine.stop_reason, output_format, report_path)
    if any(result.outcome != "succeeded" for result in engine.results):
        sys.exit(3)


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8787, show_default=True)
@click.option(
    "--accounts",
    "accounts_file",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="YAML/JSON: {accounts: {ID: {provider, sync_polls, sync_result}}}.",
)
@click.option("--accept-any-account", is_flag=True, help="Answer for any account id (as LINKEDIN).")
@click.option(
    "--api-key", default=None, help="Key to require (else $POSTPRESS_API_KEY, else a random one, printed)."
)
@click.option("--latency-ms", type=click.FloatRange(0), default=0.0)
@click.option("--jitter-ms", type=click.FloatRange(0), default=0.0)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="SPEC",
    help="TYPE[:RATE][@ID,...][;retry_after=N][;route=patch|sync][;times=N]; TYPE is an error type, "
    "or hang, drop, garbage, html, truncated, huge, wrong_account or wrong_object.",
)
@click.option(
    "--rate-limit", type=click.FloatRange(0.1), default=None, help="429 above this many requests/s."
)
@click.option("--sync-polls", type=click.IntRange(0), default=2, show_default=True)
@click.option(
    "--unsupported-providers",
    default="MAIL,GOOGLE_OAUTH,ICLOUD,OUTLOOK,EXCHANGE",
    show_default=True,
    help="Comma-separated providers whose proxy update answers 501.",
)
@click.option("--seed", type=int, default=None)
def sandbox_command(
    host: str,
    port: int,
    accounts_file: str | None,
    accept_any_account: bool,
    api_key: str | None,
    latency_ms: float,
    jitter_ms: float,
    faults: tuple[str, ...],
    rate_limit: float | None,
    sync_polls: int,
    unsupported_providers: str,
    seed: int | None,
) -> None:
    """Serve a local postpress API for trying the tool and for tests."""
    try:
        from reconciler.sandbox.server import Fault, Sandbox, ServerThread, load_accounts_file, random_api_key
    except ImportError:
        from importlib.metadata import version

        pinned = f"postpress-reconciler[sandbox]=={version('postpress-reconciler')}"
        fail(f"the sandbox needs its extra: pip install '{pinned}'")
    try:
        parsed_faults = [Fault.parse(spec) for spec in faults]
    except ValueError as exc:
        fail(f"--fault: {exc}")
    key = api_key or os.environ.get("POSTPRESS_API_KEY")
    if not key:
        key = random_api_key()
        click.echo(f"API key: {key}", err=True)
    accounts = load_accounts_file(accounts_file) if accounts_file else {}
    unsupported = frozenset(name.strip().upper() for name in unsupported_providers.split(",") if name.strip())
    sandbox = Sandbox(
        key,
        accounts,
        accept_any_account,
        latency_ms,
        jitter_ms,
        parsed_faults,
        rate_limit,
        seed,
        sync_polls,
        unsupported,
    )
    server = ServerThread(sandbox, host, port).start()
    click.echo(f"Sandbox listening on {server.url}", err=True)
    sys.stderr.flush()
    try:
        while server.thread.is_alive():
            server.thread.join(0.5)
    except KeyboardInterrupt:
        server.stop()


def register(group: click.Group) -> None:
    group.add_command(apply)
    group.add_command(sandbox_command)
