"""The cyclic garbage collector, paused for the length of a command that builds a large, long-lived object graph.

Measured (BENCHMARKS.md): an apply of 10,000 accounts spent 270-360 ms in the collector, most of it in three
full collections that walked the loaded configuration, the plan, the results and the recorded state, and freed
5 objects. Reference counting still frees everything else at once; what a pause keeps is cyclic garbage, freed
once the collector runs again, and an apply makes almost none: 5 objects after 10,000 PATCHes, 5 after a run
with thousands of dropped connections (a request that got no answer used to leave ten: see transport.py and
tests/integration/test_startup.py).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """No automatic collection inside; the collector is as it was after. Also a decorator (`@paused()`)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
