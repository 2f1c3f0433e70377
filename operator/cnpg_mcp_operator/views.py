"""Read-only views over Kopf's in-memory indexes of CNPG objects and of our intents.

Kopf fills every index from its watch streams before any resource handler runs, and keeps them
current; reading them costs no API call. The index functions live in handlers/cnpg_observers.py
(CNPG kinds) and handlers/kinds.py (intents); they store slim plain-dict projections of the bodies
(`project`): what the handlers read, without managedFields, last-applied annotations and the parts
of CNPG's status nobody here looks at. Their keys are interned: every projection of a kind has the
same few dozen keys, and without interning each kept the copies its own JSON document decoded.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cnpg_mcp_api.conditions import ready_condition

Json = dict[str, Any]
Key = tuple[str, str]
IndexEntry = dict[Key, Json]  # what an index function returns

# Metadata the handlers read (freshest() compares resourceVersion; ownership is by uid/ownerReferences).
_METADATA_KEYS = ("name", "namespace", "uid", "generation", "resourceVersion", "deletionTimestamp", "labels",
                  "ownerReferences")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {sys.intern(str(k)): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def plain(body: Mapping[str, Any]) -> Json:
    """A detached plain-dict copy of a Kopf body (safe to keep in caches and indexes)."""
    return _plain(body)  # type: ignore[no-any-return]


def project(body: Mapping[str, Any], *, annotations: Iterable[str] = (),
            status: Iterable[str] | None = None) -> Json:
    """The slim plain-dict copy an index keeps: apiVersion, kind, the metadata handlers read (only
    the listed `annotations`), the whole spec, and the listed `status` fields (None: all of it)."""
    meta = body.get("metadata") or {}
    slim_meta = {key: meta[key] for key in _METADATA_KEYS if meta.get(key) is not None}
    wanted = {key: value for key, value in (meta.get("annotations") or {}).items() if key in set(annotations)}
    if wanted:
        slim_meta["annotations"] = wanted
    full_status = body.get("status") or {}
    slim_status = full_status if status is None else {k: full_status[k] for k in status if k in full_status}
    slim: Json = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": slim_meta}
    if "spec" in body:
        slim["spec"] = body["spec"]
    if slim_status:
        slim["status"] = slim_status
    return plain(slim)


def first(index: Mapping[Any, Iterable[Json]] | None, key: Key) -> Json | None:
    if index is None:
        return None
    for value in index.get(key, ()):
        return value
    return None


def every(index: Mapping[Any, Iterable[Json]] | None, key: Key) -> list[Json]:
    return [] if index is None else list(index.get(key, ()))


@dataclass(frozen=True)
class CnpgViews:
    """The CNPG objects as last seen on the watch streams, keyed by (namespace, name)."""

    clusters: Mapping[Any, Iterable[Json]]
    database_roles: Mapping[Any, Iterable[Json]] | None
    databases: Mapping[Any, Iterable[Json]]
    # PgRoleRequests keyed by (namespace, cluster): which roles a namespace's own requests produced.
    role_requests: Mapping[Any, Iterable[Json]] | None = None
    backups: Mapping[Any, Iterable[Json]] | None = None
    scheduled_backups: Mapping[Any, Iterable[Json]] | None = None
    object_stores: Mapping[Any, Iterable[Json]] | None = None
    # PgClusterRequests keyed by (namespace, name) (= their Cluster's name).
    cluster_requests: Mapping[Any, Iterable[Json]] | None = None
    poolers: Mapping[Any, Iterable[Json]] | None = None

    def cluster(self, namespace: str, name: str) -> Json | None:
        return first(self.clusters, (namespace, name))

    def database_role(self, namespace: str, name: str) -> Json | None:
        return first(self.database_roles, (namespace, name))

    def database(self, namespace: str, name: str) -> Json | None:
        return first(self.databases, (namespace, name))

    def backup(self, namespace: str, name: str) -> Json | None:
        return first(self.backups, (namespace, name))

    def scheduled_backup(self, namespace: str, name: str) -> Json | None:
        return first(self.scheduled_backups, (namespace, name))

    def object_store(self, namespace: str, name: str) -> Json | None:
        return first(self.object_stores, (namespace, name))

    def cluster_request(self, namespace: str, name: str) -> Json | None:
        return first(self.cluster_requests, (namespace, name))

    def pooler(self, namespace: str, name: str) -> Json | None:
        return first(self.poolers, (namespace, name))

    def requested_roles(self, namespace: str, cluster: str, *, ready: bool) -> set[str]:
        """Role names of the live PgRoleRequests of `namespace` for `cluster`: the Ready ones, or the
        ones still on their way (not Ready, not refused)."""
        names: set[str] = set()
        for request in every(self.role_requests, (namespace, cluster)):
            if request["metadata"].get("deletionTimestamp"):
                continue
            condition = ready_condition(request)
            is_ready = condition.get("status") == "True"
            refused = condition.get("reason") in ("PolicyDenied", "Invalid", "Conflict")
            if is_ready == ready and not refused:
                names.add(str((request.get("spec") or {}).get("roleName") or ""))
        return names

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> CnpgViews:
        """Built from a Kopf handler's kwargs (Kopf passes each index under its function's name)."""
        return cls(clusters=kwargs["cnpg_clusters"], database_roles=kwargs.get("cnpg_database_roles"),
                   databases=kwargs["cnpg_databases"], role_requests=kwargs.get("role_requests_by_cluster"),
                   backups=kwargs.get("cnpg_backups"), scheduled_backups=kwargs.get("cnpg_scheduled_backups"),
                   object_stores=kwargs.get("cnpg_object_stores"),
                   cluster_requests=kwargs.get("cluster_requests"), poolers=kwargs.get("cnpg_poolers"))
