"""What apply shows while it runs: a bar on a terminal, a line every few seconds elsewhere (CI logs).

Both go to stderr: stdout carries the report (JSON with `--format json`). The bar is click's own, so no other
library is needed for one bar; it is redrawn from a background thread that reads the engine's counters.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterator

import click

from reconciler.applying import Progress

#: Without a terminal (CI logs), a progress line this often.
PROGRESS_LINE_SECONDS = 5.0
#: On a terminal, the bar is redrawn this often.
BAR_REFRESH_SECONDS = 0.2


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


def _pace(progress: Progress) -> str:
    """`, paced at ~290 requests/s (the API pushed back)` once the pace has slowed down for the API."""
    pace = progress.pace
    if pace is None or not pace.peak:
        return ""
    return f", paced at ~{pace.rate(time.monotonic()):.0f} requests/s (the API pushed back)"


def _detail(progress: Progress) -> str:
    return f"{progress.in_flight} in flight, {progress.syncs_polling} syncs polling" + _pace(progress)


@contextlib.contextmanager
def progress_display(progress: Progress) -> Iterator[None]:
    """Show `progress` while the block runs."""
    if not sys.stderr.isatty():

        def line() -> None:
            click.echo(
                f"apply: {progress.done}/{progress.total} accounts done, {progress.syncs_polling} syncs polling"
                + _pace(progress),
                err=True,
            )

        with _ticking(PROGRESS_LINE_SECONDS, line):
            yield
        return
    bar: click._termui_impl.ProgressBar[Progress] = click.progressbar(
        length=max(progress.total, 1),
        label="apply",
        file=sys.stderr,
        show_pos=True,
        show_eta=False,
        item_show_func=lambda _: _detail(progress),
    )
    shown = 0

    def refresh() -> None:
        nonlocal shown
        bar.length = max(progress.total, 1)
        bar.update(progress.done - shown, current_item=progress)
        shown = progress.done

    with bar, _ticking(BAR_REFRESH_SECONDS, refresh):
        yield
