"""Read-modify-write of Cluster.spec.managed.roles, shared by every PgRoleRequest of a cluster.

The list is atomic for the API server (no list-map merge), so each write replaces it whole. Two
guards keep concurrent requests from losing each other's entries:
- inside this process, edits for one Cluster are queued and applied together by one writer task,
  so 50 requests arriving at once cost one GET and one PATCH, not 50 racing ones;
- across processes (another writer, a GitOps tool, CNPG itself), each PATCH carries the
  resourceVersion that was read, the API server answers 409 when it is stale, and the whole
  batch is re-read and re-applied.

Ownership: an entry of managed.roles cannot carry an ownerReference, so the Cluster carries the
record instead: the annotation `cnpg-mcp.io/managed-role-owners` maps each role name to the UID of
the PgRoleRequest that produced its entry. The record is written in the same PATCH (same
resourceVersion) as the list itself, so an entry and its owner appear and disappear together:
a crash between two writes cannot leave an entry without its owner or the other way round.
Only the recorded owner may change or remove an entry; a request that never produced one
(Conflict, PolicyDenied, Invalid, ClusterNotFound) finds no record of itself and touches nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cnpg_mcp_api import constants
from cnpg_mcp_operator.k8s import CLUSTERS, Api, retry_on_conflict

log = logging.getLogger(__name__)

Json = dict[str, Any]
CLUSTER_MISSING = "cluster-missing"
OWNERS_ANNOTATION = f"{constants.GROUP}/managed-role-owners"


@dataclass(frozen=True)
class ManagedRoles:
    """Cluster.spec.managed.roles and who produced each entry (role name → PgRoleRequest UID)."""

    roles: list[Json]
    owners: dict[str, str]

    def entry(self, role: str) -> Json | None:
        return next((dict(r) for r in self.roles if r.get("name") == role), None)


# An edit gets the current state and returns the new state and a short outcome for its caller.
Edit = Callable[[ManagedRoles], tuple[ManagedRoles, str]]


def role_owners(cluster: Mapping[str, Any] | None) -> dict[str, str]:
    """The ownership record on a Cluster; an unreadable record owns nothing (so nothing is dropped)."""
    raw = (((cluster or {}).get("metadata") or {}).get("annotations") or {}).get(OWNERS_ANNOTATION)
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        log.warning("annotation %s is not JSON; treating every managed role as not ours", OWNERS_ANNOTATION)
        return {}
    if not isinstance(parsed, dict):
        return {}
    return {str(role): str(uid) for role, uid in parsed.items()}


def managed_roles_of(cluster: Mapping[str, Any] | None) -> ManagedRoles:
    roles = list((((cluster or {}).get("spec") or {}).get("managed") or {}).get("roles") or [])
    return ManagedRoles(roles=roles, owners=role_owners(cluster))


def owners_annotation_value(owners: Mapping[str, str]) -> str | None:
    """The annotation's value (None removes it when nothing is owned)."""
    return json.dumps(dict(sorted(owners.items())), separators=(",", ":")) if owners else None


@dataclass
class _Pending:
    edits: list[tuple[Edit, asyncio.Future[str]]] = field(default_factory=list)


class ManagedRolesWriter:
    def __init__(self, api: Api) -> None:
        self._api = api
        self._pending: dict[tuple[str, str], _Pending] = {}
        self._writers: dict[tuple[str, str], asyncio.Task[None]] = {}

    async def edit(self, namespace: str, cluster: str, edit: Edit) -> str:
        """Applies `edit` to the Cluster's managed roles; returns its outcome, or CLUSTER_MISSING."""
        key = (namespace, cluster)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(key, _Pending()).edits.append((edit, future))
        if key not in self._writers:
            self._writers[key] = asyncio.create_task(self._drain(key),
                                                     name=f"managed-roles {namespace}/{cluster}")
        return await future

    async def _drain(self, key: tuple[str, str]) -> None:
        try:
            while key in self._pending:
                batch = self._pending.pop(key).edits
                try:
                    outcomes = await retry_on_conflict(lambda batch=batch: self._write(key, batch))  # type: ignore[misc]
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            del self._writers[key]

    async def _write(self, key: tuple[str, str], batch: list[tuple[Edit, asyncio.Future[str]]]) -> list[str]:
        namespace, name = key
        cluster = await self._api.get(CLUSTERS, namespace, name)
        if cluster is None or cluster["metadata"].get("deletionTimestamp"):
            return [CLUSTER_MISSING] * len(batch)
        before = managed_roles_of(cluster)
        state, outcomes = before, []
        for edit, _ in batch:
            state, outcome = edit(state)
            outcomes.append(outcome)
        if state != before:
            # One PATCH for the list and its ownership record: both or neither (see the module doc).
            patch = {"metadata": {"resourceVersion": cluster["metadata"]["resourceVersion"],
                                  "annotations": {OWNERS_ANNOTATION: owners_annotation_value(state.owners)}},
                     "spec": {"managed": {"roles": state.roles}}}
            await self._api.patch(CLUSTERS, namespace, name, patch)
            log.info("Cluster %s/%s: managed roles written (%d edits in one write)",
                     namespace, name, len(batch))
        return outcomes
