"""The simulator's work queue: fresh work first, failed keys back off on their own.

Why two lanes: a key whose reconcile failed (a Cluster whose Services cannot be created, a role
PostgreSQL refuses to drop) is retried with exponential, capped backoff, and those retries only run
when no fresh work (a watch event) is waiting. So a few hundred failing Clusters never delay a new,
healthy one: its event is served before any retry. Pure (the clock is injected): unit-tested.

Several workers may share one queue: claim() hands a key to one worker only, and a key added while it
is being worked on waits until release(), so one object is never reconciled twice at once (as
client-go's workqueue guarantees CNPG's controllers).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

RETRY_BASE_S = 0.5
RETRY_MAX_S = 30.0

K = TypeVar("K", bound=Hashable)


def retry_delay(failures: int, base: float = RETRY_BASE_S, cap: float = RETRY_MAX_S) -> float:
    """Backoff before retry number `failures` (1-based): base, doubling, at most cap."""
    return float(min(cap, base * 2 ** max(0, failures - 1)))


class WorkQueue(Generic[K]):
    """Each key at most once in the fresh lane and once in the retry lane; get() prefers fresh keys.

    A fresh event for a key that is backing off is served at once (its cause may be fixed: CNPG does
    the same); its failure count is kept, so if it fails again its next retry waits longer.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 base: float = RETRY_BASE_S, cap: float = RETRY_MAX_S) -> None:
        self._clock = clock
        self._base, self._cap = base, cap
        self._fresh: deque[K] = deque()
        self._fresh_set: set[K] = set()
        self._retries: list[tuple[float, int, K]] = []
        self._retry_due: dict[K, float] = {}
        self._failures: dict[K, int] = {}
        self._sequence = 0
        self._in_flight: set[K] = set()  # claimed, not yet released
        self._deferred: set[K] = set()  # became ready while in flight: served after release()
        self._changed = threading.Condition()

    def add(self, key: K) -> None:
        """Fresh work (a watch event)."""
        with self._changed:
            if key in self._in_flight:
                self._deferred.add(key)
                return
            if key in self._fresh_set:
                return
            self._fresh_set.add(key)
            self._fresh.append(key)
            self._changed.notify()

    def failed(self, key: K) -> float:
        """The reconcile of `key` failed: schedule its retry; returns the delay chosen."""
        with self._changed:
            failures = self._failures.get(key, 0) + 1
            self._failures[key] = failures
            delay = retry_delay(failures, self._base, self._cap)
            due = self._clock() + delay
            if key not in self._retry_due or due < self._retry_due[key]:
                self._retry_due[key] = due
                self._sequence += 1
                heapq.heappush(self._retries, (due, self._sequence, key))
                self._changed.notify()
            return delay

    def succeeded(self, key: K) -> None:
        """The reconcile of `key` succeeded: forget its failures and any pending retry."""
        with self._changed:
            self._failures.pop(key, None)
            self._retry_due.pop(key, None)  # its heap entry is skipped when popped

    def failures(self, key: K) -> int:
        with self._changed:
            return self._failures.get(key, 0)

    def pop_ready(self) -> K | None:
        """The next key to work on, without waiting: fresh first, then the earliest due retry."""
        with self._changed:
            return self._pop_ready_locked()

    def get(self, timeout: float) -> K | None:
        """pop_ready(), waiting up to `timeout` seconds for something to become ready."""
        return self._wait_for(self._pop_ready_locked, timeout)

    def claim(self, timeout: float) -> K | None:
        """get() for one of several workers: the key is theirs until release(key)."""
        return self._wait_for(self._claim_locked, timeout)

    def release(self, key: K) -> None:
        """The worker is done with `key`: an add() or a due retry that came meanwhile is served now."""
        with self._changed:
            self._in_flight.discard(key)
            if key in self._deferred:
                self._deferred.discard(key)
                if key not in self._fresh_set:
                    self._fresh_set.add(key)
                    self._fresh.append(key)
                self._changed.notify()

    def _claim_locked(self) -> K | None:
        while True:
            key = self._pop_ready_locked()
            if key is None:
                return None
            if key in self._in_flight:  # a due retry of a key being worked on: after its release
                self._deferred.add(key)
                continue
            self._in_flight.add(key)
            return key

    def _wait_for(self, pop: Callable[[], K | None], timeout: float) -> K | None:
        deadline = self._clock() + timeout
        with self._changed:
            while True:
                key = pop()
                if key is not None:
                    return key
                now = self._clock()
                if now >= deadline:
                    return None
                wait = deadline - now
                if self._retries:
                    wait = min(wait, max(0.0, self._retries[0][0] - now))
                self._changed.wait(max(0.001, wait))

    def __len__(self) -> int:
        with self._changed:
            return len(self._fresh) + len(self._retry_due) + len(self._deferred - self._retry_due.keys())

    def _pop_ready_locked(self) -> K | None:
        if self._fresh:
            key = self._fresh.popleft()
            self._fresh_set.discard(key)
            return key
        now = self._clock()
        while self._retries and self._retries[0][0] <= now:
            due, _, key = heapq.heappop(self._retries)
            if self._retry_due.get(key) != due:
                continue  # superseded by an earlier retry, or the key succeeded meanwhile
            del self._retry_due[key]
            return key
        return None
