"""Runs a plan's operations against the API: scheduling, retries, stop-early, resync polling, recording.

Every operation ends as a `Result`. Each success is appended to the journal the moment its answer arrives, so a
kill -9 loses at most the operations in flight.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reconciler import logs
from reconciler.api.answer import Answer
from reconciler.api.catalogue import OUTAGE_CATEGORIES, classify
from reconciler.model import AccountSpec, Change, Operation, Result
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


@dataclass(frozen=True, slots=True)
class ApplyOptions:
    concurrency: int = 8
    max_attempts: int = 4
    timeout: float = 30.0
    rate_limit: float | None = None
    sync_poll_interval: float = 5.0
    sync_timeout: float = 1800.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    seed: int | None = None


@dataclass(slots=True)
class Progress:
    """Counters the progress display reads."""

    total: int = 0
    done: int = 0
    in_flight: int = 0
    syncs_polling: int = 0


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
        self._outage_run = 0
        self._paused_until = 0.0
        self._next_send = 0.0
        self._random = random.Random(options.seed)
        # An operation holds a permit from sending a request until its success is durably recorded (or its
        # answer is a failure): so however the process dies, at most `concurrency` successes lack a record.
        self._unrecorded = asyncio.Semaphore(options.concurrency)

    # -- the run ---------------------------------------------------------------------------------------------
    async def run(self, changes: list[Change]) -> list[Result]:
        self.progress.total = len(changes)
        admission = asyncio.Semaphore(TASKS_AHEAD)
        tasks: set[asyncio.Task[None]] = set()

        async def admitted(change: Change) -> None:
            try:
                await self._account(change)
            except BaseException as exc:  # recording failed, say: send nothing more while the run unwinds
                self._stop(f"{type(exc).__name__}: {exc}"[:300])
                raise
            finally:
                self.progress.done += 1
                admission.release()

        for index, change in enumerate(changes):
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
        return self.results

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
            f"PATCH {spec.account_id}",
            lambda _: recording.applied(spec.account_id, change.after, spec.provider),
            starts=True,
        )
        if answer is None:
            self._skip(spec.account_id, "patch")
            return False
        if answer.error is None:
            self.results.append(
                Result(spec.account_id, "patch", "succeeded", answer.status, attempts=attempts)
            )
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
                    self.results.append(
                        Result(
                            spec.account_id,
                            "resync",
                            "succeeded",
                            answer.status,
                            attempts=attempts,
                            message=status,
                            polls=polls,
                        )
                    )
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
        what: str,
        record: Callable[[Answer], dict[str, Any] | None],
        starts: bool,
    ) -> tuple[Answer | None, int]:
        """Send until success or give up; the answer and the attempts it took.

        A success's event (`record`, None for nothing) is durable before the request's permit is given back.
        When `starts` (the call would start an operation) and the run has stopped, nothing is sent: the answer
        is None.
        """
        attempt = 0
        while True:
            attempt += 1
            async with self._unrecorded:
                await self._pace()  # after the wait for a permit, so a pause that began meanwhile holds too
                if starts and self.stop_reason:
                    return None, attempt - 1
                self.progress.in_flight += 1
                try:
                    answer = await call()
                finally:
                    self.progress.in_flight -= 1
                if answer.error is None:
                    self._outage_run = 0
                    event = record(answer)
                    if event is not None:
                        self.journal.append(event)
                        await self.journal.durable()
                    return answer, attempt
            if answer.retry_after is not None:
                self._paused_until = max(self._paused_until, time.monotonic() + answer.retry_after)
            if not answer.error.retryable or attempt >= self.options.max_attempts or self.stop_reason:
                return answer, attempt
            if answer.retry_after is not None:
                delay = answer.retry_after
            else:
                ceiling = min(self.options.backoff_cap, self.options.backoff_base * 2 ** (attempt - 1))
                delay = self._random.uniform(0, ceiling)
            log.info(
                "%s: %s (attempt %d of %d); retrying in %.2f s",
                what,
                answer.message,
                attempt,
                self.options.max_attempts,
                delay,
            )
            await asyncio.sleep(delay)

    async def _pace(self) -> None:
        """Wait for a Retry-After pause shared by all requests, and for the optional rate limit."""
        while (wait := self._paused_until - time.monotonic()) > 0:
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
                account_id,
                operation,
                "failed",
                answer.status,
                kind.type,
                kind.category,
                kind.retryable,
                attempts,
                answer.message,
                polls,
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

    def _skip(self, account_id: str, operation: Operation, message: str | None = None) -> None:
        reason = message or f"skipped: the run stopped early ({self.stop_reason})"
        self.results.append(Result(account_id, operation, "skipped", message=reason))
