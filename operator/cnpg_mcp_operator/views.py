"""Read-only views over Kopf's in-memory indexes of CNPG objects and of our intents.

Kopf fills every index from its watch streams before any resource handler runs, and keeps them
current; reading them costs no API call. The index functions live in handlers/cnpg_observers.py
(CNPG kinds) and in each intent's handler module; they store plain dict copies of the bodies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Json = dict[str, Any]
Key = tuple[str, str]
IndexEntry = dict[Key, Json]  # what an index function returns


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

    def cluster(self, namespace: str, name: str) -> Json | None:
        return first(self.clusters, (namespace, name))

    def database_role(self, namespace: str, name: str) -> Json | None:
        return first(self.database_roles, (namespace, name))

    def database(self, namespace: str, name: str) -> Json | None:
        return first(self.databases, (namespace, name))

    def requested_roles(self, namespace: str, cluster: str, *, ready: bool) -> set[str]:
        """Role names of the live PgRoleRequests of `namespace` for `cluster`: the Ready ones, or the
        ones still on their way (not Ready, not refused)."""
        names: set[str] = set()
        for request in every(self.role_requests, (namespace, cluster)):
            if request["metadata"].get("deletionTimestamp"):
                continue
            condition: Json = next((c for c in (request.get("status") or {}).get("conditions") or []
                              if c.get("type") == "Ready"), {})
            is_ready = condition.get("status") == "True"
            refused = condition.get("reason") in ("PolicyDenied", "Invalid", "Conflict")
            if is_ready == ready and not refused:
                names.add(str((request.get("spec") or {}).get("roleName") or ""))
        return names

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> CnpgViews:
        """Built from a Kopf handler's kwargs (Kopf passes each index under its function's name)."""
        return cls(clusters=kwargs["cnpg_clusters"], database_roles=kwargs.get("cnpg_database_roles"),
                   databases=kwargs["cnpg_databases"], role_requests=kwargs.get("role_requests_by_cluster"))
