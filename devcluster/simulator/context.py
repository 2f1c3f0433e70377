"""The handler contract: what every kind module gets (Context) and must provide (Handler, WatchSpec).

The runtime (runtime.py) owns the watches, the work queue, backoff and failure isolation; handlers
never sleep or retry themselves: they return False (or raise) and the queue retries them later.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from kubernetes import client

from devcluster.simulator.common import GROUP, VERSION, Json, Key

if TYPE_CHECKING:
    from devcluster.simulator.kube import Kube
    from devcluster.simulator.logs import LogStore
    from devcluster.simulator.pg import Postgres

ListFactory = Callable[[Any], tuple[Callable[..., Any], Json]]
EventHandler = Callable[[str, Json], None]


@dataclass(frozen=True)
class WatchSpec:
    """A list+watch the runtime keeps open. `replay`: hand the listed objects to `handle` as ADDED."""

    name: str
    factory: ListFactory  # ApiClient → (list function, its kwargs)
    handle: EventHandler
    replay: bool = True


def custom_objects(plural: str) -> ListFactory:
    """Watch a CNPG kind in every namespace."""
    def factory(api: Any) -> tuple[Callable[..., Any], Json]:
        return client.CustomObjectsApi(api).list_cluster_custom_object, {
            "group": GROUP, "version": VERSION, "plural": plural}
    return factory


class References:
    """Which queue keys depend on which named object (Secret, Cluster) of their namespace."""

    def __init__(self) -> None:
        self._users: dict[tuple[str, str], set[Key]] = {}
        self._lock = threading.Lock()

    def remember(self, key: Key, refs: Iterable[str]) -> None:
        with self._lock:
            for users in self._users.values():
                users.discard(key)
            for ref in refs:
                self._users.setdefault((key[1], ref), set()).add(key)

    def users_of(self, namespace: str, name: str) -> list[Key]:
        with self._lock:
            return list(self._users.get((namespace, name), ()))


def spec_fingerprint(obj: Mapping[str, Any]) -> Hashable:
    """What a change must touch to be news for a handler: not status (the simulator writes it)."""
    meta = obj.get("metadata") or {}
    return (meta.get("generation"), meta.get("deletionTimestamp"), tuple(meta.get("finalizers") or ()),
            json.dumps(meta.get("labels") or {}, sort_keys=True),
            json.dumps(meta.get("annotations") or {}, sort_keys=True))


class ChangeFilter:
    """Says whether a watch event brings news, so the echo of the simulator's own status writes does
    not enqueue work again (a Cluster that keeps failing would otherwise never back off)."""

    def __init__(self, fingerprint: Callable[[Mapping[str, Any]], Hashable] = spec_fingerprint) -> None:
        self._fingerprint = fingerprint
        self._seen: dict[tuple[str, str], Hashable] = {}
        self._lock = threading.Lock()

    def is_news(self, event_type: str, obj: Mapping[str, Any]) -> bool:
        meta = obj.get("metadata") or {}
        ref = (str(meta.get("namespace", "")), str(meta.get("name", "")))
        with self._lock:
            if event_type == "DELETED":
                self._seen.pop(ref, None)
                return True
            fingerprint = self._fingerprint(obj)
            previous = self._seen.get(ref)
            self._seen[ref] = fingerprint
        return event_type == "ADDED" or previous != fingerprint


@dataclass
class Context:
    """What handlers share: API access, the shared PostgreSQL, the queue, dependency indexes, logs."""

    kube: Kube
    pg: Postgres
    enqueue: Callable[[Key], None]
    logs: LogStore
    node_name: str
    secret_users: References = field(default_factory=References)
    cluster_users: References = field(default_factory=References)


class Handler(Protocol):
    """One CNPG (or Kubernetes) kind the simulation plays."""

    kind: ClassVar[str]  # the first element of this handler's queue keys
    # Optional `worker_group: ClassVar[str]` (default "operator"): handlers of one group share one
    # queue; optional `workers: ClassVar[int]` (default 1): how many workers that queue runs (a key is
    # never worked by two at once). PostgreSQL connections are per worker thread (pg.py).

    def watches(self) -> Sequence[WatchSpec]:
        """The list+watches that feed this handler (usually one, on its own kind)."""
        ...

    def reconcile(self, namespace: str, name: str) -> bool:
        """Bring the world to what the object asks. True: done; False: retry later with backoff.

        Idempotent; may raise ApiException or psycopg.Error (also retried with backoff)."""
        ...



class OwnKindHandler:
    """Base of a handler for one CNPG kind whose changes (news only) enqueue the object itself."""

    kind: ClassVar[str]
    plural: ClassVar[str]

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._changes = ChangeFilter()

    def watches(self) -> Sequence[WatchSpec]:
        return [WatchSpec(self.plural, custom_objects(self.plural), self._event)]

    def _event(self, event_type: str, obj: Json) -> None:
        # is_news first: it remembers what this event shows, also when the event is our own echo.
        # The echo of the simulator's own finalizer patch is no news (it cost every DatabaseRole a
        # second reconcile: ~4 more round trips).
        self._ctx.kube.observe(self.plural, event_type, obj)
        own_echo = event_type == "MODIFIED" and self._ctx.kube.is_own_write(self.plural, obj)
        if self._changes.is_news(event_type, obj) and not own_echo:
            self._ctx.enqueue((self.kind, obj["metadata"]["namespace"], obj["metadata"]["name"]))
