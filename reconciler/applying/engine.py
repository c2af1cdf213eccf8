"""The engine: each change of the plan through its operations, many at once, until done, stopped or cancelled.

Every operation ends as a `Result`. Each success is appended to the journal the moment its answer arrives and is
durable before its permit is given back, so a kill -9 loses at most the operations in flight.
"""

from __future__ import annotations

import asyncio
import signal
from typing import TYPE_CHECKING

from reconciler.applying.options import ApplyOptions, Progress
from reconciler.applying.pace import Pace
from reconciler.applying.recorder import Recorder
from reconciler.applying.resync import resync
from reconciler.applying.sender import Sender
from reconciler.applying.stopping import StopPolicy, default_threshold
from reconciler.model import AccountSpec, Change, PaceSummary, Result
from reconciler.secrets import revealed
from reconciler.state import Journal
from reconciler.state import events as recording

if TYPE_CHECKING:
    from reconciler.api.client import ApiClient

#: After a cancelling signal, how often the engine looks whether a request is still in flight (none: the
#: operations left, sleeping between polls or before a retry, are cut at once rather than at the grace's end).
IDLE_CHECK_SECONDS = 0.02
#: Operations started ahead of the requests they wait to send. Enough that a free permit never waits for a task
#: to be created, few enough that 100,000 accounts do not each hold a coroutine at once.
TASKS_AHEAD = 10_000


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
        self.desired = desired
        self.options = options
        self.progress = progress or Progress()
        threshold = options.max_consecutive_failures
        self.stop = StopPolicy(
            default_threshold(options.concurrency) if threshold is None else threshold,
            options.max_retry_after,
            options.throttle_timeout,
            api_url=client.base_url,
        )
        self.pace = Pace(options.concurrency, options.rate_limit, options.adaptive)
        self.progress.pace = self.pace
        self.recorder = Recorder(journal, self.stop, self.progress)
        self.journal = journal
        #: The signal that cancelled the run (SIGINT, SIGTERM), if one did.
        self.cancelled_by: int | None = None
        self._sender: Sender | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._cutter: asyncio.Task[None] | None = None

    @property
    def results(self) -> list[Result]:
        return self.recorder.results

    @property
    def stop_reason(self) -> str | None:
        return self.stop.reason

    def pace_summary(self) -> PaceSummary:
        waited = self._sender.permits.waited if self._sender is not None else 0.0
        return self.pace.summary(waited)

    async def run(self, changes: list[Change]) -> list[Result]:
        self._sender = Sender(self.options, self.stop, self.journal, self.progress, self.pace)
        self.progress.total = len(changes)
        admission = asyncio.Semaphore(TASKS_AHEAD)
        tasks = self._tasks

        async def admitted(change: Change) -> None:
            ended = False
            try:
                ended = await self._account(change)
            except asyncio.CancelledError:  # cut at the end of a cancellation's grace: reported as skipped
                pass
            except BaseException as exc:  # recording failed, say: send nothing more while the run unwinds
                self.stop.stop(f"{type(exc).__name__}: {exc}"[:300])
                raise
            finally:
                if ended:
                    self.progress.done += 1
                else:
                    self.progress.skipped += 1
                admission.release()

        for index, change in enumerate(changes):
            if self.stop.reason and self.cancelled_by is not None:
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
        self.recorder.settle()
        self.journal.flush()
        self.recorder.skip_unreported(changes)
        return self.results

    def cancel(self, signal_number: int) -> None:
        """A cancelling signal: send nothing new; requests in flight get `grace` seconds, then are cut. The
        operations left are cut as soon as no request is in flight (a resync sleeping between polls sends
        nothing more: it does not hold the exit back)."""
        if self.cancelled_by is not None:
            return
        self.cancelled_by = signal_number
        self.stop.stop(f"cancelled by {_signal_name(signal_number)}")
        self.stop.cancelled = True
        self.progress.cancelled = True
        if self._sender is not None:
            self._sender.permits.flush()  # requests waiting for the pace learn at once that nothing is sent
        self._cutter = asyncio.get_running_loop().create_task(self._cut_when_idle())

    async def _cut_when_idle(self) -> None:
        """Cut what is left once no request holds a permit (its success is durable by then), or at the grace's
        end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.grace
        permits = self._sender.permits if self._sender is not None else None
        while permits is not None and permits.in_flight and loop.time() < deadline:
            await asyncio.sleep(IDLE_CHECK_SECONDS)
        self._cut()

    def _cut(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    async def _account(self, change: Change) -> bool:
        """The change's operations; whether one of them ended (succeeded or failed) rather than all skipped."""
        recorder = self.recorder
        if change.action == "forget":
            recorder.forgotten(change.account_id)
            return True
        spec = self.desired[change.account_id]
        patched: bool | None = True
        if change.patch:
            if self.stop.reason:
                recorder.skipped(change.account_id, "patch")
                patched = None
            else:
                patched = await self._patch(change, spec)
        ended = change.patch and patched is not None
        if change.resync and spec.resync is not None:
            if not patched:
                recorder.skipped(change.account_id, "resync", "skipped: the PATCH before it did not succeed")
            elif self.stop.reason:
                recorder.skipped(change.account_id, "resync")
            else:
                assert self._sender is not None
                ended = await resync(self.client, self._sender, recorder, spec) or ended
        return ended

    async def _patch(self, change: Change, spec: AccountSpec) -> bool | None:
        """PATCH the account: True succeeded, False failed, None skipped."""
        assert spec.settings is not None and self._sender is not None
        body = revealed(spec.settings)
        account_id = spec.account_id
        answer, attempts = await self._sender.send(
            lambda: self.client.patch_account(account_id, body),
            account_id,
            f"PATCH {account_id}",
            lambda _: recording.applied(account_id, change.after, spec.provider),
            starts=True,
        )
        if answer is None:
            self.recorder.skipped(account_id, "patch", attempts=attempts)
            return None
        if answer.error is None:
            self.recorder.succeeded(account_id, "patch", answer, attempts)
            return True
        self.recorder.failed(account_id, "patch", answer, attempts)
        return False


def _signal_name(signal_number: int) -> str:
    try:
        return signal.Signals(signal_number).name
    except ValueError:
        return f"signal {signal_number}"
