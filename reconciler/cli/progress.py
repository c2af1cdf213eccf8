"""What apply shows while it runs: a bar on a terminal, a line every few seconds elsewhere (CI logs).

Both go to stderr: stdout carries the report (JSON with `--format json`). The bar is click's own, so no other
library is needed for one bar; it is redrawn from a background thread that reads the engine's counters. Both show
the same things, most useful first: the rate, the time left, the failures so far (with the commonest error type),
then what is in flight, the resyncs polling and the pace:

    apply: 5586/100000 accounts done, 41 accounts/s, ~38m22s left, 12 failed (errors/proxy_error 10),
    63 syncs polling (not in the time left), paced at ~290 requests/s (the API pushed back)

(one line). The engine only counts (`Progress`); the rate and the time left are worked out here, on the display's
thread, when a line or the bar is drawn: the hot path pays nothing for them.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

import click

from reconciler.applying import Progress
from reconciler.escape import terminal

#: Without a terminal (CI logs), a progress line this often.
PROGRESS_LINE_SECONDS = 5.0
#: On a terminal, the bar is redrawn this often.
BAR_REFRESH_SECONDS = 0.2
#: The rate is the accounts that got through over the last this many seconds (see `RecentRate`).
RATE_WINDOW_SECONDS = 30.0
#: On a terminal, the bar keeps at least this many columns; the details after it are cut to fit the rest.
MIN_BAR_WIDTH = 10
#: What the rate and the time left show while they are not known.
UNKNOWN = "--"


class RecentRate:
    """Accounts per second over the last `window` seconds: a windowed rate, sampled when the display draws.

    A window rather than the average since the start, because the average remembers everything: an hour into a
    run, a throttle that halves the pace would take another hour to show, and the time left would be wrong all
    that while. A window forgets the past completely after `window` seconds, so the rate tracks a throttle (or
    its end) within half a minute. A window rather than an exponential average, because it is a plain count
    anyone can check (the accounts done in the last 30 s, over 30 s), and it does not depend on how often it is
    sampled (every 0.2 s for a bar, every 5 s for a CI line), where an average updated per sample would weigh
    the past differently on a terminal and in CI. 30 seconds is long enough to smooth what moves on the scale
    of a second (the pace's recovery after a push-back takes 0.7 s; forgets finish at once, in a burst) and
    short enough to follow a throttle that lasts minutes.

    Until the window is full, the rate is over the time since the first sample (the start of the run). It is
    None (not known) before the count has moved at all, or before any time has passed. `clock` is injectable
    for tests; the samples are kept for one window (a few hundred at most at the bar's refresh).
    """

    def __init__(
        self, window: float = RATE_WINDOW_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window = window
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, count: int) -> float | None:
        """Note that `count` accounts got through by now; return the recent rate (None: not known yet)."""
        return self.sample_at(self._clock(), count)

    def sample_at(self, now: float, count: int) -> float | None:
        samples = self._samples
        samples.append((now, count))
        horizon = now - self.window
        # Keep the newest sample at or before the horizon: the window then spans `window` seconds exactly, as
        # nearly as the samples allow, rather than up to one sampling interval less.
        while len(samples) > 2 and samples[1][0] <= horizon:
            samples.popleft()
        since, base = samples[0]
        if count <= 0 or now <= since:
            return None
        return (count - base) / (now - since)


def time_left(remaining: int, rate: float | None) -> float | None:
    """Seconds until `remaining` accounts get through at `rate` (None: not known, as when nothing moved
    recently)."""
    if remaining <= 0:
        return 0.0
    if not rate or rate <= 0:
        return None
    return remaining / rate


def format_rate(rate: float | None) -> str:
    """`41 accounts/s`, `2.5 accounts/s`, `-- accounts/s`."""
    if rate is None:
        return f"{UNKNOWN} accounts/s"
    return f"{rate:.1f} accounts/s" if rate < 10 else f"{rate:.0f} accounts/s"


def format_time_left(seconds: float | None) -> str:
    """`~45s left`, `~38m25s left`, `~2h05m left`, `-- left`; a part of a second counts as a second."""
    if seconds is None:
        return f"{UNKNOWN} left"
    whole = math.ceil(seconds)
    if whole < 60:
        return f"~{whole}s left"
    if whole < 3600:
        return f"~{whole // 60}m{whole % 60:02d}s left"
    return f"~{whole // 3600}h{whole % 3600 // 60:02d}m left"


def format_failures(progress: Progress) -> str:
    """`0 failed`, `12 failed (errors/proxy_error 10)`: the count and the commonest error type so far. An error
    type comes from the API: it is escaped for the terminal (it was redacted of secrets when it was read)."""
    failed = progress.failed
    commonest = progress.commonest_failure
    if not failed or commonest is None:
        return f"{failed} failed"
    count, error_type = commonest
    return f"{failed} failed ({terminal(error_type)} {count})"


def _pace(progress: Progress, now: float) -> str:
    """`paced at ~290 requests/s (the API pushed back)` once the pace has slowed down for the API, else ''."""
    pace = progress.pace
    if pace is None or not pace.peak:
        return ""
    return f"paced at ~{pace.rate(now):.0f} requests/s (the API pushed back)"


class ProgressView:
    """What the bar and the line say about `progress`, on `clock` (injectable for tests).

    Each call of `line` or `detail` samples the clock and the counters once. The rate counts the accounts that
    got through their requests: those done, and those whose resync is polling (their own requests are sent; a
    sync ends when the API finishes it, not at apply's pace). The time left is the other accounts over that
    rate: it is for the requests, and when syncs are polling the line says they are not in it.
    """

    def __init__(
        self,
        progress: Progress,
        clock: Callable[[], float] = time.monotonic,
        window: float = RATE_WINDOW_SECONDS,
    ) -> None:
        self.progress = progress
        self._clock = clock
        self._rate = RecentRate(window)
        self.sample()  # the start: the first rate is over the time since now

    def parts(self, in_flight: bool = True) -> list[str]:
        """The details, most useful first, sampled now (without the count done, which the bar shows itself)."""
        progress = self.progress
        now = self._clock()
        polling = progress.syncs_polling
        through = progress.done + polling
        rate = self._rate.sample_at(now, through)
        parts = [
            format_rate(rate),
            "cancelling"
            if progress.cancelled
            else format_time_left(time_left(progress.total - through - progress.skipped, rate)),
            format_failures(progress),
        ]
        if progress.skipped:
            parts.append(f"{progress.skipped} skipped")
        if in_flight:
            parts.append(f"{progress.in_flight} in flight")
        parts.append(f"{polling} syncs polling" + (" (not in the time left)" if polling else ""))
        pace = _pace(progress, now)
        if pace:
            parts.append(pace)
        return parts

    def sample(self) -> None:
        """Sample the counters now (the display's start)."""
        progress = self.progress
        self._rate.sample_at(self._clock(), progress.done + progress.syncs_polling)

    def line(self) -> str:
        """The line printed without a terminal (the requests in flight left out: a count every 5 s says little).
        `done` counts the accounts whose operations ended (succeeded or failed); those skipped (a stop, a
        cancellation) are counted apart, after the failures."""
        progress = self.progress
        details = ", ".join(self.parts(in_flight=False))
        return f"apply: {progress.done}/{progress.total} accounts done, {details}"

    def detail(self, width: int | None = None) -> str:
        """What the bar shows after its count, in at most `width` characters: whole details are left out from
        the end (the least useful first), and the first one alone is cut short."""
        parts = self.parts()
        kept = parts[0]
        if width is None:
            return ", ".join(parts)
        for part in parts[1:]:
            if len(kept) + 2 + len(part) > width:
                break
            kept += ", " + part
        if len(kept) <= width:
            return kept
        return kept[: width - 1] + "…" if width > 1 else kept[:width]


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


def _detail_room(label: str, total: int) -> int:
    """Columns left for the details on a terminal, after the label, the count and a bar of MIN_BAR_WIDTH: click
    draws `LABEL  [BAR]  DONE/TOTAL  DETAILS` and gives the bar what the rest leaves of the terminal's width, so
    that the line never wraps (a wrapped line would be redrawn from its last row only). One column is spare."""
    count = 2 * len(str(total)) + 1
    clutter = len(label) + 2 + 2 + MIN_BAR_WIDTH + 2 + count + 2 + 1
    return max(shutil.get_terminal_size().columns - clutter, 0)


@contextlib.contextmanager
def progress_display(progress: Progress) -> Iterator[None]:
    """Show `progress` while the block runs."""
    view = ProgressView(progress)
    if not sys.stderr.isatty():
        with _ticking(PROGRESS_LINE_SECONDS, lambda: click.echo(view.line(), err=True)):
            yield
        return
    bar: click._termui_impl.ProgressBar[str] = click.progressbar(
        length=max(progress.total, 1),
        label="apply",
        file=sys.stderr,
        show_pos=True,
        width=0,  # the whole terminal: the bar takes what the details leave (at least MIN_BAR_WIDTH)
        show_eta=False,  # click's is the average since the start: ours is in the details, on the recent rate
        item_show_func=lambda detail: detail,
        update_min_steps=0,  # redraw at every refresh, also when no account was done since the last one
    )
    shown = 0

    def refresh() -> None:
        nonlocal shown
        bar.length = max(progress.total, 1)
        detail = view.detail(_detail_room(bar.label, progress.total))  # one sample a refresh
        ended = progress.done + progress.skipped  # the bar: accounts with nothing left to do
        bar.update(ended - shown, current_item=detail)
        shown = ended

    with bar, _ticking(BAR_REFRESH_SECONDS, refresh):
        yield
