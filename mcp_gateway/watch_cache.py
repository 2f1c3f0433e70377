"""Optional watch-backed read mirrors (`--watch-cache`): reads without an API round trip.

One mirror per (resource, namespace), started on the first read there: a LIST, then a WATCH from its
resourceVersion that keeps the mirror current (re-listing after 410 Gone or any error). The gateway's
own writes are applied to the mirror at once, so a tool reads what it just wrote. Mirrors are only
used for the gateway's own identity: impersonated calls always go to the API server, so the user's
RBAC decides what they may read.

Mirrors are bounded, so no caller can make the gateway hold an unbounded number of watches: a mirror
starts only in a namespace that exists (namespaces outside --namespace-allow never get this far), at
most `max_mirrors` run at once (the least recently read is stopped first), and a mirror not read for
`idle_seconds` is stopped. Stopping a mirror ends its watch thread at once (its stream is shut down).

A kind may be mirrored in a `Shape`: its own lister (core/v1 Events are not custom objects), a slimmer copy
of each object, and a cap per mirror that keeps the newest objects (a namespace's Events have no bound).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)
WATCH_SECONDS = 300
FIRST_LIST_TIMEOUT = 30.0
Key = tuple[str, str, str, str]  # group, version, plural, namespace


def _version(obj: dict[str, Any]) -> int:
    try:
        return int(obj.get("metadata", {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def merge_listing(before: dict[str, dict[str, Any]], listed: dict[str, dict[str, Any]],
                  list_version: int) -> dict[str, dict[str, Any]]:
    """A fresh listing folded into what the mirror held: what the listing shows wins, except an object newer
    than the listing itself (the gateway's own write, folded in after the API server took the list's
    snapshot), which the watch from the listing's version would report again anyway."""
    merged = dict(listed)
    for name, obj in before.items():
        if _version(obj) > list_version and _version(obj) > _version(listed.get(name) or {}):
            merged[name] = obj
    return merged


@dataclass(frozen=True)
class Shape:
    """How one kind is mirrored when not whole and through the custom-objects lister. `project` keeps what the
    readers use (metadata.name and metadata.resourceVersion included); over `capacity` objects, those with the
    smallest `age` key go first (ties: by name), so a mirror keeps the newest."""

    lister: Callable[..., Any] | None = None
    project: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    capacity: int | None = None
    age: Callable[[dict[str, Any]], str] = lambda obj: ""


def _newest(items: dict[str, dict[str, Any]], shape: Shape, capacity: int) -> dict[str, dict[str, Any]]:
    """The `capacity` newest of `items` (by the shape's age key, then name)."""
    kept = sorted(items.items(), key=lambda item: (shape.age(item[1]), item[0]), reverse=True)[:capacity]
    return dict(kept)


class Mirror:
    def __init__(self, lister: Callable[..., Any], key: Key,
                 on_change: Callable[[str], None] | None = None, shape: Shape | None = None) -> None:
        """`on_change(name)` is called (in the watch thread) for each object the API server reports changed
        or deleted after the first list, re-lists included (resource subscriptions are driven by it)."""
        self._lister, self.key, self._on_change = lister, key, on_change
        self._shape = shape or Shape()
        self._items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._listed = threading.Event()
        self._synced = False  # a list has succeeded: from then on the mirror answers, empty or not
        self._stopped = threading.Event()
        self._error: Exception | None = None
        self._response: Any = None  # the open watch response, so stop() can interrupt a blocking read
        self._thread = threading.Thread(target=self._run, name=f"mirror-{'/'.join(key)}", daemon=True)
        self._thread.start()

    def wait_listed(self) -> None:
        if not self._listed.wait(FIRST_LIST_TIMEOUT):
            raise TimeoutError(f"no initial list for {self.key}")
        if self._error is not None and not self._synced:
            raise self._error

    @property
    def served(self) -> bool:
        """Listed, and able to answer: what `wait_listed` would return at once without raising."""
        return self._listed.is_set() and (self._error is None or self._synced)

    @property
    def refused(self) -> bool:
        """The API server refused this identity the list or the watch (401/403): the mirror has stopped."""
        return isinstance(self._error, ApiException) and self._error.status in (401, 403)

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(name)

    def list(self, where: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """The objects (those `where` accepts), in name order like an API LIST."""
        with self._lock:
            chosen = [o for o in self._items.values() if where is None or where(o)]
        return sorted(chosen, key=lambda o: str(o["metadata"]["name"]))

    def apply(self, obj: dict[str, Any], *, deleted: bool = False) -> None:
        """Fold in an object we know about (a watch event or our own write); older versions never win."""
        name = obj["metadata"]["name"]
        if self._shape.project is not None and not deleted:
            obj = self._shape.project(obj)
        capacity = self._shape.capacity
        with self._lock:
            current = self._items.get(name)
            if current is not None and _version(current) > _version(obj):
                return
            if deleted:
                self._items.pop(name, None)
            else:
                self._items[name] = obj
            # Trimmed in steps (a tenth over the cap), so a steady stream does not sort on every event.
            if capacity is not None and len(self._items) > capacity + max(1, capacity // 10):
                self._items = _newest(self._items, self._shape, capacity)

    def stop(self) -> None:
        """Stop the watch thread now, even while it waits for the next event."""
        self._stopped.set()
        self._interrupt(self._response)

    def _interrupt(self, response: Any) -> None:
        if response is not None:
            try:  # makes the watch thread's blocking read return at once
                response.shutdown()
            except Exception:  # already closed: nothing to interrupt
                log.debug("watch of %s already closed", "/".join(self.key))

    def _open_watch(self, *args: Any, **kwargs: Any) -> Any:
        """The lister, keeping the watch response; a stop that raced with opening it is honoured here."""
        response = self._response = self._lister(*args, **kwargs)
        if self._stopped.is_set():
            self._interrupt(response)
        return response

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _relist(self) -> str:
        group, version, plural, namespace = self.key
        listing = self._lister(group, version, namespace, plural)
        list_version = str(listing.get("metadata", {}).get("resourceVersion") or "")
        project = self._shape.project or (lambda obj: obj)
        listed = {o["metadata"]["name"]: project(o) for o in listing.get("items", [])}
        if self._shape.capacity is not None and len(listed) > self._shape.capacity:
            listed = _newest(listed, self._shape, self._shape.capacity)
        with self._lock:
            before = self._items
            items = self._items = merge_listing(before, listed, _version(listing))
            self._synced = True
        if self._listed.is_set():  # a re-list: what changed while no watch was open
            for name in sorted(set(before) | set(items)):
                if _version(before.get(name) or {}) != _version(items.get(name) or {}):
                    self._changed(name)
        return list_version

    def _changed(self, name: str) -> None:
        if self._on_change is not None:
            try:
                self._on_change(name)
            except Exception:  # a listener must not end the watch
                log.exception("change listener of %s failed", "/".join(self.key))

    def _run(self) -> None:
        group, version, plural, namespace = self.key
        while not self._stopped.is_set():
            try:
                resource_version = self._relist()
                self._error = None
                self._listed.set()
                stream = watch.Watch()

                def opener(*args: Any, **kwargs: Any) -> Any:
                    return self._open_watch(*args, **kwargs)

                functools.update_wrapper(opener, self._lister)  # Watch reads the lister's signature and doc
                for event in stream.stream(opener, group, version, namespace, plural,
                                           resource_version=resource_version, allow_watch_bookmarks=True,
                                           timeout_seconds=WATCH_SECONDS):
                    if self._stopped.is_set():
                        stream.stop()
                        break
                    kind, obj = event["type"], event.get("raw_object", event["object"])
                    if kind in ("ADDED", "MODIFIED"):
                        self.apply(obj)
                    elif kind == "DELETED":
                        self.apply(obj, deleted=True)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self._changed(obj["metadata"]["name"])
            except ApiException as exc:  # 410 Gone or a refused watch: list again
                self._error = exc
                self._listed.set()
                if exc.status in (401, 403):  # not allowed here: give up; the next read tries afresh
                    self._stopped.set()
                    return
                if exc.status not in (410, 504):
                    log.warning("watch of %s failed (%s); re-listing", "/".join(self.key), exc.status)
                    self._stopped.wait(1.0)
            except Exception as exc:  # network trouble: list again after a pause
                if self._stopped.is_set():
                    return
                self._error = exc
                self._listed.set()
                log.warning("watch of %s interrupted (%s); re-listing", "/".join(self.key), type(exc).__name__)
                self._stopped.wait(1.0)


class MirrorBook:
    """Which mirrors to keep: least recently read first out over `capacity`, idle ones expire. Pure logic."""

    def __init__(self, capacity: int, idle_seconds: float) -> None:
        self.capacity, self.idle_seconds = capacity, idle_seconds
        self._last_read: OrderedDict[Key, float] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._last_read

    def __len__(self) -> int:
        return len(self._last_read)

    def touch(self, key: Key, now: float) -> list[Key]:
        """Record a read of `key`; returns the keys to stop to stay within capacity (never `key`)."""
        self._last_read[key] = now
        self._last_read.move_to_end(key)
        evicted: list[Key] = []
        while len(self._last_read) > self.capacity:
            oldest, _ = self._last_read.popitem(last=False)
            evicted.append(oldest)
        return evicted

    def expire(self, now: float) -> list[Key]:
        """Forget and return the keys not read for `idle_seconds`."""
        idle = [key for key, last in self._last_read.items() if now - last >= self.idle_seconds]
        for key in idle:
            del self._last_read[key]
        return idle


class NamespaceNotFound(LookupError):
    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self.namespace = namespace


class WatchCache:
    def __init__(self, lister: Callable[..., Any], *, namespace_exists: Callable[[str], bool] | None = None,
                 max_mirrors: int = 64, idle_seconds: float = 600.0,
                 clock: Callable[[], float] = time.monotonic,
                 shapes: Mapping[tuple[str, str], Shape] | None = None) -> None:
        """`shapes`: by (group, plural), the kinds mirrored in a shape of their own."""
        self._lister, self._namespace_exists, self._clock = lister, namespace_exists, clock
        self._shapes = dict(shapes or {})
        self._mirrors: dict[Key, Mirror] = {}
        self._book = MirrorBook(max_mirrors, idle_seconds)
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reaper: threading.Thread | None = None

    def mirror(self, key: Key) -> Mirror:
        """The mirror for `key`, started if needed; NamespaceNotFound if its namespace does not exist."""
        with self._lock:
            found = self._mirrors.get(key)
            live = found is not None and not found.stopped
            namespace_known = any(k[3] == key[3] and not m.stopped for k, m in self._mirrors.items())
        if not live and not namespace_known and self._namespace_exists is not None \
                and not self._namespace_exists(key[3]):
            raise NamespaceNotFound(key[3])
        with self._lock:
            found = self._mirrors.get(key)
            if found is None or found.stopped:
                shape = self._shapes.get((key[0], key[2]))
                found = self._mirrors[key] = Mirror((shape.lister if shape else None) or self._lister, key,
                                                    shape=shape)
            to_stop = self._touch(key)
            self._start_reaper()
        for mirror in to_stop:
            mirror.stop()
        found.wait_listed()
        return found

    def ready(self, key: Key) -> Mirror | None:
        """The mirror for `key` when it runs and can answer now, else None (then `mirror` starts or waits for it).
        Never blocks and calls no API, so a read from a filled mirror needs no worker thread."""
        with self._lock:
            found = self._mirrors.get(key)
            if found is None or found.stopped or not found.served:
                return None
            to_stop = self._touch(key)
        for mirror in to_stop:
            mirror.stop()
        return found

    def _touch(self, key: Key) -> list[Mirror]:
        """Record a read of `key` (under the lock); returns the mirrors to stop, taken out of the cache."""
        now = self._clock()
        return [self._mirrors.pop(gone) for gone in self._book.touch(key, now) + self._book.expire(now)
                if gone != key and gone in self._mirrors]

    def known(self, key: Key) -> Mirror | None:
        with self._lock:
            return self._mirrors.get(key)

    def running_keys(self) -> list[Key]:
        with self._lock:
            return [key for key, mirror in self._mirrors.items() if not mirror.stopped]

    def sweep(self) -> list[Key]:
        """Stop the mirrors idle for too long; returns their keys."""
        with self._lock:
            expired = [key for key in self._book.expire(self._clock()) if key in self._mirrors]
            stopping = [self._mirrors.pop(key) for key in expired]
        for mirror in stopping:
            mirror.stop()
        return expired

    def _start_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = threading.Thread(target=self._reap, name="mirror-reaper", daemon=True)
            self._reaper.start()

    def _reap(self) -> None:
        interval = min(30.0, max(0.05, self._book.idle_seconds / 4))
        while not self._closed.wait(interval):
            self.sweep()

    def stop(self) -> None:
        self._closed.set()
        with self._lock:
            for mirror in self._mirrors.values():
                mirror.stop()
