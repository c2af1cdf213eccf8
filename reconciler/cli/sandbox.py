"""`sandbox`: serve a local postpress API for trying the tool and for tests."""

from __future__ import annotations

import os
import sys

import click

from reconciler.cli.common import FiniteRange, fail
from reconciler.install import extra_command


@click.command("sandbox", short_help="Serve a local postpress API for trying the tool and tests.")
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
@click.option("--latency-ms", type=FiniteRange(0), default=0.0)
@click.option("--jitter-ms", type=FiniteRange(0), default=0.0)
@click.option(
    "--fault",
    "faults",
    multiple=True,
    metavar="SPEC",
    help="TYPE[:RATE][@ID,...][;retry_after=N][;route=patch|sync][;times=N][;unlisted][;echo[=SHAPE,...]]; TYPE "
    "is an API error type (answered only on the routes whose reference page lists it, unless marked ;unlisted, "
    "and with the request quoted in the error's detail when marked ;echo, or in the shapes named by "
    ";echo=cut,upper,hex,split), or hang, drop, "
    "garbage, html, truncated, huge, wrong_account or wrong_object.",
)
@click.option(
    "--rate-limit",
    type=FiniteRange(0, min_open=True),
    default=None,
    help="A token bucket refilled at this many requests/s; past it, --throttle-answer.",
)
@click.option(
    "--burst",
    type=FiniteRange(1),
    default=None,
    help="The bucket's size: requests let through at once (default: one second's worth). Needs --rate-limit.",
)
@click.option(
    "--throttle-answer",
    # Sandbox's THROTTLE_ANSWERS (not imported here: the sandbox package needs its extra).
    type=click.Choice(["429", "429-retry-after", "503"]),
    default="429-retry-after",
    show_default=True,
    help="The answer past the rate limit: 429, 429 with Retry-After: 1, or 503.",
)
@click.option(
    "--max-in-flight",
    type=click.IntRange(1),
    default=None,
    metavar="K",
    help="A worker pool of K: a request arriving while K are being served answers 503 at once.",
)
@click.option("--sync-polls", type=click.IntRange(0), default=2, show_default=True)
@click.option(
    "--unsupported-providers",
    default="MAIL,GOOGLE_OAUTH,ICLOUD,OUTLOOK,EXCHANGE",
    show_default=True,
    help="Comma-separated providers whose proxy update answers 501.",
)
@click.option("--seed", type=int, default=None)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1),
    default=1 << 20,
    show_default=True,
    help="Larger request bodies answer 400 errors/content_too_large.",
)
def sandbox(
    host: str,
    port: int,
    accounts_file: str | None,
    accept_any_account: bool,
    api_key: str | None,
    latency_ms: float,
    jitter_ms: float,
    faults: tuple[str, ...],
    rate_limit: float | None,
    burst: float | None,
    throttle_answer: str,
    max_in_flight: int | None,
    sync_polls: int,
    unsupported_providers: str,
    seed: int | None,
    max_body_bytes: int,
) -> None:
    """Serve a local postpress API for trying the tool and for tests."""
    if burst is not None and rate_limit is None:
        fail("--burst needs --rate-limit")
    try:
        from reconciler.sandbox import (
            Fault,
            Sandbox,
            SandboxStartError,
            ServerThread,
            load_accounts_file,
            random_api_key,
        )
    except ImportError:
        fail(f"the sandbox needs its extra: {extra_command('sandbox')}")
    try:
        parsed_faults = [Fault.parse(spec) for spec in faults]
    except ValueError as exc:
        fail(f"--fault: {exc}")
    key = api_key or os.environ.get("POSTPRESS_API_KEY")
    generated = not key
    if not key:
        key = random_api_key()  # printed once the server listens: a start that fails shows no key
    unsupported = frozenset(name.strip().upper() for name in unsupported_providers.split(",") if name.strip())
    try:
        accounts = load_accounts_file(accounts_file) if accounts_file else {}
    except ValueError as exc:
        fail(f"--accounts: {exc}")
    api = Sandbox(
        key,
        accounts=accounts,
        accept_any_account=accept_any_account,
        latency_ms=latency_ms,
        jitter_ms=jitter_ms,
        faults=parsed_faults,
        rate_limit=rate_limit,
        burst=burst,
        throttle_answer=throttle_answer,
        max_in_flight=max_in_flight,
        seed=seed,
        sync_polls=sync_polls,
        unsupported_providers=unsupported,
        max_body_bytes=max_body_bytes,
    )
    try:
        server = ServerThread(api, host, port).start()
    except SandboxStartError as exc:
        fail(str(exc))
    if generated:
        click.echo(f"API key: {key}", err=True)
    click.echo(f"Sandbox listening on {server.url}", err=True)
    sys.stderr.flush()
    try:
        while server.thread.is_alive():
            server.thread.join(0.5)
    except KeyboardInterrupt:
        server.stop()
