"""In-process wake-ups: a handler that waits for CNPG to act sleeps here until an observer sees a change.

The observers (watch events on CNPG objects) call `notify(key)`; nothing polls the API server.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Hashable


class Wakeups:
    """A waiter first `arm`s its key, then reads and writes, then `wait`s: a notice that arrives in
    between (CNPG acted while the status was being written) is kept, and the wait returns at once."""

    def __init__(self) -> None:
        self._waiters: defaultdict[Hashable, set[asyncio.Event]] = defaultdict(set)
        self._noticed: dict[Hashable, bool] = {}  # armed keys → notified since armed

    def arm(self, key: Hashable) -> None:
        self._noticed[key] = False

    def disarm(self, key: Hashable) -> None:
        self._noticed.pop(key, None)

    def notify(self, key: Hashable) -> None:
        if key in self._noticed:
            self._noticed[key] = True
        for event in self._waiters.get(key, ()):
            event.set()

    async def wait(self, key: Hashable, within: float) -> bool:
        """True when notified within `within` seconds, or since `arm(key)`; disarms the key."""
        if self._noticed.pop(key, False):
            return True
        event = asyncio.Event()
        self._waiters[key].add(event)
        try:
            async with asyncio.timeout(within):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters[key].discard(event)
            if not self._waiters[key]:
                del self._waiters[key]


class KeyedLocks:
    """One asyncio.Lock per key (an intent, a cluster), dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._users: defaultdict[Hashable, int] = defaultdict(int)

    def __call__(self, key: Hashable) -> _Held:
        return _Held(self, key)


class _Held:
    def __init__(self, owner: KeyedLocks, key: Hashable) -> None:
        self._owner, self._key = owner, key

    async def __aenter__(self) -> None:
        owner = self._owner
        lock = owner._locks.setdefault(self._key, asyncio.Lock())
        owner._users[self._key] += 1
        try:
            await lock.acquire()
        except BaseException:
            self._forget()
            raise

    async def __aexit__(self, *_: object) -> None:
        self._owner._locks[self._key].release()
        self._forget()

    def _forget(self) -> None:
        owner = self._owner
        owner._users[self._key] -= 1
        if owner._users[self._key] == 0:
            del owner._users[self._key]
            del owner._locks[self._key]
