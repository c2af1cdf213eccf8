"""Permits to send: at most the pace's window in flight, starts spaced by its rate, first come first served, and
requests sent again (after a throttle or a failure) ahead of first sends so that no account starves behind
thousands of others.

A permit is held from the send until the caller releases it: the sender releases it only once a success is
durably recorded, so the window also bounds what a crash can lose. Waiting requests are futures granted by one
dispatcher, so a change of rate applies to the very next start; when the rate holds them back, a single timer
wakes the dispatcher, and the time it waited is summed (the waits never overlap).
"""

from __future__ import annotations

import asyncio
from collections import deque

from reconciler.applying.pace import Pace

#: Seconds of lateness (a busy loop) the rate may make up with starts closer together than its interval: a
#: burst of at most this much of the rate.
CATCH_UP = 0.005


class Permits:
    """Made inside the running loop."""

    def __init__(self, pace: Pace) -> None:
        self.pace = pace
        self.in_flight = 0
        #: Seconds in all that waiting requests were held back by the rate.
        self.waited = 0.0
        self._loop = asyncio.get_running_loop()
        self._first: deque[asyncio.Future[float]] = deque()
        self._again: deque[asyncio.Future[float]] = deque()
        self._next_start = 0.0
        self._timer: asyncio.TimerHandle | None = None

    async def acquire(self, again: bool = False) -> float:
        """Wait for a permit; the time it was granted. `again`: a request sent again goes ahead of first sends."""
        now = self._loop.time()
        if (
            not self._first
            and not self._again
            and self.in_flight < self.pace.limit
            and now >= self._next_start
        ):
            self._grant(now)
            return now
        granted: asyncio.Future[float] = self._loop.create_future()
        (self._again if again else self._first).append(granted)
        self._dispatch()
        try:
            return await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release()  # granted as the waiter was cancelled: the permit goes to the next one
            raise

    def flush(self) -> None:
        """Grant every waiting request at once, window and rate aside: the run is cancelled, and each will find
        that out and give its permit back without sending."""
        now = self._loop.time()
        for queue in (self._again, self._first):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    self.in_flight += 1
                    waiter.set_result(now)

    def release(self) -> None:
        self.in_flight -= 1
        if self._first or self._again:
            self._dispatch()

    def _grant(self, now: float) -> None:
        self.in_flight += 1
        interval = self.pace.interval(now)
        if interval:
            self._next_start = max(self._next_start, now - CATCH_UP) + interval

    def _dispatch(self) -> None:
        now = self._loop.time()
        while self.in_flight < self.pace.limit:
            waiter = self._next_waiter()
            if waiter is None:
                return
            if now < self._next_start:
                if self._timer is None:
                    self.waited += self._next_start - now
                    self._timer = self._loop.call_at(self._next_start, self._woken)
                return
            (self._again if self._again else self._first).popleft()
            self._grant(now)
            waiter.set_result(now)

    def _next_waiter(self) -> asyncio.Future[float] | None:
        """The next waiter still waiting (cancelled ones are dropped), left in its queue."""
        for queue in (self._again, self._first):
            while queue and queue[0].done():
                queue.popleft()
            if queue:
                return queue[0]
        return None

    def _woken(self) -> None:
        self._timer = None
        self._dispatch()
