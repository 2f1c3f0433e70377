"""One way to register an intent kind with Kopf: its indexes, its reconcile and finalize handlers,
and the observer of the CNPG object it produces one-to-one.

A kind is described by an `IntentKind` (handlers/intents.py lists them) and its module provides four
functions with one signature, `(rt, body, views)`: reconcile, finalize, refresh_status (status only,
from what CNPG reports now) and needs_reconcile (after a CNPG event: produce again, or a refresh is
enough?). `register_intent_kind` turns that into Kopf handlers with explicit ids, so the ids (and
Kopf's progress annotations keyed by them) stay what they were when every module had its own
decorators: `reconcile_<name>`, `delete_<name>`, indexes `<name>s` and `<name>s_by_cluster`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import kopf

from cnpg_mcp_api.models import RECREATE_ANNOTATION
from cnpg_mcp_operator import metrics
from cnpg_mcp_operator.k8s import Resource
from cnpg_mcp_operator.registry import REGISTRY
from cnpg_mcp_operator.runtime import Runtime, runtime_of
from cnpg_mcp_operator.views import CnpgViews, IndexEntry, plain, project

Json = dict[str, Any]
Handler = Callable[[Runtime, Json, CnpgViews], Awaitable[None]]
Decision = Callable[[Runtime, Json, CnpgViews], bool]

# The only annotation of an intent any handler reads (handlers/cluster_requests.py).
INTENT_ANNOTATIONS_READ = (RECREATE_ANNOTATION,)


@dataclass(frozen=True)
class IntentKind:
    resource: Resource
    name: str  # snake_case singular, e.g. "role_request": the stem of every handler and index id
    reconcile: Handler
    finalize: Handler
    refresh_status: Handler
    needs_reconcile: Decision
    # Index by spec.cluster too ("<name>s_by_cluster"): the kind targets a Cluster it does not own.
    # Without it, the by-name index is the by-cluster one (a PgClusterRequest is named like its Cluster).
    by_cluster: bool = True
    # The CNPG kind it produces one-to-one (same name, owned by UID), observed by produced_changed.
    produces: Resource | None = None

    @property
    def index(self) -> str:
        """Kopf's index of the kind by (namespace, name); handlers get it as the kwarg of that name."""
        return f"{self.name}s"

    @property
    def cluster_index(self) -> str:
        """The index by (namespace, target Cluster)."""
        return f"{self.name}s_by_cluster" if self.by_cluster else self.index


def intent_view(body: kopf.Body) -> Json:
    """What an intent index keeps: the whole spec and status (ours, small; the status writer compares
    against it), the metadata handlers read."""
    return project(body, annotations=INTENT_ANNOTATIONS_READ)


class SharedIntentView:
    """One projection per intent version for both of a kind's indexes.

    Kopf calls the by-name and the by-cluster index functions one after the other with the same
    body; each used to keep a copy of its own. The last projection made is kept for the next call
    with the same uid and resourceVersion (a miss only costs a second projection).
    """

    def __init__(self) -> None:
        self._version: tuple[Any, Any] | None = None
        self._view: Json = {}

    def __call__(self, body: kopf.Body) -> Json:
        meta = body.get("metadata") or {}
        version = (meta.get("uid"), meta.get("resourceVersion"))
        if version != self._version or version[1] is None:
            self._version, self._view = version, intent_view(body)
        return self._view


def register_intent_kind(kind: IntentKind, registry: kopf.OperatorRegistry = REGISTRY) -> None:
    group, version, plural = kind.resource.group, kind.resource.version, kind.resource.plural
    view = SharedIntentView()

    # Coroutines, so Kopf calls them on its event loop: a plain function would be sent to its thread
    # pool, one hop per object and index, and its projection built in that thread's malloc arena.
    async def by_name(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> IndexEntry:
        return {(namespace or "", name): view(body)}

    async def by_cluster(body: kopf.Body, namespace: str | None, spec: kopf.Spec, **_: Any) -> IndexEntry:
        return {(namespace or "", str(spec.get("cluster") or "")): view(body)}

    controller = metrics.controller_name(kind.resource.kind)

    async def reconcile(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
        with metrics.reconciling(controller):
            await kind.reconcile(runtime_of(memo), plain(body), CnpgViews.from_kwargs(kwargs))

    async def delete(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
        with metrics.reconciling(controller):
            await kind.finalize(runtime_of(memo), plain(body), CnpgViews.from_kwargs(kwargs))

    kopf.index(group, version, plural, id=kind.index, registry=registry)(by_name)
    if kind.by_cluster:
        kopf.index(group, version, plural, id=kind.cluster_index, registry=registry)(by_cluster)
    # The order stacked decorators registered them in (update, create, resume); one id for the three.
    for on in (kopf.on.update, kopf.on.create, kopf.on.resume):
        on(group, version, plural, id=f"reconcile_{kind.name}", registry=registry)(reconcile)
    kopf.on.delete(group, version, plural, id=f"delete_{kind.name}", registry=registry)(delete)
