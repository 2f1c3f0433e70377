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

    def cluster(self, namespace: str, name: str) -> Json | None:
        return first(self.clusters, (namespace, name))

    def database_role(self, namespace: str, name: str) -> Json | None:
        return first(self.database_roles, (namespace, name))

    def database(self, namespace: str, name: str) -> Json | None:
        return first(self.databases, (namespace, name))

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> CnpgViews:
        """Built from a Kopf handler's kwargs (Kopf passes each index under its function's name)."""
        return cls(clusters=kwargs["cnpg_clusters"], database_roles=kwargs.get("cnpg_database_roles"),
                   databases=kwargs["cnpg_databases"])
