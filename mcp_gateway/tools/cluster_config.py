"""update_postgres_cluster: configuration changes through the cluster's PgClusterRequest (toolset clusters).

PostgreSQL parameters, pg_hba, resources, storage size, synchronous replication, the major version and the node
maintenance window. The
diff and the effect of each change (reload, restart, in-place major upgrade) come from
cnpg_mcp_api/cluster_changes.py, the same code the operator applies, so the preview is what will happen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import Field

from cnpg_mcp_api import constants
from cnpg_mcp_api.cluster_changes import MAJOR_UPGRADE, RELOAD, RESTART, ClusterChanges, cluster_changes
from cnpg_mcp_api.models import PgClusterRequestSpec
from mcp_gateway import errors, intents, render
from mcp_gateway.gateway import Gateway
from mcp_gateway.registry import ToolSpec, hints
from mcp_gateway.tools import outputs, result
from mcp_gateway.tools.clusters import OPERATOR_ANSWER_SECONDS, ClusterName, DryRun, Namespace, _existing, _poll

PLURAL = constants.CLUSTER_REQUEST_PLURAL
HEADLINES = {
    "online": "No restart is needed.",
    RELOAD: "Applied by a configuration RELOAD: no restart, no downtime.",
    RESTART: "Needs a RESTART of every instance (CloudNativePG restarts replicas first, then the primary: "
             "a short interruption of writes).",
    MAJOR_UPGRADE: "IN-PLACE MAJOR UPGRADE: CloudNativePG STOPS ALL instances and runs pg_upgrade (downtime until "
                   "it finishes); replicas are cloned again afterwards. Take a backup first.",
}


def spec_patch(current: Mapping[str, Any], *, parameters: Mapping[str, str] | None, pg_hba: list[str] | None,
               requests: Mapping[str, str] | None, limits: Mapping[str, str] | None, storage_size: str | None,
               synchronous: Mapping[str, Any], postgres_version: str | None,
               maintenance: Mapping[str, bool] | None = None) -> dict[str, Any]:
    """The merge patch of the request's spec for the arguments given (only those)."""
    patch: dict[str, Any] = {}
    if parameters:
        patch["parameters"] = dict(parameters)
    if pg_hba is not None:
        patch["pgHba"] = list(pg_hba)
    if requests or limits:
        resources = dict(current.get("resources") or {})
        if requests:
            resources["requests"] = {**(resources.get("requests") or {}), **requests}
        if limits:
            resources["limits"] = {**(resources.get("limits") or {}), **limits}
        patch["resources"] = resources
    if storage_size:
        patch["storage"] = {"size": storage_size}
    if synchronous:
        patch["synchronous"] = {**(current.get("synchronous") or {}), **synchronous}
    if postgres_version:
        patch["postgresVersion"] = postgres_version
        if current.get("imageName"):
            patch["imageName"] = None
    if maintenance:
        patch["nodeMaintenanceWindow"] = {**(current.get("nodeMaintenanceWindow") or {}), **maintenance}
    return patch


def merged(current: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """The spec after a merge patch (maps merged one level deep, None removes)."""
    spec = dict(current)
    for key, value in patch.items():
        if value is None:
            spec.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(spec.get(key), Mapping):
            spec[key] = {**spec[key], **value}
        else:
            spec[key] = value
    return spec


def _changes_text(changes: ClusterChanges) -> str:
    return "\n".join(f"- {c.field}: {c.old} → {c.new} ({c.effect}{'; ' + c.why if c.why else ''})"
                     for c in changes.changes)


async def update_postgres_cluster(
    gw: Gateway,
    name: ClusterName,
    parameters: Annotated[dict[str, str] | None, Field(
        description="postgresql.conf parameters to set, e.g. {\"work_mem\": \"64MB\"}; others stay as they are. "
                    "Parameters CloudNativePG fixes (port, ssl*, shared_preload_libraries, …) are refused.")] = None,
    pg_hba: Annotated[list[str] | None, Field(description="pg_hba.conf lines (replace the request's own)")] = None,
    requests: Annotated[dict[str, str] | None, Field(description="Resource requests, e.g. {\"cpu\": \"500m\", "
                                                                 "\"memory\": \"1Gi\"}")] = None,
    limits: Annotated[dict[str, str] | None, Field(description="Resource limits, e.g. {\"memory\": \"2Gi\"}")] = None,
    storage_size: Annotated[str | None, Field(description="New volume size per instance, e.g. 20Gi (grow only)",
                                              pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")] = None,
    synchronous_method: Annotated[Literal["any", "first"] | None, Field(
        description="Synchronous replication: 'any' (quorum) or 'first' (priority)")] = None,
    synchronous_number: Annotated[int | None, Field(ge=1, le=9, description="Synchronous standbys per commit")] = None,
    data_durability: Annotated[Literal["required", "preferred"] | None, Field(
        description="'required' (writes wait for the standbys) or 'preferred'")] = None,
    failover_quorum: Annotated[bool | None, Field(description="Quorum check before a failover")] = None,
    postgres_version: Annotated[str | None, Field(
        description="A higher PostgreSQL major (e.g. 17) for an in-place major upgrade; never lower",
        pattern=r"^[0-9]{2}(\.[0-9]+)?$")] = None,
    confirm_major_upgrade: Annotated[bool, Field(
        description="Must be true to start a major upgrade (all instances stop while pg_upgrade runs)")] = False,
    maintenance_in_progress: Annotated[bool | None, Field(
        description="Node maintenance window: true while Kubernetes nodes are drained (CloudNativePG lets "
                    "them drain), false when it is over")] = None,
    reuse_pvc: Annotated[bool | None, Field(
        description="During node maintenance: true (default) an instance waits for its node and keeps its volume; "
                    "false it is recreated elsewhere on a new volume (instances > 1)")] = None,
    namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to change a cluster's configuration: PostgreSQL parameters, pg_hba, CPU/memory, storage size (grow
    only), synchronous replication, the major version (in-place upgrade), or the node maintenance window.
    Says for each change whether PostgreSQL reloads, every instance restarts, or all instances stop for
    pg_upgrade; dry_run shows that without changing anything. Writes the cluster's PgClusterRequest (a
    cluster not created through cnpg-mcp is adopted, owning only what is changed here)."""
    ns = gw.namespace(namespace)
    synchronous = {k: v for k, v in (("method", synchronous_method), ("number", synchronous_number),
                                     ("dataDurability", data_durability), ("failoverQuorum", failover_quorum))
                   if v is not None}
    maintenance = {k: v for k, v in (("inProgress", maintenance_in_progress), ("reusePVC", reuse_pvc))
                   if v is not None}
    async with gw.acting(f"updating cluster {ns}/{name}"):
        cluster, request = await _existing(gw, ns, name)
        if cluster is None:
            raise errors.tool_error(errors.CONFLICT, f"cluster {ns}/{name} is requested but not created yet; "
                                                     "change its configuration once it exists")
        base = request or intents.adoption_intent(
            cluster, instances=int((cluster.get("spec") or {}).get("instances") or 1),
            requested_by=gw.requested_by())
        current = dict(base.get("spec") or {})
        if synchronous and "synchronous" not in current:
            current_live = ((cluster.get("spec") or {}).get("postgresql") or {}).get("synchronous") or {}
            synchronous = {**{k: current_live[k] for k in ("method", "number") if k in current_live}, **synchronous}
        patch = spec_patch(current, parameters=parameters, pg_hba=pg_hba, requests=requests, limits=limits,
                           storage_size=storage_size, synchronous=synchronous, postgres_version=postgres_version,
                           maintenance=maintenance)
        if not patch:
            raise errors.tool_error(errors.INVALID_ARGUMENT, "nothing to change: give parameters, pg_hba, "
                                    "requests/limits, storage_size, synchronous_*, postgres_version or "
                                    "maintenance_in_progress/reuse_pvc")
        new_spec = merged(current, patch)
        intents.validated_spec(PgClusterRequestSpec, new_spec)
        changes = cluster_changes(new_spec, cluster)
        if changes.refusals:
            raise errors.tool_error(errors.REFUSED, f"cluster {ns}/{name} NOT changed: "
                                    + "; ".join(changes.refusals))
        data: dict[str, Any] = {
            "dry_run": dry_run, "applied": False, "name": name, "namespace": ns, "effect": changes.effect,
            "changes": {c.field: {"old": c.old, "new": c.new, "effect": c.effect, "why": c.why}
                        for c in changes.changes}, "adopted": request is None}
        listed = _changes_text(changes)
        if not changes.changes:
            return result(f"Cluster {ns}/{name} already has this configuration; nothing changed.", data)
        headline = HEADLINES[changes.effect or "online"]
        if changes.effect == MAJOR_UPGRADE and not confirm_major_upgrade and not dry_run:
            return result(f"MAJOR UPGRADE NOT STARTED for cluster {ns}/{name}. {headline}\n{listed}\nNothing was "
                          "changed. To proceed, call update_postgres_cluster again with confirm_major_upgrade=true.",
                          data)
        if request is None:
            body = dict(base)
            body["spec"] = new_spec
            await gw.kube.write_intent(PLURAL, ns, body, dry_run=dry_run)
        else:
            await gw.kube.patch_intent(PLURAL, ns, name, {"spec": patch}, dry_run=dry_run)
        if dry_run:
            return result(f"Dry run for cluster {ns}/{name} (validated by the API server, nothing changed). "
                          f"{headline}\n{listed}", data)
        applied, _ = await _poll(lambda: gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, name),
                                    lambda c: c is not None and not cluster_changes(new_spec, c).patch,
                                    OPERATOR_ANSWER_SECONDS)
        state = render.intent_state(await gw.kube.intent_get_or_none(PLURAL, ns, name))
    data.update(applied=applied, request_state=state)
    if not applied:
        why = (state or {}).get("message") or "no answer yet"
        return result(f"PgClusterRequest {ns}/{name} updated, but the operator has NOT applied it to the Cluster "
                      f"yet ({why}).\n{listed}\nCheck with get_cluster_status(namespace=\"{ns}\", name=\"{name}\").",
                      data)
    return result(f"Successfully updated cluster {ns}/{name}: the Cluster now has the new configuration. "
                  f"{headline}\n{listed}\nFollow it with get_cluster_status(namespace=\"{ns}\", name=\"{name}\").",
                  data)


TOOLS = (
    # Destructive: a restart interrupts writes, a major upgrade stops every instance.
    ToolSpec("update_postgres_cluster", "Update PostgreSQL cluster configuration", "clusters",
             hints(read_only=False, destructive=True, idempotent=True), outputs.ClusterUpdated,
             update_postgres_cluster, (errors.NOT_FOUND, errors.INVALID_ARGUMENT, errors.REFUSED, errors.CONFLICT)),
)
