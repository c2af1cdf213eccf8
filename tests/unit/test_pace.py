"""The pace's law, on a fake clock: slow start, one decrease per round trip to what the API accepted, the cubic
recovery, ceilings never passed; the permits that obey it; and the stop policy."""

from __future__ import annotations

import asyncio
import math
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest

from reconciler.api.answer import Answer
from reconciler.api.catalogue import CATALOGUE, classify
from reconciler.applying import pace as pace_module
from reconciler.applying.pace import (
    ACCEPTED,
    BETA,
    INITIAL_WINDOW,
    MIN_SHARE,
    RECOVERY_SECONDS,
    THROTTLED,
    TIMED_OUT,
    UNANSWERED,
    Pace,
)
from reconciler.applying.permits import CATCH_UP, Permits
from reconciler.applying.sender import pace_signal
from reconciler.applying.stopping import PROBES, StopPolicy

T = TypeVar("T")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _JumpingSelector(selectors.DefaultSelector):
    """Waits for no timer: a select that would sleep moves the loop's fake clock to the timer instead."""

    def __init__(self, loop: FakeClockLoop) -> None:
        super().__init__()
        self.loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0:
            self.loop.now += timeout
            timeout = 0
        return super().select(timeout)


class FakeClockLoop(asyncio.SelectorEventLoop):
    """An event loop on a fake clock (Permits takes its time from the running loop): `asyncio.sleep` and the
    rate's timers take no real time, and the loop is never late."""

    def __init__(self) -> None:
        self.now = 1000.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


def run_on_fake_clock(scenario: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=FakeClockLoop) as runner:
        return runner.run(scenario)


def steady(pace: Pace, clock: Clock, rate: float, seconds: float, latency: float = 0.02) -> None:
    """Answers accepted at `rate` per second for `seconds`, each after `latency`."""
    for _ in range(int(rate * seconds)):
        clock.now += 1.0 / rate
        pace.answered(clock.now - latency, ACCEPTED, in_flight=max(1, int(rate * latency)))


def throttled_pace(clock: Clock, accepted_rate: float = 300.0, concurrency: int = 64) -> Pace:
    """A pace out of slow start: accepted at `accepted_rate`, then one throttling answer (held at that rate)."""
    pace = Pace(concurrency, clock=clock)
    steady(pace, clock, accepted_rate, 1.0)
    pace.answered(clock.now - 0.02, THROTTLED, in_flight=6)
    return pace


def test_slow_start_doubles_the_window_per_round_trip_up_to_the_concurrency() -> None:
    clock = Clock()
    pace = Pace(20, clock=clock)
    assert (pace.limit, pace.rate(clock.now), pace.interval(clock.now)) == (INITIAL_WINDOW, math.inf, 0.0)
    for _ in range(INITIAL_WINDOW):  # one round trip's answers
        pace.answered(clock.now, ACCEPTED, in_flight=INITIAL_WINDOW)
    assert pace.limit == 2 * INITIAL_WINDOW
    for _ in range(100):
        pace.answered(clock.now, ACCEPTED, in_flight=20)
    assert pace.limit == 20  # the ceiling
    assert pace.rate(clock.now) == math.inf  # nothing pushed back: no rate at all


def test_a_small_concurrency_starts_at_it() -> None:
    assert Pace(3, clock=Clock()).limit == 3


def test_leaving_slow_start_holds_the_rate_the_api_accepted() -> None:
    clock = Clock()
    pace = throttled_pace(clock, accepted_rate=300.0)
    # at most twice what was accepted, and at most what 6 in flight carry at 20 ms: 300/s
    assert pace.rate(clock.now) == pytest.approx(300.0, rel=0.05)
    assert pace.peak == pytest.approx(300.0, rel=0.05)


def test_a_throttle_cuts_the_rate_to_beta_times_what_was_accepted_once_per_round_trip() -> None:
    clock = Clock()
    pace = throttled_pace(clock)
    steady(pace, clock, 250.0, 0.5)  # the API now accepts 250/s
    sent = clock.now - 0.02
    pace.answered(sent, THROTTLED, in_flight=5)
    cut = pace.rate(clock.now)
    assert cut == pytest.approx(BETA * 250.0, rel=0.05)
    # requests sent before that decrease answer the same congestion: no second cut
    pace.answered(sent - 0.001, THROTTLED, in_flight=5)
    assert pace.rate(clock.now) == cut


def test_the_rate_climbs_back_to_the_peak_in_the_recovery_time_then_above_it() -> None:
    clock = Clock()
    pace = throttled_pace(clock)
    steady(pace, clock, 300.0, 0.3)
    pace.answered(clock.now - 0.02, THROTTLED, in_flight=6)
    peak, start = pace.peak, clock.now
    assert pace.rate(start) == pytest.approx(BETA * peak)
    assert BETA * peak < pace.rate(start + RECOVERY_SECONDS / 2) < peak
    assert pace.rate(start + RECOVERY_SECONDS) == pytest.approx(peak)
    assert pace.rate(start + 1.5 * RECOVERY_SECONDS) - peak < peak - pace.rate(start + RECOVERY_SECONDS / 2)
    assert pace.rate(start + 4 * RECOVERY_SECONDS) > 2 * peak  # a limit that moved up is found


def test_the_rate_limit_and_the_concurrency_are_ceilings() -> None:
    clock = Clock()
    pace = Pace(10, rate_limit=100.0, clock=clock)
    assert pace.rate(clock.now) == 100.0
    steady(pace, clock, 90.0, 1.0)
    pace.answered(clock.now - 0.02, THROTTLED, in_flight=2)
    assert pace.rate(clock.now + 60) == 100.0  # the curve would be far above by then
    for _ in range(1000):
        pace.answered(clock.now, ACCEPTED, in_flight=10)
    assert pace.limit <= 10


def test_a_full_window_is_a_limit_on_requests_in_flight_the_window_alone_is_cut() -> None:
    clock = Clock()
    pace = throttled_pace(clock)  # window 5 after the first cut
    steady(pace, clock, 300.0, 0.5)
    rate, limit = pace.rate(clock.now), pace.limit
    pace.answered(clock.now - 0.05, THROTTLED, in_flight=limit)  # a worker pool refused the request
    assert pace.rate(clock.now) == rate and pace.limit == int(limit * BETA)


def test_a_timeout_cuts_the_rate_and_the_window() -> None:
    clock = Clock()
    pace = throttled_pace(clock)
    steady(pace, clock, 280.0, 2.0)  # out of slow start, the window grown back, 5 or 6 in flight
    rate, limit = pace.rate(clock.now), pace.limit
    pace.answered(clock.now - 0.5, TIMED_OUT, in_flight=4)
    assert pace.limit == int(4 * BETA) < limit
    assert pace.rate(clock.now) == pytest.approx(BETA * 280.0, rel=0.05) and pace.rate(clock.now) < rate


def test_a_latency_rise_not_of_our_making_costs_a_few_cuts_not_one_a_round_trip() -> None:
    clock = Clock()
    pace = Pace(64, clock=clock)
    steady(pace, clock, 100.0, 5.0, latency=0.02)
    steady(pace, clock, 100.0, 20.0, latency=0.2)  # the API is slower now, whatever we send: 2,000 answers
    assert 1 <= pace.log.slowdowns <= 3
    assert pace.limit > 32  # the window grew back


def test_rising_latency_is_congestion_but_jitter_of_milliseconds_is_not() -> None:
    clock = Clock()
    pace = Pace(64, clock=clock)
    steady(pace, clock, 200.0, 1.0, latency=0.001)
    steady(pace, clock, 200.0, 1.0, latency=0.01)  # ten times the baseline, but under the slack
    assert pace.peak == 0 and pace.limit == 64
    steady(pace, clock, 200.0, 1.0, latency=0.3)  # the API queues
    assert pace.peak and pace.limit < 64


def test_fixed_pace_holds_its_ceilings_whatever_the_api_answers() -> None:
    clock = Clock()
    pace = Pace(16, rate_limit=50.0, adaptive=False, clock=clock)
    for signal in (THROTTLED, TIMED_OUT, ACCEPTED, THROTTLED):
        clock.now += 1
        pace.answered(clock.now - 0.01, signal, in_flight=16)
    assert (pace.limit, pace.rate(clock.now)) == (16, 50.0)
    summary = pace.summary(0.0)
    assert (summary.adaptive, summary.throttled, summary.requests) == (False, 2, 4)


def test_a_moment_of_refusals_slows_down_but_keeps_the_limit_in_mind() -> None:
    """The API refuses everything for a quarter of a second (a hiccup): with nothing accepted there is no measure
    of its limit. The rate falls by BETA a round trip, down to MIN_SHARE of the peak, which it keeps: the climb
    back is steep, at the peak again within the recovery time."""
    clock = Clock()
    pace = throttled_pace(clock)
    peak = pace.peak
    for _ in range(50):
        clock.now += 0.005
        pace.answered(clock.now - 0.002, THROTTLED, in_flight=1)
    assert pace.rate(clock.now) == pytest.approx(MIN_SHARE * peak)
    assert pace.peak == peak
    assert pace.rate(clock.now + RECOVERY_SECONDS * 1.9) >= peak


def test_what_an_answer_says_to_the_pace() -> None:
    assert pace_signal(None) == ACCEPTED
    assert pace_signal(CATALOGUE["errors/too_many_requests"]) == THROTTLED
    assert pace_signal(CATALOGUE["errors/service_unavailable"]) == THROTTLED
    assert pace_signal(classify(None, 429)) == THROTTLED  # a 429 whatever its type
    assert pace_signal(classify("errors/made_up", 429)) == THROTTLED
    assert pace_signal(classify(None, 503)) == THROTTLED  # a gateway's 503 or 504
    assert pace_signal(classify(None, 504)) == THROTTLED
    # about one account's session or provider, not the API's load: retried as usual
    assert pace_signal(CATALOGUE["errors/no_client_session"]) == ACCEPTED
    assert pace_signal(CATALOGUE["errors/request_timeout"]) == ACCEPTED
    assert pace_signal(CATALOGUE["errors/network_down"]) == ACCEPTED  # it stops the run instead
    assert pace_signal(CATALOGUE["client_timeout"]) == TIMED_OUT
    assert pace_signal(CATALOGUE["network_error"]) == UNANSWERED
    assert pace_signal(CATALOGUE["errors/proxy_error"]) == ACCEPTED


def test_the_summary_counts_throttles_and_the_pace_held() -> None:
    clock = Clock()
    pace = throttled_pace(clock)
    steady(pace, clock, 280.0, 2.0)
    summary = pace.summary(waited=1.5)
    assert summary.throttled == 1 and summary.requests == 300 + 560 + 1
    assert summary.held_rate == pytest.approx(280.0, rel=0.02)
    assert summary.waited == 1.5 and summary.window <= 64
    rows = summary.timeline
    assert sum(row["throttled"] for row in rows) == 1
    assert [row["from_second"] for row in rows] == [0, 1, 2]


def test_a_long_run_has_a_short_timeline() -> None:
    clock = Clock()
    pace = Pace(8, clock=clock)
    steady(pace, clock, 10.0, 100.0)
    rows = pace.summary(0.0).timeline
    assert len(rows) <= pace_module.TIMELINE_ROWS
    assert sum(row["requests_per_second"] * row["seconds"] for row in rows) == pytest.approx(1000, rel=0.01)


# -- permits -----------------------------------------------------------------------------------------------------
def test_permits_hold_the_window_and_send_again_before_first_sends() -> None:
    async def scenario() -> tuple[list[str], int]:
        pace = Pace(2, adaptive=False)
        permits = Permits(pace)
        order: list[str] = []
        most = 0

        async def request(name: str, again: bool = False) -> None:
            nonlocal most
            await permits.acquire(again)
            most = max(most, permits.in_flight)
            order.append(name)
            await asyncio.sleep(0.01)
            permits.release()

        first = [asyncio.create_task(request(f"first{i}")) for i in range(4)]
        await asyncio.sleep(0)  # the first two hold the permits, the others wait
        again = asyncio.create_task(request("again", again=True))
        await asyncio.gather(*first, again)
        return order, most

    order, most = run_on_fake_clock(scenario())
    assert most == 2
    assert order[:3] == ["first0", "first1", "again"]  # ahead of first2 and first3, which waited longer


def test_permits_space_starts_by_the_rate() -> None:
    async def scenario() -> tuple[list[float], float]:
        permits = Permits(Pace(64, rate_limit=50.0, adaptive=False))
        granted = [await permits.acquire() for _ in range(6)]
        for _ in granted:
            permits.release()
        return granted, permits.waited

    granted, waited = run_on_fake_clock(scenario())
    gaps = [later - earlier for earlier, later in zip(granted, granted[1:], strict=False)]
    # On the fake clock the loop is never late: each start comes exactly at its turn. The first start after
    # the idle one may make up CATCH_UP (as if the idle one had been late), never more.
    assert gaps == pytest.approx([1 / 50 - CATCH_UP] + [1 / 50] * 4), gaps
    assert waited == pytest.approx(5 / 50 - CATCH_UP)  # what the rate held them, in all


def test_a_waiter_cancelled_after_its_grant_gives_the_permit_back() -> None:
    async def scenario() -> int:
        permits = Permits(Pace(1, adaptive=False))
        await permits.acquire()
        waiter = asyncio.create_task(permits.acquire())
        await asyncio.sleep(0)
        permits.release()  # granted to the waiter ...
        waiter.cancel()  # ... which is cancelled before it runs
        await asyncio.gather(waiter, return_exceptions=True)
        return permits.in_flight

    assert run_on_fake_clock(scenario()) == 0


# -- the stop policy ---------------------------------------------------------------------------------------------
UNAVAILABLE = CATALOGUE["errors/service_unavailable"]
UNAUTHORISED = CATALOGUE["errors/invalid_credentials"]


def test_the_breaker_opens_on_distinct_accounts_with_no_success_between() -> None:
    policy = StopPolicy(threshold=3, max_retry_after=120)
    policy.failed("a", UNAUTHORISED, None, first=True)
    policy.failed("a", UNAUTHORISED, None, first=False)  # a retry: not counted
    policy.failed("b", UNAUTHORISED, None, first=True)
    policy.succeeded()
    policy.failed("c", UNAUTHORISED, None, first=True)
    policy.failed("d", UNAUTHORISED, None, first=True)
    assert not policy.open
    policy.failed("e", UNAUTHORISED, None, first=True)
    assert policy.open and policy.reason is None
    assert not policy.probe_failed() and not policy.probe_failed()
    assert policy.probe_failed() and PROBES == 3
    assert policy.reason == (
        "the last 3 requests (3 accounts) all failed with errors/invalid_credentials, and 3 probes after them: "
        "check POSTPRESS_API_KEY"
    )


def test_throttled_resends_count_but_one_account_never_opens_the_breaker() -> None:
    policy = StopPolicy(threshold=3, max_retry_after=120)
    for _ in range(50):
        policy.failed("a", UNAVAILABLE, None, first=False)  # re-sends of one account the API keeps refusing
    assert not policy.open
    policy.failed("b", UNAVAILABLE, 2.0, first=False)  # a second account: nothing succeeds
    assert policy.open and policy.retry_after == 2.0  # the next probe waits at least that


def test_throttled_probes_count_only_after_the_throttle_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    from reconciler.applying import stopping

    clock = Clock()
    monkeypatch.setattr(stopping.time, "monotonic", clock)
    policy = StopPolicy(threshold=2, max_retry_after=120, throttle_timeout=60)
    policy.failed("a", UNAVAILABLE, None, first=True)
    policy.failed("b", UNAVAILABLE, None, first=True)
    assert policy.open
    for _ in range(10):  # a quota spent for a while: waited for
        clock.now += 5
        assert not policy.probe_failed(throttled=True)
    assert policy.reason is None and policy.probes_throttled == 10
    clock.now += 11  # open for more than --throttle-timeout
    assert not policy.probe_failed(throttled=True) and not policy.probe_failed(throttled=True)
    assert policy.probe_failed(throttled=True) and policy.reason


def test_a_retry_after_over_the_cap_stops_the_run() -> None:
    policy = StopPolicy(threshold=0, max_retry_after=60)
    policy.failed("a", UNAVAILABLE, 61.0, first=True)
    assert policy.reason == "the API asked to wait 61 s (Retry-After), over --max-retry-after 60"


def test_types_that_are_not_about_an_account_stop_the_run() -> None:
    policy = StopPolicy(threshold=5, max_retry_after=60)
    policy.failed_finally(CATALOGUE["errors/proxy_error"])
    assert policy.reason is None
    policy.failed_finally(CATALOGUE["errors/missing_credentials"])
    assert policy.reason == (
        "errors/missing_credentials (HTTP 401) is not about one account: the API key is missing: set "
        "POSTPRESS_API_KEY"
    )


@pytest.mark.parametrize(
    ("value", "seconds"), [("3", 3.0), (" 12 ", 12.0), ("²", None), ("¹2", None), ("x", None)]
)
def test_retry_after_in_seconds_is_ascii_digits(value: str, seconds: float | None) -> None:
    from reconciler.api.answer import parse_retry_after

    assert (
        parse_retry_after(value) == seconds
    )  # "²" passed str.isdigit() and then failed float(): a traceback


# -- the sender --------------------------------------------------------------------------------------------------
def send_all(answers: list[Answer], stopped: bool = False, **options: float):
    """Run Sender.send against a call answering `answers` in turn; (the last answer, attempts, calls made)."""
    from reconciler.applying.options import ApplyOptions, Progress
    from reconciler.applying.sender import Sender

    async def scenario():
        settings = {"backoff_base": 0.001, "backoff_cap": 0.002, **options}
        stop = StopPolicy(threshold=0, max_retry_after=120)
        if stopped:
            stop.stop("a test")
        sender = Sender(ApplyOptions(**settings), stop, None, Progress(), Pace(4))  # type: ignore[arg-type]
        given = iter(answers)
        calls = 0

        async def call() -> Answer:
            nonlocal calls
            calls += 1
            return next(given)

        answer, attempts = await sender.send(call, "a", "PATCH a", lambda _: None, starts=True)
        return answer, attempts, calls

    return asyncio.run(scenario())


OK = Answer(200, {}, None)
REFUSED = Answer(429, {}, CATALOGUE["errors/too_many_requests"], "HTTP 429")
BROKEN_PROXY = Answer(502, {}, CATALOGUE["errors/proxy_error"], "HTTP 502")


def test_throttled_requests_use_no_attempt() -> None:
    answer, attempts, calls = send_all([REFUSED] * 5 + [OK], max_attempts=1)
    assert (answer, attempts, calls) == (OK, 1, 6)


def test_past_the_throttle_timeout_throttled_answers_use_attempts() -> None:
    answer, attempts, calls = send_all([REFUSED] * 10, max_attempts=3, throttle_timeout=0)
    assert (answer, attempts, calls) == (REFUSED, 3, 3)


def test_other_retryable_failures_use_attempts() -> None:
    answer, attempts, calls = send_all([BROKEN_PROXY, REFUSED, BROKEN_PROXY, OK], max_attempts=3)
    assert (answer, attempts, calls) == (OK, 3, 4)  # the throttle in between used none
    answer, attempts, calls = send_all([BROKEN_PROXY, REFUSED, BROKEN_PROXY, OK], max_attempts=2)
    assert (answer, attempts, calls) == (BROKEN_PROXY, 2, 3)


def test_a_stopped_run_sends_no_throttled_request_again() -> None:
    answer, attempts, calls = send_all([REFUSED, OK])
    assert (answer, attempts, calls) == (OK, 1, 2)
    answer, attempts, calls = send_all([REFUSED, OK], stopped=True)
    assert (answer, attempts, calls) == (None, 0, 0)  # a stopped run does not even start it


def test_a_retry_after_over_the_cap_is_not_waited_for() -> None:
    waits = Answer(429, {}, CATALOGUE["errors/too_many_requests"], "HTTP 429", retry_after=500.0)
    answer, attempts, calls = send_all([waits, OK])
    assert (answer, attempts, calls) == (waits, 1, 1)


def test_the_summary_counts_the_held_rate_to_the_last_answer_and_no_rate_when_nothing_was_accepted() -> None:
    clock = Clock()
    pace = throttled_pace(clock)
    steady(pace, clock, 200.0, 1.0)
    clock.now += 30  # a cancelled run's grace, say: nothing answered
    assert pace.summary(0.0).held_rate == pytest.approx(200.0, rel=0.02)
    refused = Pace(8, clock=clock)
    for _ in range(20):
        clock.now += 0.01
        refused.answered(clock.now - 0.005, THROTTLED, in_flight=8)
    summary = refused.summary(0.0)
    assert summary.throttled == 20 and summary.rate is None and summary.held_rate == 0
