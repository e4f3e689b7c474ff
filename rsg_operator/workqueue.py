"""A keyed, coalescing work queue, as controllers use (client-go's workqueue).

- A key is queued at most once: wake-ups that arrive while it waits are one reconcile.
- A key is worked on by one worker at a time: woken while it is being reconciled, it is
  queued again when that reconcile ends, so nothing that happened meanwhile is missed.
- Keys are served first come, first served, so one busy RSG cannot starve the others.
- `add_after` schedules a key (resync, retry backoff); the earliest schedule wins, and
  an earlier `add` makes it due at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self) -> None:
        self._queued: dict[K, None] = {}  # insertion-ordered set: FIFO
        self._active: set[K] = set()
        self._again: set[K] = set()  # woken while active
        self._due: dict[K, float] = {}
        self._heap: list[tuple[float, int, K]] = []
        self._order = itertools.count()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        """Keys waiting to be worked on (not counting scheduled ones)."""
        return len(self._queued)

    @property
    def scheduled(self) -> int:
        return len(self._due)

    def add(self, key: K) -> None:
        """Queue `key` now (a no-op if it is queued already)."""
        self._due.pop(key, None)
        if key in self._active:
            self._again.add(key)
        elif key not in self._queued:
            self._queued[key] = None
            self._notify()

    def add_after(self, key: K, delay: float) -> None:
        """Queue `key` after `delay` seconds, unless it is due earlier already."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + delay
        if key in self._queued or self._due.get(key, float("inf")) <= due:
            return
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._order), key))
        self._arm()

    def forget(self, key: K) -> None:
        """Drop every pending wake-up of `key` (it is gone)."""
        self._queued.pop(key, None)
        self._due.pop(key, None)
        self._again.discard(key)

    async def get(self) -> K:
        """The next key to work on; call done(key) when finished."""
        while not self._queued:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._notify()  # pass the wake-up on to another worker
                raise
        key = next(iter(self._queued))
        del self._queued[key]
        self._active.add(key)
        return key

    def done(self, key: K) -> None:
        self._active.discard(key)
        if key in self._again:
            self._again.discard(key)
            self.add(key)

    # ------------------------------------------------------------------ timers

    def _arm(self) -> None:
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)  # stale entry: rescheduled, added or forgotten
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._heap:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_at(self._heap[0][0], self._fire)

    def _fire(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        while self._heap and self._heap[0][0] <= now:
            due, _, key = heapq.heappop(self._heap)
            if self._due.get(key) == due:
                self.add(key)
        self._arm()

    def _notify(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
