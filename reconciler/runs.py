"""Application functions that the CLI and the tests both call: the whole apply flow in one place.

apply: lock -> read -> plan -> freshness of a saved plan -> safety bound -> confirm -> create the state if there is
none yet (planning again if another shard created it first) -> journal -> engine -> fold. The caller parses,
renders and chooses the exit code; this module prints nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from reconciler import logs
from reconciler.applying import ApplyOptions, Engine, Progress
from reconciler.applying.stripping import strip_stored_messages
from reconciler.errors import ReconcilerError, UsageError
from reconciler.model import Desired, PaceSummary, Plan, Recorded, Result, no_requests
from reconciler.plain import Plain
from reconciler.planning import (
    DEFAULT_MAX_RESYNC_PERCENT,
    make_plan,
    raise_if_unsafe,
    shard_of,
    to_create,
    weigh,
)
from reconciler.secrets import needed_message
from reconciler.secrets.redaction import Redactor
from reconciler.state import Backend, Journal, look_elsewhere

if TYPE_CHECKING:
    from reconciler import planfile

log = logs.get("apply")


class ApplyScope(Plain):
    """What to apply: the desired state, narrowed by `targets`, `selectors` and a `shard`; or `saved`, a loaded
    saved plan (`apply --plan`) to apply exactly."""

    __slots__ = ("desired", "targets", "selectors", "shard", "saved")

    def __init__(
        self,
        desired: Desired,
        *,
        targets: tuple[str, ...] = (),
        selectors: tuple[tuple[str, str], ...] = (),
        shard: tuple[int, int] | None = None,
        saved: planfile.SavedPlan | None = None,
    ) -> None:
        self.desired = desired
        self.targets = targets
        self.selectors = selectors
        self.shard = shard
        self.saved = saved


class StateAccess(Plain):
    """Where the run records: the state's backend, how long to wait for its lock, and what chose it."""

    __slots__ = ("backend", "lock_timeout", "named_by")

    def __init__(
        self, backend: Backend, *, lock_timeout: float = 0.0, named_by: str = "--state names"
    ) -> None:
        self.backend = backend
        self.lock_timeout = lock_timeout
        #: What chose `backend`, as a refusal of a saved plan made against another state says it.
        self.named_by = named_by


class ApiAccess(Plain):
    """The API the run sends to: its base URL, the key, and the CA certificates to trust for it."""

    __slots__ = ("url", "key", "ca_bundle")
    _hidden = frozenset(("key",))  # never in a repr

    def __init__(self, url: str, key: str, *, ca_bundle: str | None = None) -> None:
        self.url = url
        self.key = key
        self.ca_bundle = ca_bundle


class SafetyBounds(Plain):
    """What a plan is weighed against before anything is sent (`planning.weigh`), and `force`, which applies past
    all of it. A new bound is one more slot here."""

    __slots__ = ("force", "max_update_percent", "max_forget_percent", "max_resync_percent", "look_elsewhere")

    def __init__(
        self,
        *,
        force: bool = False,
        max_update_percent: float = 30.0,
        max_forget_percent: float = 30.0,
        max_resync_percent: float = DEFAULT_MAX_RESYNC_PERCENT,
        look_elsewhere: bool = True,
    ) -> None:
        self.force = force
        self.max_update_percent = max_update_percent
        self.max_forget_percent = max_forget_percent
        self.max_resync_percent = max_resync_percent
        #: Whether an empty state is refused when another state holds the accounts (not for the sandbox's).
        self.look_elsewhere = look_elsewhere


class ApplyRequest(Plain):
    """Everything one apply needs: what to apply, the state it records in, the API it sends to, the engine's
    options, the safety bounds, and the key of its fingerprints."""

    __slots__ = ("scope", "state", "api", "options", "safety", "fingerprint_key", "redactor")
    _hidden = frozenset(("fingerprint_key", "redactor"))  # never in a repr (nor is the API's key: ApiAccess)

    def __init__(
        self,
        scope: ApplyScope,
        state: StateAccess,
        api: ApiAccess,
        *,
        options: ApplyOptions | None = None,
        safety: SafetyBounds | None = None,
        fingerprint_key: str | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        self.scope = scope
        self.state = state
        self.api = api
        self.options = ApplyOptions() if options is None else options
        self.safety = SafetyBounds() if safety is None else safety
        #: Mixed into the state's salt for fingerprints (`RECONCILER_FINGERPRINT_KEY`); None: the salt alone.
        self.fingerprint_key = fingerprint_key
        #: The run's: knows its secrets (the API key among them), redacts the API's answers of them.
        self.redactor = Redactor() if redactor is None else redactor


class ApplyOutcome(Plain):
    """What an apply did: the plan it applied and each operation's result (empty when nothing was to do)."""

    __slots__ = ("plan", "results", "stop_reason", "elapsed", "cancelled_by", "warnings", "pace")

    def __init__(
        self,
        *,
        plan: Plan,
        results: list[Result] | None = None,
        stop_reason: str | None = None,
        elapsed: float = 0.0,
        cancelled_by: int | None = None,
        warnings: tuple[str, ...] = (),
        pace: PaceSummary | None = None,
    ) -> None:
        self.plan = plan
        self.results: list[Result] = [] if results is None else results
        self.stop_reason = stop_reason
        self.elapsed = elapsed
        #: The signal (SIGINT or SIGTERM) that cancelled the run, if one did.
        self.cancelled_by = cancelled_by
        #: What went wrong after the operations without changing their results, one line each.
        self.warnings = warnings
        #: What the pace did: how often the API throttled, the pace it held.
        self.pace = no_requests() if pace is None else pace

    @property
    def complete(self) -> bool:
        """Every operation succeeded (or there was nothing to do)."""
        return all(result.outcome == "succeeded" for result in self.results)


#: Shown while the engine runs; given the live counters.
Watcher = Callable[[Progress], AbstractContextManager[None]]
#: Asked before anything is sent, with the plan about to be applied; raises to refuse.
Confirmer = Callable[[Plan], None]
#: Told, in one line, what a signal does to the run as it arrives (the caller prints it).
Notifier = Callable[[str], None]


def _recorded_count(backend: Backend, before: Recorded, request: ApplyRequest, targeted: bool) -> int:
    """How many recorded accounts the safety bound weighs: the state's, or the shard's own when sharded. A
    targeted read (`before` holding only the targets) asks the backend, so a targeted apply is weighed against
    the whole state as any other, never against the few records it read."""
    shard = request.scope.shard
    if not targeted:
        if shard is None:
            return len(before.accounts)
        return sum(1 for account_id in before.accounts if shard_of(account_id, shard[1]) == shard[0])
    if shard is None:
        return backend.count_accounts()
    return sum(1 for account_id in backend.account_ids() if shard_of(account_id, shard[1]) == shard[0])


def _holds_nothing(backend: Backend, before: Recorded, targeted: bool) -> bool:
    """Whether the state holds no account at all (`before` holds only the targets' records when `targeted`)."""
    return backend.count_accounts() == 0 if targeted else not before.accounts


def _plan(request: ApplyRequest, recorded: Recorded, targeted: bool) -> Plan:
    """The plan against `recorded`; `targeted`: it holds only the targets' records (`Backend.read_accounts`)."""
    return make_plan(
        request.scope.desired,
        recorded,
        request.scope.targets,
        list(request.scope.selectors),
        request.scope.shard,
        fingerprint_key=request.fingerprint_key,
        recorded_ids=request.state.backend.account_ids if targeted else None,
    )


def apply_run(
    request: ApplyRequest,
    confirm: Confirmer | None = None,
    watch: Watcher | None = None,
    notify: Notifier | None = None,
) -> ApplyOutcome:
    """Apply the desired state under the state's lock; every success is recorded durably as it happens.

    Raises (nothing sent): LockHeld, WrongState (a saved plan made against another state), StalePlan (also for
    a saved plan made while variables were unset),
    UsageError (a variable the changes need is unset), UnsafePlan, or whatever `confirm` raises. Failures of single
    operations are results, not exceptions. `notify` is told what a cancelling signal does, as it arrives.
    """
    if request.scope.saved is not None:
        request.scope.saved.check_complete()
    backend = request.state.backend
    # With --target, a backend that reads accounts apart (PostgreSQL) reads only the targets' records, for the
    # plan and for the journal; the safety bound still weighs the whole state (`_recorded_count`).
    targeted = bool(request.scope.targets) and backend.partial_reads
    only = request.scope.targets if targeted else None
    with backend.lock(timeout=request.state.lock_timeout, command="apply", shard=request.scope.shard):
        log.debug("locked the state %s", backend.describe())
        before = backend.read_accounts(request.scope.targets) if targeted else backend.read()
        log.debug(
            "read %d recorded account(s)%s, serial %d",
            len(before.accounts),
            f" of {len(request.scope.targets)} targeted" if targeted else "",
            before.serial,
        )
        if request.scope.saved is not None:
            request.scope.saved.check_state(before, backend.reference(), request.state.named_by)
        plan = _plan(request, before, targeted)
        if plan.unset_variables:
            raise UsageError(needed_message(plan.unset_variables, "apply", "sends"))
        if request.scope.saved is not None:
            request.scope.saved.check_fresh(plan, request.scope.desired, before, request.fingerprint_key)
        if plan.empty:
            return ApplyOutcome(plan=plan, pace=no_requests(request.options.adaptive))
        if not request.safety.force:
            _check_safety(request, plan, before, targeted)
        if confirm is not None:
            confirm(plan)
        if not before.exists:
            plan = _create_state(request, plan, before, targeted)
        snapshot, journal = backend.open_journal(accounts=only)
        progress = Progress(total=len(plan.changes))
        started = time.monotonic()
        try:
            with watch(progress) if watch is not None else contextlib.nullcontext():
                engine, warning = asyncio.run(
                    _run_engine(request, plan, journal, progress, snapshot, targeted, notify)
                )
        except BaseException:
            with contextlib.suppress(ReconcilerError, OSError):  # report the first failure, not this one
                journal.close()
            raise
        journal.close()
    return ApplyOutcome(
        plan=plan,
        results=engine.results,
        stop_reason=engine.stop_reason,
        elapsed=time.monotonic() - started,
        cancelled_by=engine.cancelled_by,
        warnings=(warning,) if warning else (),
        pace=engine.pace_summary(),
    )


def _check_safety(request: ApplyRequest, plan: Plan, before: Recorded, targeted: bool) -> None:
    """Raise UnsafePlan past a safety bound, or when the state holds nothing and another holds the accounts to
    create (`before`: the state read, only the targets' records when `targeted`)."""
    backend = request.state.backend
    existing = _recorded_count(backend, before, request, targeted)
    elsewhere = None
    if request.safety.look_elsewhere and _holds_nothing(backend, before, targeted):
        elsewhere = look_elsewhere(backend, to_create(plan))
    raise_if_unsafe(
        weigh(
            plan,
            existing,
            request.safety.max_update_percent,
            request.safety.max_forget_percent,
            request.safety.max_resync_percent,
            elsewhere,
        )
    )


def _create_state(request: ApplyRequest, plan: Plan, before: Recorded, targeted: bool) -> Plan:
    """Create the state the first apply finds absent, with the salt it planned with; the plan to apply.

    Shards started together each read no state and planned with a salt of their own: only one creation wins, and
    a shard that lost plans again with the winner's salt, so no fingerprint is recorded with a salt that is not
    the state's. Nothing else in the plan can change: a shard plans only its own accounts, which no other holder
    of a lock writes meanwhile."""
    only = request.scope.targets if targeted else None
    created = request.state.backend.create_if_absent(salt=before.salt, accounts=only)
    if created.salt == before.salt:
        return plan
    log.debug("the state was created by another shard: planning again with its salt")
    return _plan(request, created, targeted)


async def _run_engine(
    request: ApplyRequest,
    plan: Plan,
    journal: Journal,
    progress: Progress,
    recorded: Recorded,
    targeted: bool = False,
    notify: Notifier | None = None,
) -> tuple[Engine, str | None]:
    from reconciler.api.client import ApiClient  # pycurl: imported only when requests are sent

    options = request.options
    client = ApiClient(
        request.api.url,
        request.api.key,
        concurrency=options.concurrency,
        timeout=options.timeout,
        ca_bundle=request.api.ca_bundle,
        redactor=request.redactor,
    )
    engine = Engine(client, journal, request.scope.desired.accounts, options, progress)
    with _cancelling_signals(engine, journal, notify or (lambda _: None)):
        try:
            await engine.run(plan.changes)
        finally:
            await client.close()
        stored = request.state.backend.read_failed if targeted else None
        shard = request.scope.shard
        warning = await strip_stored_messages(
            engine,
            recorded,
            journal,
            lambda account_id: shard is None or shard_of(account_id, shard[1]) == shard[0],
            request.redactor,
            stored,
        )
    return engine, warning


def cancelling_said(signal_number: int, in_flight: int, grace: float) -> str:
    """What the first cancelling signal does, said at once."""
    name = signal.Signals(signal_number).name
    again = "Ctrl-C again" if signal_number == signal.SIGINT else f"{name} again"
    if not in_flight:
        return f"Cancelling ({name}): no request in flight; stopping now."
    return (
        f"Cancelling ({name}): waiting up to {grace:g} s for {in_flight} request(s) in flight; {again} to stop "
        "at once."
    )


def aborted_said(signal_number: int, in_flight: int) -> str:
    """What a second signal does (the process exits at once, without a report), said as it exits."""
    name = signal.Signals(signal_number).name
    lost = (
        f"; {in_flight} request(s) in flight may have been applied without being recorded"
        if in_flight
        else ""
    )
    return f"Stopped at once ({name} again): no report; what was recorded is kept{lost}. Apply again to converge."


@contextlib.contextmanager
def _cancelling_signals(engine: Engine, journal: Journal, notify: Notifier) -> Iterator[None]:
    """SIGINT and SIGTERM (what a CI cancel sends) cancel the run gracefully: nothing new is sent, requests in
    flight get a short grace, and everything recorded is kept and reported. A second signal aborts at once,
    after making every recorded success durable. Each is said at once (`notify`)."""
    loop = asyncio.get_running_loop()

    def on_signal(signal_number: int) -> None:
        in_flight = engine.progress.in_flight
        if engine.cancelled_by is None:
            log.warning("%s: cancelling", signal.Signals(signal_number).name)
            notify(cancelling_said(signal_number, in_flight, engine.options.grace))
            engine.cancel(signal_number)
            return
        with contextlib.suppress(Exception):
            journal.flush()
        with contextlib.suppress(Exception):
            notify(aborted_said(signal_number, in_flight))
        os._exit(128 + signal_number)

    installed = []
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signal_number, on_signal, signal_number)
            installed.append(signal_number)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread, or no such support
            pass
    try:
        yield
    finally:
        for signal_number in installed:
            loop.remove_signal_handler(signal_number)
