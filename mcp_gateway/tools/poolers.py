"""Pooler tools: list, create, update, delete — reads of CNPG Poolers, writes of PgPoolerRequests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import Field

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import CLUSTER_NAME_PATTERN
from mcp_gateway import errors, intents, render
from mcp_gateway.gateway import Gateway, both
from mcp_gateway.registry import CREATE, DELETE, READ, ToolSpec, hints
from mcp_gateway.tools import outputs, result
from mcp_gateway.tools.clusters import (
    DELETION_WAIT_SECONDS,
    OPERATOR_ANSWER_SECONDS,
    ClusterName,
    DryRun,
    Format,
    Namespace,
    _poll,
)
from mcp_gateway.tools.roles import _require_cluster

PLURAL = constants.POOLER_REQUEST_PLURAL
POOLERS = constants.CNPG_POOLERS
PoolerName = Annotated[str, Field(description="Pooler name (lowercase letters, digits, '-'); also the name of its "
                                              "Service and Deployment, so never a Cluster's name.",
                                  pattern=CLUSTER_NAME_PATTERN, max_length=63)]
PoolerType = Literal["rw", "ro", "r"]
PoolMode = Literal["session", "transaction"]
TYPE_HELP = "'rw' (to the primary), 'ro' (to the replicas) or 'r' (to any instance)"
PARAMETERS_HELP = ("PgBouncer settings from CloudNativePG's allow-list, e.g. {\"default_pool_size\": \"20\", "
                   "\"max_client_conn\": \"500\"}")


def _endpoint(namespace: str, name: str) -> str:
    return f"{name}.{namespace}:5432"


def pooler_entry(namespace: str, pooler: Mapping[str, Any] | None,
                 request: Mapping[str, Any] | None) -> dict[str, Any]:
    """One pooler as the list shows it: CNPG's object when it exists, else what its request asks for."""
    source = pooler or request or {}
    name = str(source["metadata"]["name"])
    spec = source.get("spec") or {}
    cluster = spec.get("cluster")
    bouncer = spec.get("pgbouncer") or {}
    status = (pooler or {}).get("status") or {}
    return {"name": name, "cluster": (cluster or {}).get("name") if isinstance(cluster, Mapping) else cluster,
            "type": spec.get("type"), "instances": spec.get("instances"),
            "ready_instances": status.get("instances") if pooler is not None else None,
            "phase": status.get("phase") or (None if pooler is not None else "Requested, not created yet"),
            "pool_mode": bouncer.get("poolMode"), "paused": bouncer.get("paused"),
            "parameters": dict(bouncer.get("parameters") or {}), "service": _endpoint(namespace, name),
            "managed": request is not None, "request": render.intent_state(request)}


def _row(entry: Mapping[str, Any]) -> str:
    state = entry["request"]
    managed = f"managed ({'Ready' if state['ready'] else state['reason']})" if state else "not managed by cnpg-mcp"
    return (f"- {entry['name']}: cluster {entry['cluster']}, type {entry['type']}, {entry['ready_instances'] or 0}/"
            f"{entry['instances']} PgBouncer instance(s), {entry['phase'] or 'no phase'}, pool mode "
            f"{entry['pool_mode']}; {entry['service']}; {managed}")


async def _clash_with_cluster(gw: Gateway, ns: str, name: str) -> None:
    if await gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, name) is not None or \
            await gw.kube.intent_get_or_none(constants.CLUSTER_REQUEST_PLURAL, ns, name) is not None:
        raise errors.tool_error(errors.INVALID_ARGUMENT, (
            f"a Pooler cannot be named {name!r}: a Cluster of that name exists in {ns!r} (CloudNativePG names the "
            f"Pooler's Service and Deployment after it). Choose another name, e.g. '{name}-pooler-rw'."))


async def list_postgres_poolers(gw: Gateway, namespace: Namespace = None,
                                cluster_name: Annotated[str | None, Field(
                                    description="Only the poolers of this cluster")] = None,
                                format: Format = "text") -> CallToolResult:
    """Use to see the PgBouncer connection poolers of a namespace (or of one cluster) and where to connect.
    Lists the CloudNativePG Poolers with their type, instances, phase and Service, plus requested poolers
    the operator has not created yet."""
    ns = gw.namespace(namespace)
    async with gw.acting(f"listing poolers in {ns}"):
        poolers, request_list = await both(gw.kube.cnpg_list(POOLERS, ns), gw.kube.intent_list(PLURAL, ns))
    requests = {r["metadata"]["name"]: r for r in request_list}
    entries = [pooler_entry(ns, p, requests.pop(p["metadata"]["name"], None)) for p in poolers]
    entries += [pooler_entry(ns, None, r) for r in requests.values()]
    if cluster_name:
        entries = [e for e in entries if e["cluster"] == cluster_name]
    where = f"{render.scope(ns)}" + (f" for cluster {cluster_name!r}" if cluster_name else "")
    data = {"scope": where, "poolers": entries, "count": len(entries)}
    text = (f"No poolers found in {where}." if not entries else
            f"Found {len(entries)} pooler(s) in {where}:\n" + "\n".join(map(_row, entries)))
    return result(text, data, as_json=format == "json")


async def create_postgres_pooler(
    gw: Gateway,
    name: PoolerName, cluster_name: ClusterName,
    type: Annotated[PoolerType, Field(description=TYPE_HELP)] = "rw",
    instances: Annotated[int, Field(ge=1, le=10, description="PgBouncer instances (1-10)")] = 1,
    pool_mode: Annotated[PoolMode, Field(description="'session' (default) or 'transaction'")] = "session",
    parameters: Annotated[dict[str, str] | None, Field(description=PARAMETERS_HELP)] = None,
    paused: Annotated[bool, Field(description="Create it paused (clients wait)")] = False,
    namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to put a PgBouncer connection pooler in front of a cluster (many short connections, connection limits).
    Creates a PgPoolerRequest; the operator creates the CloudNativePG Pooler, and CNPG its Deployment and a
    Service of the same name (clients connect to <name>.<namespace>:5432)."""
    ns = gw.namespace(namespace)
    body = intents.pooler_intent(name, ns, cluster_name, pooler_type=type, instances=instances, pool_mode=pool_mode,
                                 parameters=parameters or {}, paused=paused, requested_by=gw.requested_by())
    async with gw.acting(f"creating pooler {ns}/{name}"):
        await _clash_with_cluster(gw, ns, name)
        await _require_cluster(gw, ns, cluster_name)
        if await gw.kube.intent_get_or_none(PLURAL, ns, name) is not None or \
                await gw.kube.cnpg_get_or_none(POOLERS, ns, name) is not None:
            raise errors.tool_error(errors.ALREADY_EXISTS, f"a pooler {name!r} already exists in {ns!r}; "
                                                           "use update_postgres_pooler or pick another name")
        created = await gw.kube.write_intent(PLURAL, ns, body, dry_run=dry_run)
    manifest = {k: created[k] for k in ("apiVersion", "kind", "spec")}
    data: dict[str, Any] = {"dry_run": dry_run, "created": not dry_run, "name": name,
                            "cluster": f"{ns}/{cluster_name}", "request": f"{PLURAL}/{name}", "manifest": manifest}
    if dry_run:
        return result(f"Dry run: PgPoolerRequest {ns}/{name} (validated by the API server, nothing created):\n"
                      f"```yaml\n{render.manifests_yaml([manifest])}```", data)
    async with gw.acting(f"reading pooler request {ns}/{name}"):
        _, request = await _poll(lambda: gw.kube.intent_get_or_none(PLURAL, ns, name),
                                 lambda r: bool(((r or {}).get("status") or {}).get("poolerUID"))
                                 or render.ready_condition(r).get("reason") in ("Conflict", "Invalid",
                                                                                 "ClusterNotFound"),
                                 OPERATOR_ANSWER_SECONDS)
    status = (request or {}).get("status") or {}
    data.update(pooler_created=bool(status.get("poolerUID")), message=status.get("message"))
    if not data["pooler_created"]:
        return result(f"PgPoolerRequest {ns}/{name} created, but the operator has NOT created the Pooler yet "
                      f"({status.get('message') or 'no status yet'}). Check with list_postgres_poolers.", data)
    data["service"] = _endpoint(ns, name)
    return result(f"Successfully created PgPoolerRequest {ns}/{name}; the operator created Pooler {name} for cluster "
                  f"'{ns}/{cluster_name}' ({type}, {instances} instance(s), pool mode {pool_mode}"
                  f"{', paused' if paused else ''}). Clients connect to {data['service']} once CNPG reports it "
                  f"active ({status.get('message')}).", data)


def _changes(spec: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    bouncer_now = spec.get("pgbouncer") or {}
    changes = {k: {"old": spec.get(k), "new": v} for k, v in patch.items() if k != "pgbouncer"}
    bouncer = patch.get("pgbouncer") or {}
    changes.update({k: {"old": bouncer_now.get(k), "new": v} for k, v in bouncer.items() if k != "parameters"})
    params_now = bouncer_now.get("parameters") or {}
    changes.update({f"parameters.{k}": {"old": params_now.get(k), "new": v}
                    for k, v in (bouncer.get("parameters") or {}).items()})
    return changes


async def update_postgres_pooler(
    gw: Gateway,
    name: PoolerName,
    type: Annotated[PoolerType | None, Field(description=TYPE_HELP)] = None,
    instances: Annotated[int | None, Field(ge=0, le=10, description="PgBouncer instances (0 stops it)")] = None,
    pool_mode: Annotated[PoolMode | None, Field(description="'session' or 'transaction'")] = None,
    paused: Annotated[bool | None, Field(description="true: PAUSE PgBouncer (clients wait); false: resume")] = None,
    parameters: Annotated[dict[str, str] | None, Field(description="PgBouncer settings to set; others stay. "
                                                                   + PARAMETERS_HELP)] = None,
    remove_parameters: Annotated[list[str] | None, Field(description="PgBouncer settings to drop")] = None,
    namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to change a pooler that cnpg-mcp manages: instances, type, pool mode, PgBouncer parameters, or
    pause/resume it (pausing makes clients wait until it resumes).
    Patches its PgPoolerRequest; only what is given changes."""
    ns = gw.namespace(namespace)
    async with gw.acting(f"updating pooler {ns}/{name}"):
        request = await gw.kube.intent_get_or_none(PLURAL, ns, name)
        if request is None:
            why = ("it exists but is not managed by cnpg-mcp" if await gw.kube.cnpg_get_or_none(POOLERS, ns, name)
                   is not None else "no such pooler")
            raise errors.tool_error(errors.NOT_FOUND, f"pooler {name!r} in {ns!r} cannot be updated: {why} "
                                                      "(list_postgres_poolers shows them)")
        spec = request.get("spec") or {}
        patch = intents.pooler_update_patch(spec, pooler_type=type, instances=instances, pool_mode=pool_mode,
                                            paused=paused, set_parameters=parameters or {},
                                            remove_parameters=list(remove_parameters or []))
        if patch:
            await gw.kube.patch_intent(PLURAL, ns, name, patch, dry_run=dry_run)
    changes = _changes(spec, patch.get("spec") or {})
    data = {"dry_run": dry_run, "changed": bool(changes) and not dry_run, "name": name, "changes": changes}
    listed = "\n".join(f"- {k}: {c['old']} → {c['new']}" for k, c in changes.items())
    if not changes:
        return result(f"Pooler {ns}/{name} already is as asked; nothing changed.", data)
    if dry_run:
        return result(f"Dry run: pooler {ns}/{name} would change (nothing changed):\n{listed}", data)
    return result(f"Successfully updated PgPoolerRequest {ns}/{name}; the operator applies it to the Pooler:\n"
                  f"{listed}\nCheck with list_postgres_poolers(namespace=\"{ns}\").", data)


async def delete_postgres_pooler(
    gw: Gateway,
    name: PoolerName,
    confirm_deletion: Annotated[bool, Field(description="Must be true to really delete")] = False,
    namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use only when the user wants a pooler gone: clients connected through it lose their connections.
    Without confirm_deletion=true nothing is deleted and the tool says what would go. Deletes its
    PgPoolerRequest; the Pooler, its Deployment and Service go with it (the cluster and its data stay)."""
    ns = gw.namespace(namespace)
    async with gw.acting(f"deleting pooler {ns}/{name}"):
        request, pooler = await both(gw.kube.intent_get_or_none(PLURAL, ns, name),
                                     gw.kube.cnpg_get_or_none(POOLERS, ns, name))
        if request is None:
            why = "it is not managed by cnpg-mcp" if pooler is not None else "no such pooler"
            raise errors.tool_error(errors.NOT_FOUND, f"pooler {name!r} in {ns!r} cannot be deleted: {why} "
                                                      "(list_postgres_poolers shows them)")
        cluster = (request.get("spec") or {}).get("cluster")
        data: dict[str, Any] = {"dry_run": dry_run, "deleted": False, "name": name, "cluster": cluster}
        what = (f"Pooler {ns}/{name} of cluster {cluster!r} with its Deployment and Service {name} (clients "
                "connected through it are cut off; the cluster and its data stay)")
        if dry_run:
            return result(f"Dry run: deleting would remove {what}. Nothing was deleted.", data)
        if not confirm_deletion:
            return result(f"DELETION NOT CONFIRMED: deleting pooler '{ns}/{name}' would remove {what}.\nNOTHING was "
                          f"deleted. To delete, call delete_postgres_pooler again with name='{name}', "
                          f"namespace='{ns}', confirm_deletion=true.", data)
        await gw.kube.delete_intent(PLURAL, ns, name)
        gone, _ = await _poll(lambda: gw.kube.cnpg_get_or_none(POOLERS, ns, name), lambda p: p is None,
                              DELETION_WAIT_SECONDS if pooler is not None else 0)
    data.update(deleted=gone, deletion_requested=True)
    if gone:
        return result(f"Successfully deleted pooler '{ns}/{name}': {what}.", data)
    return result(f"Successfully initiated deletion of pooler '{ns}/{name}'; the Pooler still exists after "
                  f"{DELETION_WAIT_SECONDS:.0f}s, deletion continues. Check with list_postgres_poolers.", data)


TOOLS = (
    ToolSpec("list_postgres_poolers", "List connection poolers", "poolers", READ, outputs.PoolerList,
             list_postgres_poolers),
    ToolSpec("create_postgres_pooler", "Create connection pooler", "poolers", CREATE, outputs.PoolerCreated,
             create_postgres_pooler, (errors.NOT_FOUND, errors.ALREADY_EXISTS, errors.INVALID_ARGUMENT)),
    # Destructive: pausing holds every client, fewer instances or a new type cut connections.
    ToolSpec("update_postgres_pooler", "Update connection pooler", "poolers",
             hints(read_only=False, destructive=True, idempotent=True), outputs.PoolerUpdated,
             update_postgres_pooler, (errors.NOT_FOUND, errors.INVALID_ARGUMENT)),
    ToolSpec("delete_postgres_pooler", "Delete connection pooler", "poolers", DELETE, outputs.PoolerDeleted,
             delete_postgres_pooler, (errors.NOT_FOUND,)),
)
