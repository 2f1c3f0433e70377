"""Optional watch-backed read mirrors (`--watch-cache`): reads without an API round trip.

One mirror per (resource, namespace), started on the first read there: a LIST, then a WATCH from its
resourceVersion that keeps the mirror current (re-listing after 410 Gone or any error). The gateway's
own writes are applied to the mirror at once, so a tool reads what it just wrote. Mirrors are only
used for the gateway's own identity: impersonated calls always go to the API server, so the user's
RBAC decides what they may read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
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


class Mirror:
    def __init__(self, lister: Callable[..., Any], key: Key) -> None:
        self._lister, self.key = lister, key
        self._items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._listed = threading.Event()
        self._stopped = threading.Event()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name=f"mirror-{'/'.join(key)}", daemon=True)
        self._thread.start()

    def wait_listed(self) -> None:
        if not self._listed.wait(FIRST_LIST_TIMEOUT):
            raise TimeoutError(f"no initial list for {self.key}")
        if self._error is not None and not self._items:
            raise self._error

    def get(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            return self._items.get(name)

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return sorted(self._items.values(), key=lambda o: str(o["metadata"]["name"]))

    def apply(self, obj: dict[str, Any], *, deleted: bool = False) -> None:
        """Fold in an object we know about (a watch event or our own write); older versions never win."""
        name = obj["metadata"]["name"]
        with self._lock:
            current = self._items.get(name)
            if current is not None and _version(current) > _version(obj):
                return
            if deleted:
                self._items.pop(name, None)
            else:
                self._items[name] = obj

    def stop(self) -> None:
        self._stopped.set()

    @property
    def stopped(self) -> bool:
        return self._stopped.is_set()

    def _relist(self) -> str:
        group, version, plural, namespace = self.key
        listing = self._lister(group, version, namespace, plural)
        with self._lock:
            self._items = {o["metadata"]["name"]: o for o in listing.get("items", [])}
        return str(listing.get("metadata", {}).get("resourceVersion") or "")

    def _run(self) -> None:
        group, version, plural, namespace = self.key
        while not self._stopped.is_set():
            try:
                resource_version = self._relist()
                self._error = None
                self._listed.set()
                stream = watch.Watch()
                for event in stream.stream(self._lister, group, version, namespace, plural,
                                           resource_version=resource_version, allow_watch_bookmarks=True,
                                           timeout_seconds=WATCH_SECONDS):
                    if self._stopped.is_set():
                        stream.stop()
                        break
                    kind, obj = event["type"], event["object"]
                    if kind in ("ADDED", "MODIFIED"):
                        self.apply(obj)
                    elif kind == "DELETED":
                        self.apply(obj, deleted=True)
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
                self._error = exc
                self._listed.set()
                log.warning("watch of %s interrupted (%s); re-listing", "/".join(self.key), type(exc).__name__)
                self._stopped.wait(1.0)


class WatchCache:
    def __init__(self, lister: Callable[..., Any]) -> None:
        self._lister = lister
        self._mirrors: dict[Key, Mirror] = {}
        self._lock = threading.Lock()

    def mirror(self, key: Key) -> Mirror:
        with self._lock:
            found = self._mirrors.get(key)
            if found is None or found.stopped:
                found = self._mirrors[key] = Mirror(self._lister, key)
        found.wait_listed()
        return found

    def known(self, key: Key) -> Mirror | None:
        with self._lock:
            return self._mirrors.get(key)

    def stop(self) -> None:
        with self._lock:
            for mirror in self._mirrors.values():
                mirror.stop()
