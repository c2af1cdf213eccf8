"""Sending one operation's requests: a permit from the pace, retries, throttled re-sends, and the breaker's probes.

- A **throttling answer** (catalogue.py: a 429, an overloaded service's or a gateway's 503 or 504) is the API
  refusing load, not the request: the pace slows down, and the request is sent again (after its Retry-After or a
  backoff of its own, ahead of first sends) without using an attempt, for up to `--throttle-timeout` seconds from
  the request's first throttling answer; after that such answers use attempts like any retryable failure.
- Any other **retryable failure** uses an attempt and is retried, up to `--max-attempts`, after its Retry-After
  or an exponential backoff with full jitter.
- A Retry-After over `--max-retry-after` is not waited for: the operation fails and the run stops.
- While the **breaker** is open (stopping.py), a request that would start an operation waits for its turn to
  probe; one that had queued for a permit when it opened is held back to probe too.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from reconciler.api.answer import Answer
from reconciler.applying.options import ApplyOptions, Progress
from reconciler.applying.pace import ACCEPTED, THROTTLED, TIMED_OUT, UNANSWERED, Pace
from reconciler.applying.permits import Permits
from reconciler.applying.stopping import StopPolicy, log
from reconciler.state import Journal
from reconciler.state import events as recording

if TYPE_CHECKING:
    from reconciler.api.catalogue import ErrorKind

#: One request: its answer.
Call = Callable[[], Coroutine[Any, Any, Answer]]
#: What a success records (None: nothing).
Record = Callable[[Answer], "recording.Event | None"]


class _Held:
    """A request the breaker held back after it had queued for a permit."""


_HELD = _Held()


def pace_signal(error: ErrorKind | None) -> int:
    """What an answer says to the pace."""
    if error is None:
        return ACCEPTED
    if error.throttling:
        return THROTTLED
    if error.type == "client_timeout":
        return TIMED_OUT
    return UNANSWERED if error.category == "network" else ACCEPTED


class Sender:
    """Sends requests for the engine's operations; made inside the running loop."""

    def __init__(
        self, options: ApplyOptions, stop: StopPolicy, journal: Journal, progress: Progress, pace: Pace
    ) -> None:
        self.options = options
        self.stop = stop
        self.journal = journal
        self.progress = progress
        self.permits = Permits(pace)
        self._pace = pace
        self._probe = asyncio.Lock()  # one probe at a time while the breaker is open
        self._random = random.Random(options.seed)

    async def send(
        self, call: Call, account_id: str, what: str, record: Record, starts: bool
    ) -> tuple[Answer | None, int]:
        """Send until success or give up; the last answer and the attempts it used.

        A success's event (`record`) is durable before the request's permit is given back. When `starts` (the
        call would start an operation, or sends one again that has not succeeded) and the run has stopped,
        nothing is sent: the answer is None.
        """
        attempts = 0
        throttles = 0
        throttled_since: float | None = None
        again = False
        while True:
            answer = await self._through_breaker(call, record, starts, again)
            if answer is None:
                return None, attempts
            error = answer.error
            if error is None:
                return answer, attempts + 1
            retry_after = answer.retry_after if error.retryable else None
            if self.stop.failed(account_id, error, retry_after, first=attempts == 0, message=answer.message):
                return answer, attempts + 1  # a Retry-After over the cap: the policy stopped the run
            again = True
            if error.throttling:
                now = time.monotonic()
                throttled_since = now if throttled_since is None else throttled_since
                if now - throttled_since < self.options.throttle_timeout:
                    if starts and self.stop.reason:
                        return None, attempts  # refused for the run's reason, not the account's: skipped
                    throttles += 1
                    # a backoff of its own, so that one account the API keeps refusing costs little
                    delay = retry_after if retry_after is not None else self.backoff(throttles)
                    log.debug("%s: %s (throttled); sent again in %.2f s", what, answer.message, delay)
                    await asyncio.sleep(delay)
                    continue
            attempts += 1
            if not error.retryable or attempts >= self.options.max_attempts or self.stop.reason:
                return answer, attempts
            delay = retry_after if retry_after is not None else self.backoff(attempts)
            log.info(
                "%s: %s (attempt %d of %d); retrying in %.2f s",
                what,
                answer.message,
                attempts,
                self.options.max_attempts,
                delay,
            )
            await asyncio.sleep(delay)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2^(attempt - 1))]."""
        ceiling = min(self.options.backoff_cap, self.options.backoff_base * 2 ** (attempt - 1))
        return self._random.uniform(0, ceiling)

    async def _through_breaker(self, call: Call, record: Record, starts: bool, again: bool) -> Answer | None:
        """One request; while the breaker is open, one probe at a time, backing off after each failed probe."""
        stop = self.stop
        while True:
            if starts and stop.open:
                async with self._probe:
                    if stop.open:
                        probed = await self._send(call, record, starts, again, probe=True)
                        assert not isinstance(probed, _Held)
                        failed = probed is not None and probed.error is not None
                        if failed and not stop.probe_failed(probed.error.throttling):  # type: ignore[union-attr]
                            # the next probe waits, holding the probe lock
                            tries = stop.probes_failed + stop.probes_throttled + 1
                            await asyncio.sleep(max(self.backoff(tries), stop.retry_after))
                        return probed
            answer = await self._send(call, record, starts, again)
            if answer is not _HELD:
                return answer  # type: ignore[return-value]

    async def _send(
        self, call: Call, record: Record, starts: bool, again: bool, probe: bool = False
    ) -> Answer | None | _Held:
        """Send one request under a permit: None when a stop holds it back, `_HELD` when the breaker opened
        while it waited for the permit (the caller then queues for the probe)."""
        permits = self.permits
        sent_at = await permits.acquire(again)
        try:
            if self.stop.cancelled or (starts and self.stop.reason):
                return None
            if starts and self.stop.open and not probe:
                return _HELD
            progress = self.progress
            progress.in_flight += 1
            try:
                answer = await call()
            finally:
                progress.in_flight -= 1
            self._pace.answered(sent_at, pace_signal(answer.error), permits.in_flight)
            if answer.error is None:
                self.stop.succeeded()
                event = record(answer)
                if event is not None:
                    self.journal.append(event)
                    await self.journal.durable()
            return answer
        finally:
            permits.release()
