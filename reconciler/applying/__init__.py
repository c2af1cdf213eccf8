"""Applying a plan: the engine and its units, each small enough to read in one sitting.

- `engine.py`: each change through its operations, many at once; cancellation.
- `sender.py`: one operation's requests: permits, retries, throttled re-sends, the breaker's probes.
- `pace.py`: the rate and window, adapting to the API's push-back; `permits.py` makes requests wait for them.
- `resync.py`: start a sync and poll it to its end.
- `recorder.py`: one result per operation, and the journal events of failures, skips and forgets.
- `stopping.py`: the stop policy, everything that ends a run early.
- `stripping.py`: failure messages an older version recorded, stripped of the run's secrets at its end.
"""

from reconciler.applying.engine import Engine
from reconciler.applying.options import ApplyOptions, Progress

__all__ = ["ApplyOptions", "Engine", "Progress"]
