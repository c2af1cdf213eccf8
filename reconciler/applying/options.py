"""How an apply sends (`ApplyOptions`, fixed for the run) and the live counters a progress display reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.plain import Plain

if TYPE_CHECKING:
    from reconciler.applying.pace import Pace


class ApplyOptions(Plain):
    """How an apply sends: made once from the command line, never changed."""

    __slots__ = (
        "concurrency",
        "max_attempts",
        "timeout",
        "rate_limit",
        "adaptive",
        "throttle_timeout",
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
        adaptive: bool = True,
        throttle_timeout: float = 300.0,
        sync_poll_interval: float = 5.0,
        sync_timeout: float = 1800.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        seed: int | None = None,
        max_consecutive_failures: int | None = None,
        max_retry_after: float = 120.0,
        grace: float = 5.0,
    ) -> None:
        #: The most requests in flight: a ceiling the pace never passes.
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.timeout = timeout
        #: The most requests started per second (None: no ceiling): a ceiling the pace never passes.
        self.rate_limit = rate_limit
        #: The pace adapts to the API's push-back (`--pace adaptive`), or holds the ceilings (`--pace fixed`).
        self.adaptive = adaptive
        #: How long one operation may keep being refused by throttling before such answers use its attempts.
        self.throttle_timeout = throttle_timeout
        self.sync_poll_interval = sync_poll_interval
        self.sync_timeout = sync_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.seed = seed
        #: The stop policy's threshold: None for the default (the concurrency, at least 5), 0 for off.
        self.max_consecutive_failures = max_consecutive_failures
        #: The longest Retry-After honoured; a longer one fails its operation and stops the run.
        self.max_retry_after = max_retry_after
        #: After a cancelling signal, how long requests already in flight may take to answer.
        self.grace = grace


class Progress(Plain):
    """Counters the progress display reads (from another thread: plain attributes, read without a lock).

    The engine only counts; the display (reconciler/cli/progress.py) turns the counts into a rate and a time left,
    at its own pace. Counting a failure is O(1): a dict increment and one comparison.
    """

    __slots__ = (
        "total",
        "done",
        "skipped",
        "in_flight",
        "syncs_polling",
        "cancelled",
        "pace",
        "failed",
        "failures_by_type",
        "commonest_failure",
    )

    def __init__(self, total: int = 0) -> None:
        self.total = total
        #: Accounts whose operations ended (succeeded or failed), and accounts whose operations were all skipped.
        self.done = 0
        self.skipped = 0
        self.in_flight = 0
        self.syncs_polling = 0
        #: A signal cancelled the run: nothing new is sent, so no time is left to show.
        self.cancelled = False
        #: The run's pace, once the engine runs: what it holds after the API pushed back.
        self.pace: Pace | None = None
        #: Operations (PATCHes and resyncs) that failed so far, as the report counts them.
        self.failed = 0
        #: Failed operations by error type so far.
        self.failures_by_type: dict[str, int] = {}
        #: `(count, error_type)` of the commonest error type so far (the first to reach the count wins a tie), or
        #: None: one tuple, so that the display never reads a count beside another type's name.
        self.commonest_failure: tuple[int, str] | None = None

    def count_failure(self, error_type: str) -> None:
        """One more operation failed with `error_type`. Counts only grow, so the commonest type is kept exactly
        by comparing the one count that changed with the commonest's."""
        self.failed += 1
        by_type = self.failures_by_type
        count = by_type.get(error_type, 0) + 1
        by_type[error_type] = count
        commonest = self.commonest_failure
        if commonest is None or count > commonest[0]:
            self.commonest_failure = (count, error_type)
