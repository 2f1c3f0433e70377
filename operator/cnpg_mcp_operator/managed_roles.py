"""Read-modify-write of Cluster.spec.managed.roles, shared by every PgRoleRequest of a cluster.

The list is atomic for the API server (no list-map merge), so each write replaces it whole. Two
guards keep concurrent requests from losing each other's entries:
- inside this process, edits for one Cluster are queued and applied together by one writer task,
  so 50 requests arriving at once cost one GET and one PATCH, not 50 racing ones;
- across processes (another writer, a GitOps tool, CNPG itself), each PATCH carries the
  resourceVersion that was read, the API server answers 409 when it is stale, and the whole
  batch is re-read and re-applied.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cnpg_mcp_operator.k8s import CLUSTERS, Api, retry_on_conflict

log = logging.getLogger(__name__)

Json = dict[str, Any]
# An edit gets the current list and returns the new list and a short outcome for its caller.
Edit = Callable[[list[Json]], tuple[list[Json], str]]
CLUSTER_MISSING = "cluster-missing"


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
        before: list[Json] = list(((cluster.get("spec") or {}).get("managed") or {}).get("roles") or [])
        roles, outcomes = before, []
        for edit, _ in batch:
            roles, outcome = edit(roles)
            outcomes.append(outcome)
        if roles != before:
            patch = {"metadata": {"resourceVersion": cluster["metadata"]["resourceVersion"]},
                     "spec": {"managed": {"roles": roles}}}
            await self._api.patch(CLUSTERS, namespace, name, patch)
            log.info("Cluster %s/%s: managed roles written (%d edits in one write)",
                     namespace, name, len(batch))
        return outcomes
