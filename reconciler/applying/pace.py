"""The pace of a run: how fast requests start (a rate) and how many may be in flight (a window), adapting to the
API's push-back. Pure: it is told what happened and when (`clock`); `permits.py` makes requests wait for it.

The law, chosen from TCP and the AWS SDKs' adaptive retry mode (docs/apply.md says why):

- **Start.** No rate, and a window in slow start: INITIAL_WINDOW requests, one more per success (so it doubles
  every round trip) up to `--concurrency`. An API that never pushes back sees `--concurrency` requests in flight
  after a few round trips, and no rate at all; a low limit is not hit by the whole first wave at once.
- **Push-back** is a congestion event: a throttling answer (429, 503, 504), a client timeout, or latency rising
  past twice its baseline. Only one event counts per round trip: push-back about a request sent before the last
  decrease belongs to the same congestion (TCP's rule).
  - The rate becomes BETA times the rate the API *accepted* over the last round trips (what it gave, not what
    was sent: one step lands under its limit instead of many small steps down from an overshoot), remembered as
    the `peak`. With nothing accepted since the last cut there is nothing to measure: the rate falls by BETA a
    round trip along the curve, the peak kept, no lower than MIN_SHARE of it.
  - Leaving slow start the rate is not cut: the limit lies between what was accepted since the first answer and
    twice that, and at most what is in flight carries at the latency seen; the pace holds the lowest of those.
  - A throttle with the window full (of at least MIN_WINDOW_CUT) means the API's limit is on requests in flight
    (a worker pool): the window alone is cut, to BETA times what was in flight. A timeout or rising latency (the
    API queues) cut both; after a cut for latency, the latency seen counts as half the normal, so a rise not
    caused by the load costs a cut or two, not one every round trip.
- **Recovery** follows CUBIC's curve, as the AWS SDKs do: rate(t) = peak + c (t - K)^3, so the rate climbs back
  fast, flattens near the peak where the API pushed back (most of the time is spent just under the limit), then
  rises ever faster above it to find a limit that moved up, up to RISE times the peak; when the API accepts that
  much with no push-back, it is the new peak and the curve goes on from there (the rate never runs far ahead of
  what is sent). K is RECOVERY_SECONDS whatever the rate, so a limit of 50/s and one of 5,000/s recover in the
  same time. Out of slow start the window grows by one per round trip (a success adds 1/window).
- **Ceilings.** `--concurrency` and `--rate-limit` are never passed. With `adaptive` off the pace holds them and
  nothing else.

Independent runs against one API (shards) each see their share of the push-back; multiplicative decrease with a
growth that does not depend on the rate converges to equal shares without any talk between them.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from reconciler.model import PaceSummary

#: Requests in flight before the first success: a first wave small enough not to meet a low limit whole.
INITIAL_WINDOW = 8
#: What a congestion event keeps of the rate the API accepted (and of the window, when it is cut).
BETA = 0.85
#: Seconds the cubic takes to climb from BETA x peak back to the peak.
RECOVERY_SECONDS = 0.7
#: A full window smaller than this is too coarse a control (one request less is a quarter of the rate or more):
#: a throttle then cuts the rate.
MIN_WINDOW_CUT = 4
#: The curve stops at this many times the peak; when the API accepts about that much with no push-back, it becomes
#: the new peak and the curve goes on from there (so the rate never runs far ahead of what is sent).
RISE = 4.0
#: With nothing accepted since the last cut, the rate falls no lower than this share of the peak.
MIN_SHARE = 1 / 16
#: The slowest pace: a request every two seconds.
MIN_RATE = 0.5
#: Latency is rising when its smoothed value passes this many times its baseline, plus LATENCY_SLACK.
LATENCY_TOLERANCE = 2.0
#: Seconds of latency growth that never count as rising (a loaded loopback varies by milliseconds).
LATENCY_SLACK = 0.05
#: The baseline is the smallest smoothed latency of the last one to two periods of this many seconds.
BASELINE_PERIOD = 10.0
#: Weight of a new latency sample in the smoothed latency.
LATENCY_WEIGHT = 0.1
#: The accepted rate is counted over the last RECENT_TRIPS round trips, at least MIN_SPAN and at most RATE_SPAN
#: seconds: long enough to count tens of answers, short enough to see the API's limit rather than the past.
RECENT_TRIPS = 2.0
MIN_SPAN = 0.1
RATE_SPAN = 1.0
#: Timeline rows in the report, at most.
TIMELINE_ROWS = 12

#: What an answer says to the pace.
ACCEPTED = 0  # the API answered without pushing back (a success, or an error about the request)
THROTTLED = 1  # a throttling answer
TIMED_OUT = 2  # no answer in time
UNANSWERED = 3  # no HTTP answer at all: says nothing about the pace


class Pace:
    """The rate and window of one run; `limit` and `interval()` are what the permits obey."""

    def __init__(
        self,
        concurrency: int,
        rate_limit: float | None = None,
        adaptive: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_window = concurrency
        self.max_rate = rate_limit or math.inf
        self.adaptive = adaptive
        self._clock = clock
        self.started = clock()
        #: Requests that may be in flight now (the window, whole).
        self.window = float(min(INITIAL_WINDOW, concurrency) if adaptive else concurrency)
        self.limit = int(self.window)
        self._slow_start = adaptive
        #: The rate the API accepted when it last pushed back (0: it never did), the curve's start and scale.
        self.peak = 0.0
        self._epoch = 0.0
        self._scale = 0.0
        self._last_decrease = -math.inf
        self._risen_at = math.inf
        self._accepted_at: deque[float] = deque()
        self._smoothed_latency = 0.0
        self._baseline = (math.inf, math.inf)  # the smallest smoothed latency this period, and last period
        self._period_ends = self.started + BASELINE_PERIOD
        self.log = PaceLog(self.started)

    # -- what the permits obey -------------------------------------------------------------------------------
    def rate(self, now: float) -> float:
        """Requests per second that may start now (math.inf: no limit)."""
        if not self.peak:
            return self.max_rate
        elapsed = now - self._epoch - RECOVERY_SECONDS
        rate = self.peak + self._scale * elapsed * elapsed * elapsed
        return min(max(rate, MIN_RATE), RISE * self.peak, self.max_rate)

    def interval(self, now: float) -> float:
        """Seconds between two starts at the rate of `now` (0: no limit)."""
        rate = self.rate(now)
        return 0.0 if rate == math.inf else 1.0 / rate

    # -- what it is told -------------------------------------------------------------------------------------
    def answered(self, sent_at: float, signal: int, in_flight: int) -> None:
        """An answer to a request started at `sent_at` arrived now, with `in_flight` requests (it included) out;
        `signal` says what it means for the pace."""
        now = self._clock()
        self.log.answered(now, signal)
        if not self.adaptive:
            return
        if signal == ACCEPTED:
            self._accepted_at.append(now)
            while self._accepted_at[0] < now - RATE_SPAN:
                self._accepted_at.popleft()
            if self.peak and now >= self._risen_at and self._accepted_rate(now) >= BETA * RISE * self.peak:
                self._to_peak(RISE * self.peak, now)  # the API took the top of the curve: go on from there
            if self._latency_rising(now - sent_at, now):
                self._congestion(sent_at, now, in_flight, cut_window=True)
                # the latency seen is now half the normal: a rise not of our making costs a cut or two, not one a trip
                self._baseline = (self._smoothed_latency / LATENCY_TOLERANCE, self._baseline[1])
            else:
                self._grow_window()
        elif signal == THROTTLED:
            self._congestion(sent_at, now, in_flight, cut_window=False)
        elif signal == TIMED_OUT:
            self._congestion(sent_at, now, in_flight, cut_window=True)

    def _grow_window(self) -> None:
        if self.window < self.max_window:
            self.window = min(self.window + (1.0 if self._slow_start else 1.0 / self.window), self.max_window)
            self.limit = int(self.window)

    def _latency_rising(self, latency: float, now: float) -> bool:
        smoothed = self._smoothed_latency
        smoothed = latency if not smoothed else smoothed + LATENCY_WEIGHT * (latency - smoothed)
        self._smoothed_latency = smoothed
        current, previous = self._baseline
        if now >= self._period_ends:
            current, previous = math.inf, current
            self._period_ends = now + BASELINE_PERIOD
        self._baseline = (min(current, smoothed), previous)
        return smoothed > LATENCY_TOLERANCE * min(current, previous, smoothed) + LATENCY_SLACK

    def _congestion(self, sent_at: float, now: float, in_flight: int, cut_window: bool) -> None:
        if sent_at < self._last_decrease:
            return  # the same congestion as the last decrease: requests sent before it are still answering
        last_accepted = self._accepted_at[-1] if self._accepted_at else -math.inf
        window_full = in_flight >= self.limit
        rate_before = self.rate(now)
        if not self._smoothed_latency:  # nothing answered in time yet: this answer's own round trip
            self._smoothed_latency = max(now - sent_at, 1e-3)
        if self.peak and window_full and self.limit >= MIN_WINDOW_CUT and not cut_window:
            pass  # a throttle with the window full: the limit is on requests in flight (a worker pool), below
        elif self.peak and last_accepted <= self._last_decrease:
            # Nothing accepted since the last cut: no new measure of the limit. Slow down as TCP does, by BETA a
            # round trip, but keep the peak, so that the climb back after a moment of refusals is steep, and stay
            # above MIN_SHARE of it (an API that accepts nothing at all is the stop policy's to end).
            self._to_curve(max(BETA * self.rate(now), MIN_SHARE * self.peak), now)
        else:
            accepted = self._accepted_rate(now)
            if self._slow_start:
                # The window doubled every round trip up to now: the limit lies between what the API accepted
                # over the last round trips and twice that, and at most what is in flight carries at the latency
                # seen. Hold that rate (the curve's flat part), and probe above it.
                accepted = min(2 * accepted, in_flight / max(self._smoothed_latency, 1e-3))
            self._to_peak(min(accepted, self.rate(now)), now)
            if not self._slow_start:
                self._to_curve(BETA * self.peak, now)
        if self._slow_start or window_full or cut_window:
            self.window = max(1.0, min(self.window, in_flight) * BETA)
            self.limit = int(self.window)
        self._last_decrease = now
        self._slow_start = False
        rate = self.rate(now)
        self.log.decreased(now, rate if rate < rate_before else None)

    def _to_curve(self, rate: float, now: float) -> None:
        """Place `now` on the curve where it gives `rate`."""
        gap = (rate - self.peak) / self._scale
        self._epoch = now - RECOVERY_SECONDS - math.copysign(abs(gap) ** (1 / 3), gap)
        # when the curve reaches its top, RISE x peak
        self._risen_at = self._epoch + RECOVERY_SECONDS + ((RISE - 1) * self.peak / self._scale) ** (1 / 3)

    def _to_peak(self, peak: float, now: float) -> None:
        """A new peak, the curve at it (flat) from now."""
        self.peak = max(peak, MIN_RATE)
        self._scale = self.peak * (1.0 - BETA) / RECOVERY_SECONDS**3
        self._to_curve(self.peak, now)

    def _accepted_rate(self, now: float) -> float:
        """Answers per second the API accepted over the last round trips (RECENT_TRIPS smoothed latencies, within
        MIN_SPAN and RATE_SPAN seconds), in slow start since the first answer; before any, what the window
        carries at the latency seen."""
        accepted_at = self._accepted_at
        if not accepted_at:
            return self.limit / max(self._smoothed_latency, 1e-3)
        if self._slow_start:  # from the first answer: the first round trip had none to count
            return len(accepted_at) / max(now - accepted_at[0], 1e-3)
        span = min(max(RECENT_TRIPS * self._smoothed_latency, MIN_SPAN), RATE_SPAN)
        count = 0
        for moment in reversed(accepted_at):
            if moment < now - span:
                break
            count += 1
        return max(count, 1) / span

    def summary(self, waited: float) -> PaceSummary:
        """What the pace did over the run, for the report; `waited` is the time requests were held by the rate."""
        now = self._clock()
        return self.log.summary(now, self.rate(now), self.limit, waited, self.adaptive)


class PaceLog:
    """Counts per second of the run: requests answered, throttled, and the rate after each decrease."""

    __slots__ = (
        "started",
        "answers",
        "throttled",
        "slowdowns",
        "accepted",
        "first_throttle",
        "last_answer",
        "seconds",
        "_second",
        "_row",
    )

    def __init__(self, started: float) -> None:
        self.started = started
        self.answers = 0
        self.throttled = 0
        #: Congestion events: times the pace slowed down (throttles, timeouts, rising latency).
        self.slowdowns = 0
        #: Answers accepted from the first throttling answer on: the pace the API held.
        self.accepted = 0
        self.first_throttle: float | None = None
        self.last_answer = started
        #: (second of the run, answers, throttled, lowest rate set in it or inf) for every second with answers.
        self.seconds: list[list[float]] = []
        self._second = -1
        self._row: list[float] = []

    def answered(self, now: float, signal: int) -> None:
        self.answers += 1
        self.last_answer = now
        second = int(now - self.started)
        if second != self._second:
            self._second = second
            self._row = [second, 0, 0, math.inf]
            self.seconds.append(self._row)
        self._row[1] += 1
        if signal == THROTTLED:
            self.throttled += 1
            self._row[2] += 1
            if self.first_throttle is None:
                self.first_throttle = now
        elif self.first_throttle is not None and signal == ACCEPTED:
            self.accepted += 1

    def decreased(self, now: float, rate: float | None) -> None:
        """The pace slowed down; `rate` is the rate it set (None: it cut only the window)."""
        self.slowdowns += 1
        if rate is not None and self._row and int(now - self.started) == self._second:
            self._row[3] = min(self._row[3], rate)

    def summary(self, now: float, rate: float, window: int, waited: float, adaptive: bool) -> PaceSummary:
        held = None
        if (
            self.first_throttle is not None
        ):  # to the last answer: a cancelled run's grace is not the API's pace
            held = self.accepted / max(self.last_answer - self.first_throttle, MIN_SPAN)
            if not self.accepted:
                rate = math.inf  # nothing accepted after the push-back: the rate set then measured nothing
        return PaceSummary(
            adaptive=adaptive,
            requests=self.answers,
            throttled=self.throttled,
            slowdowns=self.slowdowns,
            held_rate=held,
            rate=None if rate == math.inf else rate,
            window=window,
            waited=waited,
            timeline=_timeline(self.seconds),
        )


def _timeline(seconds: list[list[float]]) -> list[dict[str, float | int | None]]:
    """At most TIMELINE_ROWS rows, each a span of whole seconds: answers per second, throttled answers, and the
    lowest rate the pace set in it (None: it set none)."""
    if not seconds:
        return []
    last = int(seconds[-1][0])
    width = max(1, math.ceil((last + 1) / TIMELINE_ROWS))
    rows: dict[int, list[float]] = {}
    for second, answers, throttled, rate in seconds:
        start = int(second) // width * width
        row = rows.setdefault(start, [0, 0, math.inf])
        row[0] += answers
        row[1] += throttled
        row[2] = min(row[2], rate)
    timeline: list[dict[str, float | int | None]] = []
    for start, (answers, throttled, rate) in sorted(rows.items()):
        span = min(width, last + 1 - start)
        timeline.append(
            {
                "from_second": start,
                "seconds": span,
                "requests_per_second": round(answers / span, 1),
                "throttled": int(throttled),
                "rate_set": None if rate == math.inf else round(rate, 1),
            }
        )
    return timeline
