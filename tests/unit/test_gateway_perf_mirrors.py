"""Watch-cache mirrors for the read path (issue #14): Events in a bounded, slim mirror; reads of a filled
mirror that need no worker thread and no API call."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException

from mcp_gateway import k8s, render
from mcp_gateway.watch_cache import Mirror, Shape, WatchCache

KEY = ("", "v1", "events", "ns")


def event(name: str, about: str, at: str, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(len(name) + int(at[-3:-1])),
                         "managedFields": [{"manager": "kopf"}], "uid": "u-" + name},
            "involvedObject": {"kind": "Cluster", "name": about, "uid": "c", "apiVersion": "postgresql.cnpg.io/v1"},
            "type": "Normal", "reason": "Applied", "message": f"{name} happened", "lastTimestamp": at,
            "count": 1, "source": {"component": "cnpg-mcp"}, "reportingComponent": "cnpg-mcp", **extra}


class QuietWatch:
    """A watch response that reports nothing until the mirror shuts it down."""

    def __init__(self) -> None:
        self._closed = threading.Event()

    def stream(self, **_: Any) -> Iterator[bytes]:
        self._closed.wait(10)
        return iter(())

    def shutdown(self) -> None:
        self._closed.set()

    def close(self) -> None:
        self._closed.set()

    def release_conn(self) -> None:
        pass


class Lister:
    """A list answer, and a watch that stays quiet (or that the API server refuses: `refuse_watch`)."""

    def __init__(self, items: list[dict[str, Any]], *, refuse_watch: bool = False) -> None:
        self.items, self.refuse_watch, self.lists = items, refuse_watch, 0

    def __call__(self, group: str, version: str, namespace: str, plural: str, **kwargs: Any) -> Any:
        """:rtype: object"""
        if kwargs.get("watch"):
            if self.refuse_watch:
                raise ApiException(status=403, reason="Forbidden")
            return QuietWatch()
        self.lists += 1
        return {"metadata": {"resourceVersion": "1"}, "items": self.items}


def test_the_slim_event_renders_as_the_full_one() -> None:
    full = event("gw.1", "gw", "2026-12-03T01:00:10Z")
    assert render.event_entries([k8s._slim_event(full)]) == render.event_entries([full])
    assert "managedFields" not in k8s._slim_event(full)["metadata"]
    timed = {**event("gw.2", "gw", "2026-12-03T01:00:11Z"), "lastTimestamp": None, "eventTime": "2026-12-03T01:00:12Z"}
    assert render.event_entries([k8s._slim_event(timed)]) == render.event_entries([timed])


def test_an_event_mirror_keeps_the_newest_slim_events_up_to_its_cap() -> None:
    items = [event(f"e{i:02d}", "gw" if i % 2 else "other", f"2026-12-03T01:00:{i:02d}Z") for i in range(30)]
    shape = Shape(project=k8s._slim_event, capacity=10, age=k8s._event_time)
    mirror = Mirror(Lister(items), KEY, shape=shape)
    mirror.wait_listed()
    assert [e["metadata"]["name"] for e in mirror.list()] == [f"e{i:02d}" for i in range(20, 30)]
    assert all("managedFields" not in e["metadata"] for e in mirror.list())
    assert [e["metadata"]["name"] for e in mirror.list(k8s._about("gw"))] == [f"e{i:02d}" for i in range(21, 30, 2)]
    for i in range(30, 60):  # a stream of newer Events: never more than a tenth over the cap, the newest kept
        mirror.apply(event(f"e{i:02d}", "gw", f"2026-12-03T01:00:{i:02d}Z"))
        assert len(mirror.list()) <= 11
    assert [e["metadata"]["name"] for e in mirror.list()][-1] == "e59"
    assert {e["metadata"]["name"] for e in mirror.list()} >= {f"e{i:02d}" for i in range(50, 60)}
    mirror.stop()


def test_a_refused_watch_keeps_the_listing_and_says_so() -> None:
    mirror = Mirror(Lister([event("e1", "gw", "2026-12-03T01:00:01Z")], refuse_watch=True), KEY)
    mirror.wait_listed()
    mirror._thread.join(5)
    assert mirror.refused and mirror.stopped
    assert [e["metadata"]["name"] for e in mirror.list()] == ["e1"]


def test_a_filled_mirror_is_ready_without_waiting_or_calling_the_api() -> None:
    lister = Lister([event("e1", "gw", "2026-12-03T01:00:01Z")])
    checked: list[str] = []

    def exists(namespace: str) -> bool:
        checked.append(namespace)
        return True

    cache = WatchCache(lister, namespace_exists=exists)
    key = ("postgresql.cnpg.io", "v1", "clusters", "ns")
    assert cache.ready(key) is None  # nothing started yet: the caller takes the slow path
    mirror = cache.mirror(key)
    assert cache.ready(key) is mirror and cache.ready(key) is mirror
    assert lister.lists == 1 and checked == ["ns"]
    mirror.stop()
    assert cache.ready(key) is None  # a stopped mirror is never served from
    cache.stop()


def test_a_shape_gives_a_kind_its_own_lister() -> None:
    events, objects = Lister([event("e1", "gw", "2026-12-03T01:00:01Z")]), Lister([])
    cache = WatchCache(objects, shapes={("", "events"): Shape(lister=events)})
    assert [e["metadata"]["name"] for e in cache.mirror(KEY).list()] == ["e1"]
    assert events.lists == 1 and objects.lists == 0
    cache.stop()


class Interrupted(Lister):
    """Lists once (nothing there), then the watch breaks and every later list fails: the API server went away."""

    def __call__(self, group: str, version: str, namespace: str, plural: str, **kwargs: Any) -> Any:
        """:rtype: object"""
        if kwargs.get("watch") or self.lists:
            self.broken.set()
            raise ConnectionResetError("the API server went away")
        return super().__call__(group, version, namespace, plural, **kwargs)

    broken = threading.Event()


def test_an_empty_mirror_that_was_listed_answers_while_its_watch_is_broken() -> None:
    """An empty namespace (no Events in the last hour is common) is an answer like any other: a broken watch
    after a good list must not turn reads into errors (a mirror with objects already answers then)."""
    lister = Interrupted([])
    mirror = Mirror(lister, KEY)
    assert lister.broken.wait(5)
    mirror.wait_listed()
    assert mirror.list() == [] and mirror.served
    mirror.stop()
