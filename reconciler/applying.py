"""Runs a plan's operations against the API: scheduling, retries, stop-early, resync polling, recording.

Every operation ends as a `Result`. Each success is appended to the journal the moment its answer arrives, so a
kill -9 loses at most the operations in flight.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from reconciler import logs
from reconciler.api.answer import Answer
from reconciler.api.catalogue import OUTAGE_CATEGORIES, classify
from reconciler.breaker import Breaker, default_threshold
from reconciler.model import AccountSpec, Change, Operation, Result
from reconciler.plain import Plain
from reconciler.secrets import revealed
from reconciler.state import Journal
from reconciler.state import events as recording

if TYPE_CHECKING:
    from reconciler.api.client import ApiClient

log = logs.get("engine")

TERMINAL_DONE = ("SYNC_DONE", "CHUNK_DONE")
TERMINAL_ERROR = "SYNC_ERROR"
RUNNING = ("SYNC_STARTED", "SYNC_RUNNING")
#: Consecutive final unavailable/network failures after which the run stops early.
OUTAGE_RUN = 5
#: Operations started ahead of the requests they wait to send. Enough that a free request slot never waits
#: for a task to be created, few enough that 100,000 accounts do not each hold a coroutine at once.
TASKS_AHEAD = 10_000


class ApplyOptions(Plain):
    """How an apply sends: made once from the command line, never changed."""

    __slots__ = (
        "concurrency",
        "max_attempts",
        "timeout",
        "rate_limit",
        "sync_poll_interval",
        "sync_timeout",
        "backoff_base",
        "backoff_cap",
        "seed",
        "max_consecutive_failures",
        "max_retry_after",
        "grace",
    )

    def __init__(
        self,
        *,
        concurrency: int = 8,
        max_attempts: int = 4,
        timeout: float = 30.0,
        rate_limit: float | None = None,
        sync_poll_interval: float = 5.0,
        sync_timeout: float = 1800.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        seed: int | None = None,
        max_consecutive_failures: int | None = None,
        max_retry_after: float = 120.0,
        grace: float = 5.0,
    ) -> None:
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.rate_limit = rate_limit
        self.sync_poll_interval = sync_poll_interval
        self.sync_timeout = sync_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.seed = seed
        #: The breaker's threshold: None for the default (the concurrency, at least 5), 0 for off.
        self.max_consecutive_failures = max_consecutive_failures
        #: The longest Retry-After honoured; a longer one fails its operation and stops the run.
        self.max_retry_after = max_retry_after
        #: After a cancelling signal, how long requests already in flight may take to answer.
        self.grace = grace


class Progress(Plain):
    """Counters the progress display reads."""

    __slots__ = ("total", "done", "in_flight", "syncs_polling", "paused_until")

    def __init__(self, total: int = 0) -> None:
        self.total = total
        self.done = 0
        self.in_flight = 0
        self.syncs_polling = 0
        #: time.monotonic() until which a Retry-After pause holds every request (0: none).
        self.paused_until = 0.0


class _Held:
    """A request the breaker held back after it had queued for a permit."""


class Engine:
    def __init__(
        self,
        client: ApiClient,
        journal: Journal,
        desired: dict[str, AccountSpec],
        options: ApplyOptions,
        progress: Progress | None = None,
    ) -> None:
        self.client = client
        self.journal = journal
        self.desired = desired
        self.options = options
        self.progress = progress or Progress()
        self.results: list[Result] = []
        self.stop_reason: str | None = None
        #: The signal that cancelled the run (SIGINT, SIGTERM), if one did.
        self.cancelled_by: int | None = None
        self._outage_run = 0
        threshold = options.max_consecutive_failures
        self._breaker = Breaker(default_threshold(options.concurrency) if threshold is None else threshold)
        self._probe = asyncio.Lock()  # one probe at a time while the breaker is open
        self._tasks: set[asyncio.Task[None]] = set()
        self._next_send = 0.0
        self._random = random.Random(options.seed)
        # An operation holds a permit from sending a request until its success is durably recorded (or its
        # answer is a failure): so however the process dies, at most `concurrency` successes lack a record.
        self._unrecorded = asyncio.Semaphore(options.concurrency)

    # -- the run ---------------------------------------------------------------------------------------------
    async def run(self, changes: list[Change]) -> list[Result]:
        self.progress.total = len(changes)
        admission = asyncio.Semaphore(TASKS_AHEAD)
        tasks = self._tasks

        async def admitted(change: Change) -> None:
            try:
                await self._account(change)
            except asyncio.CancelledError:  # cut at the end of a cancellation's grace: reported as skipped
                pass
            except BaseException as exc:  # recording failed, say: send nothing more while the run unwinds
                self._stop(f"{type(exc).__name__}: {exc}"[:300])
                raise
            finally:
                self.progress.done += 1
                admission.release()

        for index, change in enumerate(changes):
            if self.stop_reason and self.cancelled_by is not None:
                break  # cancelled: the operations not started are reported below, not started
            await admission.acquire()
            task = asyncio.create_task(admitted(change))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if index % self.options.concurrency == 0:
                # acquire() does not yield while permits remain: let the first requests go out now rather
                # than after thousands of tasks are created (measured: 0.3 s at 10,000 accounts).
                await asyncio.sleep(0)
        while tasks:
            await asyncio.gather(*list(tasks))
        self.journal.flush()
        self._skip_unreported(changes)
        return self.results

    def cancel(self, signal_number: int) -> None:
        """A cancelling signal: send nothing new; requests in flight get `grace` seconds, then are cut."""
        if self.cancelled_by is not None:
            return
        self.cancelled_by = signal_number
        self._stop(f"cancelled by {_signal_name(signal_number)}")
        asyncio.get_running_loop().call_later(self.options.grace, self._cut)

    def _cut(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def _skip_unreported(self, changes: list[Change]) -> None:
        """Every operation of the plan ends with a result: those a stop kept from starting are skipped."""
        reported = {(result.account_id, result.operation) for result in self.results}
        for change in changes:
            if change.patch and (change.account_id, "patch") not in reported:
                self._skip(change.account_id, "patch")
            if change.resync and (change.account_id, "resync") not in reported:
                self._skip(change.account_id, "resync")

    async def _account(self, change: Change) -> None:
        if change.action == "forget":
            self.journal.append(recording.forgotten(change.account_id))
            self.results.append(Result(change.account_id, "forget", "succeeded"))
            return
        spec = self.desired[change.account_id]
        patched = True
        if change.patch:
            if self.stop_reason:
                self._skip(change.account_id, "patch")
                patched = False
            else:
                patched = await self._patch(change, spec)
        if change.resync and spec.resync is not None:
            if not patched:
                self._skip(change.account_id, "resync", "skipped: the PATCH before it did not succeed")
            elif self.stop_reason:
                self._skip(change.account_id, "resync")
            else:
                await self._resync(spec)

    # -- operations ------------------------------------------------------------------------------------------
    async def _patch(self, change: Change, spec: AccountSpec) -> bool:
        assert spec.settings is not None
        body = revealed(spec.settings)
        answer, attempts = await self._with_retries(
            lambda: self.client.patch_account(spec.account_id, body),
            spec.account_id,
            f"PATCH {spec.account_id}",
            lambda _: recording.applied(spec.account_id, change.after, spec.provider),
            starts=True,
        )
        if answer is None:
            self._skip(spec.account_id, "patch")
            return False
        if answer.error is None:
            self._succeed(spec.account_id, "patch", answer, attempts)
            return True
        self._fail(spec.account_id, "patch", answer, attempts)
        return False

    async def _resync(self, spec: AccountSpec) -> None:
        assert spec.resync is not None
        params = spec.resync.query()
        done = recording.resynced(spec.account_id, spec.resync.generation)
        deadline = time.monotonic() + self.options.sync_timeout
        sent = 0  # every request, retries included
        polls = 0  # status requests after the one that started the sync, each counted once
        self.progress.syncs_polling += 1
        started = False
        try:
            while True:
                answer, used = await self._with_retries(
                    lambda: self.client.sync_account(spec.account_id, params),
                    spec.account_id,
                    f"sync {spec.account_id}",
                    lambda answer: done if answer.body["status"] in TERMINAL_DONE else None,
                    # A stop holds back a first call only: polls of a sync already started are always sent,
                    # or we would lose track of a sync running upstream.
                    starts=not started,
                )
                sent += used
                polls += 1 if started and used else 0
                attempts = sent - polls
                if answer is None:
                    self._skip(spec.account_id, "resync")
                    return
                if answer.error is not None:
                    self._fail(spec.account_id, "resync", answer, attempts, polls)
                    return
                started = True
                status = answer.body["status"]
                if status in TERMINAL_DONE:  # recorded by _with_retries
                    self._succeed(spec.account_id, "resync", answer, attempts, message=status, polls=polls)
                    return
                if status == TERMINAL_ERROR:
                    self._fail(
                        spec.account_id,
                        "resync",
                        Answer(
                            answer.status,
                            answer.body,
                            classify("sync_error", None),
                            "the sync ended in SYNC_ERROR",
                        ),
                        attempts,
                        polls,
                    )
                    return
                if status not in RUNNING:
                    self._fail(
                        spec.account_id,
                        "resync",
                        Answer(
                            answer.status,
                            answer.body,
                            classify("unexpected_response", None),
                            f"unknown sync status {status[:40]!r}",
                        ),
                        attempts,
                        polls,
                    )
                    return
                if time.monotonic() + self.options.sync_poll_interval > deadline:
                    self._fail(
                        spec.account_id,
                        "resync",
                        Answer(
                            None,
                            None,
                            classify("sync_timeout", None),
                            f"still {status} after --sync-timeout {self.options.sync_timeout:g}s",
                        ),
                        attempts,
                        polls,
                    )
                    return
                await asyncio.sleep(self.options.sync_poll_interval)  # holds no concurrency slot
        finally:
            self.progress.syncs_polling -= 1

    # -- retries, pacing and stopping ------------------------------------------------------------------------
    async def _with_retries(
        self,
        call: Callable[[], Coroutine[Any, Any, Answer]],
        account_id: str,
        what: str,
        record: Callable[[Answer], recording.Event | None],
        starts: bool,
    ) -> tuple[Answer | None, int]:
        """Send until success or give up; the answer and the attempts it took.

        A success's event (`record`, None for nothing) is durable before the request's permit is given back.
        When `starts` (the call would start an operation, or retries one that has not succeeded) and the run
        has stopped, nothing is sent: the answer is None. Such calls also wait while the breaker is open,
        except the one probe at a time that tests the API.
        """
        attempt = 0
        while True:
            attempt += 1
            answer = await self._attempt(call, record, starts)
            if answer is None:
                return None, attempt - 1
            if answer.error is None:
                return answer, attempt
            self._breaker.failure(account_id, answer.error, answer.retry_after, first=attempt == 1)
            retry_after = answer.retry_after if answer.error.retryable else None
            if retry_after is not None and retry_after > self.options.max_retry_after:
                self._stop(
                    f"the API asked to wait {retry_after:.0f} s (Retry-After), over --max-retry-after "
                    f"{self.options.max_retry_after:g}"
                )
                return answer, attempt
            if retry_after is not None:
                self.progress.paused_until = max(self.progress.paused_until, time.monotonic() + retry_after)
            if not answer.error.retryable or attempt >= self.options.max_attempts or self.stop_reason:
                return answer, attempt
            delay = retry_after if retry_after is not None else self._backoff(attempt)
            log.info(
                "%s: %s (attempt %d of %d); retrying in %.2f s",
                what,
                answer.message,
                attempt,
                self.options.max_attempts,
                delay,
            )
            await asyncio.sleep(delay)

    async def _attempt(
        self,
        call: Callable[[], Coroutine[Any, Any, Answer]],
        record: Callable[[Answer], recording.Event | None],
        starts: bool,
    ) -> Answer | None:
        """One request, through the breaker when it is open (one probe at a time, backing off after each
        failed probe, and stopping the run when the probes are exhausted)."""
        while True:
            if starts and self._breaker.open:
                async with self._probe:
                    if self._breaker.open:
                        probed = await self._send(call, record, starts, probe=True)
                        assert not isinstance(probed, _Held)
                        if probed is not None and probed.error is not None:
                            if self._breaker.probe_failed():
                                self._stop(self._breaker.reason())
                            else:  # the next probe waits, holding the probe lock
                                await asyncio.sleep(self._backoff(self._breaker.probes_failed + 1))
                        return probed
            answer = await self._send(call, record, starts)
            if not isinstance(answer, _Held):
                return answer

    async def _send(
        self,
        call: Callable[[], Coroutine[Any, Any, Answer]],
        record: Callable[[Answer], recording.Event | None],
        starts: bool,
        probe: bool = False,
    ) -> Answer | None | _Held:
        """Send one request under a permit: None when a stop holds it back, `_Held` when the breaker opened
        while it waited for the permit (the caller then queues for the probe)."""
        async with self._unrecorded:
            if self.progress.paused_until or self.options.rate_limit:
                await self._pace()  # after the wait for a permit, so a pause that began meanwhile holds too
            if starts and self.stop_reason:
                return None
            if starts and self._breaker.open and not probe:
                return _Held()
            self.progress.in_flight += 1
            try:
                answer = await call()
            finally:
                self.progress.in_flight -= 1
            if answer.error is None:
                self._outage_run = 0
                self._breaker.success()
                event = record(answer)
                if event is not None:
                    self.journal.append(event)
                    await self.journal.durable()
            return answer

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(attempt - 1))]."""
        ceiling = min(self.options.backoff_cap, self.options.backoff_base * 2 ** (attempt - 1))
        return self._random.uniform(0, ceiling)

    async def _pace(self) -> None:
        """Wait for a Retry-After pause shared by all requests, and for the optional rate limit."""
        while (wait := self.progress.paused_until - time.monotonic()) > 0:
            await asyncio.sleep(wait)
        if self.options.rate_limit:
            now = time.monotonic()
            slot = max(now, self._next_send)
            self._next_send = slot + 1.0 / self.options.rate_limit
            if slot > now:
                await asyncio.sleep(slot - now)

    def _stop(self, reason: str) -> None:
        if not self.stop_reason:
            log.warning("stopping early: %s", reason)
            self.stop_reason = reason

    def _fail(
        self, account_id: str, operation: Operation, answer: Answer, attempts: int, polls: int = 0
    ) -> None:
        kind = answer.error
        assert kind is not None
        self.results.append(
            Result(
                account_id=account_id,
                operation=operation,
                outcome="failed",
                http_status=answer.status,
                error_type=kind.type,
                category=kind.category,
                retryable=kind.retryable,
                attempts=attempts,
                message=answer.message,
                polls=polls,
            )
        )
        self.journal.append(
            recording.failed(
                account_id,
                {
                    "operation": operation,
                    "error_type": kind.type,
                    "http_status": answer.status,
                    "message": answer.message,
                },
            )
        )
        if kind.stops_run:
            self._stop(f"{kind.type} is not about one account")
        if kind.category in OUTAGE_CATEGORIES:
            self._outage_run += 1
            if self._outage_run >= OUTAGE_RUN:
                self._stop(f"{self._outage_run} consecutive {kind.category} failures")
        else:
            self._outage_run = 0

    def _succeed(
        self,
        account_id: str,
        operation: Operation,
        answer: Answer,
        attempts: int,
        message: str | None = None,
        polls: int = 0,
    ) -> None:
        self.results.append(
            Result(
                account_id=account_id,
                operation=operation,
                outcome="succeeded",
                http_status=answer.status,
                attempts=attempts,
                message=message,
                polls=polls,
            )
        )

    def _skip(self, account_id: str, operation: Operation, message: str | None = None) -> None:
        reason = message or f"skipped: the run stopped early ({self.stop_reason})"
        self.results.append(
            Result(account_id=account_id, operation=operation, outcome="skipped", message=reason)
        )


def _signal_name(signal_number: int) -> str:
    import signal

    try:
        return signal.Signals(signal_number).name
    except ValueError:
        return f"signal {signal_number}"
