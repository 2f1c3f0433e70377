"""Cluster tools: list, status, create, scale, delete — reads of CNPG Clusters, writes of PgClusterRequests."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

import anyio
from kubernetes.client.exceptions import ApiException
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import CLUSTER_NAME_PATTERN
from mcp_gateway import errors, intents, render
from mcp_gateway.gateway import Gateway, both
from mcp_gateway.registry import CREATE, DELETE, READ, ToolSpec, hints
from mcp_gateway.tools import digest, outputs, paging, result

PLURAL = constants.CLUSTER_REQUEST_PLURAL
# How long a tool waits for the operator's answer before it reports the request's real state instead.
OPERATOR_ANSWER_SECONDS = 20.0
DELETION_WAIT_SECONDS = 60.0
T = TypeVar("T")
ClusterName = Annotated[str, Field(description="Cluster name (lowercase letters, digits, '-').",
                                   pattern=CLUSTER_NAME_PATTERN, max_length=50)]
Namespace = Annotated[str | None, Field(
    description="Namespace; default: the gateway's service-account namespace, else the kube context's, "
                "else 'default'.")]
DetailLevel = Annotated[Literal["concise", "detailed"], Field(description="'concise' (default) or 'detailed'")]
Format = Annotated[Literal["text", "json"], Field(description="'text' (default) or 'json' for programs")]
DryRun = Annotated[bool, Field(description="Preview exactly what would be applied; nothing is created.")]


async def _ready_wait(gw: Gateway, ctx: Context, namespace: str, name: str, timeout: float) -> dict[str, Any]:
    """Follow the request's status until Ready (or the timeout), reporting progress from it."""
    deadline = time.monotonic() + timeout
    last_message = None
    step = 0
    while True:
        request = await gw.kube.intent_get_or_none(PLURAL, namespace, name)
        status = (request or {}).get("status") or {}
        ready = render.ready_condition(request)
        message = status.get("message") or status.get("phase") or "waiting for the operator"
        if message != last_message:
            step += 1
            ready_count, wanted = status.get("readyInstances") or 0, status.get("instances") or 0
            await ctx.report_progress(min(ready_count, wanted), wanted or None, f"{name}: {message}")
            last_message = message
        if ready.get("status") == "True":
            return {"ready": True, "status": status}
        if time.monotonic() >= deadline:
            return {"ready": False, "status": status}
        await anyio.sleep(1.0)


async def _poll(read: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout: float) -> tuple[bool, T]:
    """Read until `done` (True) or the timeout (False), returning the last value read."""
    deadline = time.monotonic() + timeout
    while True:
        value = await read()
        if done(value) or time.monotonic() >= deadline:
            return done(value), value
        await anyio.sleep(0.5)


def _produced_uid(request: dict[str, Any] | None) -> str | None:
    """The UID of the Cluster the operator produced or adopted for this request (None: not yet)."""
    uid = ((request or {}).get("status") or {}).get("clusterUID")
    return str(uid) if uid else None


def _manages(request: dict[str, Any], cluster: dict[str, Any]) -> bool:
    """Does this request manage this Cluster (so deleting the request with Delete deletes it)?"""
    labels = cluster["metadata"].get("labels") or {}
    return bool(labels.get(constants.REQUEST_LABEL) == request["metadata"]["name"]
                and _produced_uid(request) in (None, cluster["metadata"]["uid"]))


async def _adopt_for_deletion(gw: Gateway, cluster: dict[str, Any]) -> dict[str, Any]:
    """Have the operator take over an unmanaged Cluster (it is the only one that deletes Clusters).

    The adoption request owns nothing but the current instance count (no change), with Retain, so
    giving up is harmless: the request is removed again and the Cluster stays as it was.
    """
    meta = cluster["metadata"]
    ns, name = meta["namespace"], meta["name"]
    body = intents.adoption_intent(cluster, instances=int((cluster.get("spec") or {}).get("instances") or 1),
                                   requested_by=gw.requested_by())
    await gw.kube.write_intent(PLURAL, ns, body)
    adopted, request = await _poll(lambda: gw.kube.intent_get_or_none(PLURAL, ns, name),
                                   lambda r: _produced_uid(r) is not None or _refused(r), OPERATOR_ANSWER_SECONDS)
    if adopted and _produced_uid(request) == meta["uid"]:
        assert request is not None
        return request
    await gw.kube.delete_intent(PLURAL, ns, name)
    why = ((request or {}).get("status") or {}).get("message") or f"no answer from the operator in " \
        f"{OPERATOR_ANSWER_SECONDS:.0f}s"
    raise errors.tool_error(errors.CONFLICT, (
        f"Cluster {ns}/{name} was NOT deleted: it is not managed by cnpg-mcp and the operator could not take it "
        f"over to delete it ({why}). Nothing was changed; delete it with kubectl if you own it."))


async def _existing(gw: Gateway, ns: str, name: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The Cluster and its PgClusterRequest (either may be missing, not both: NOT_FOUND)."""
    cluster = await gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, name)
    request = await gw.kube.intent_get_or_none(PLURAL, ns, name)
    if cluster is None and request is None:
        raise errors.tool_error(errors.NOT_FOUND, f"no cluster {name!r} in namespace {ns!r}")
    return cluster, request


def _refused(request: dict[str, Any] | None) -> bool:
    return render.ready_condition(request).get("reason") in ("Conflict", "Invalid")



async def _recoverability(gw: Gateway, cluster: dict[str, Any]) -> dict[str, Any] | None:
    """The recoverability window: read from the ObjectStore archiving the cluster's WAL (Barman Cloud plugin)."""
    found = digest.archive_store(cluster)
    if found is None:
        return digest.recoverability(cluster, None)
    ns = cluster["metadata"]["namespace"]
    try:
        async with gw.acting(f"reading ObjectStore {ns}/{found[0]}"):
            store = await gw.kube.get_or_none(constants.BARMAN_GROUP, constants.BARMAN_VERSION,
                                              constants.BARMAN_OBJECT_STORES, ns, found[0])
    except ToolError as exc:  # e.g. FORBIDDEN, or no ObjectStore CRD: the digest does without the window
        return digest.recoverability(cluster, None, unreadable=str(exc))
    return digest.recoverability(cluster, store)


async def list_postgres_clusters(gw: Gateway, namespace: Namespace = None, detail_level: DetailLevel = "concise",
                                 format: Format = "text", limit: paging.Limit = paging.DEFAULT_LIMIT,
                                 continue_: paging.Continue = None) -> CallToolResult:
    """Use to see which PostgreSQL clusters exist in a namespace before acting on one.
    Lists the CloudNativePG Clusters with their health and whether cnpg-mcp manages them, plus requested
    clusters the operator has not created yet: one page of `limit` in name order, the count of all of them
    per phase, and 'continue' for the next page."""
    ns = gw.namespace(namespace)
    async with gw.acting(f"listing clusters in {ns}"):
        clusters, request_list = await both(gw.kube.cnpg_list(constants.CNPG_CLUSTERS, ns),
                                            gw.kube.intent_list(PLURAL, ns))
        requests = {r["metadata"]["name"]: r for r in request_list}
    detailed = detail_level == "detailed"
    pairs: list[tuple[dict[str, Any] | None, dict[str, Any] | None]] = [
        (c, requests.pop(c["metadata"]["name"], None)) for c in clusters]
    pairs += [(None, r) for r in requests.values()]
    shown = paging.page(pairs, lambda pair: str((pair[0] or pair[1] or {})["metadata"]["name"]), limit, continue_)
    summaries = [render.cluster_summary(c, r, detailed=detailed) for c, r in shown.items]
    phases = paging.tally([{"phase": _phase(c, r)} for c, r in pairs], "phase")
    data: dict[str, Any] = {"clusters": summaries, "count": len(summaries), "scope": render.scope(ns),
                            "total": shown.total, "phases": phases}
    if shown.next:
        data["continue"] = shown.next
    if not summaries:
        text = f"No PostgreSQL clusters found in {render.scope(ns)}" + (" after that page." if continue_ else ".")
    else:
        where = f"{shown.total} PostgreSQL cluster(s) in {render.scope(ns)}"
        text = (f"Found {where}:\n" if shown.total == len(summaries) else
                f"Found {where} ({', '.join(f'{n} {p}' for p, n in phases.items())}); these {len(summaries)}:\n") + (
            "\n" + "\n\n".join(map(render.cluster_text, summaries)) if detailed else
            "\n".join(map(render.cluster_row, summaries)) + "\nget_cluster_status(name=…) gives one's digest.")
        text += paging.more("list_postgres_clusters", shown, namespace=ns)
    return result(text, data, as_json=format == "json")


def _phase(cluster: dict[str, Any] | None, request: dict[str, Any] | None) -> str:
    """The phase list_postgres_clusters reports for one cluster: what the summary counts over all pages."""
    return str(render.cluster_summary(cluster, request, detailed=False)["phase"])


async def get_cluster_status(gw: Gateway, name: ClusterName, namespace: Namespace = None,
                             detail_level: DetailLevel = "concise", format: Format = "text") -> CallToolResult:
    """Use to check one cluster's health or follow a change (creation, scaling, deletion).
    Reports a one-line verdict with the next thing to check, phase and reason, each instance (role,
    status, timeline), current/target primary, key conditions (Ready, archiving, backups, hibernation),
    managed roles, certificate expiry, the backups' recoverability window, newest events, version and
    storage; detailed adds all conditions,
    parameters and more events, plus the state of its PgClusterRequest."""
    ns = gw.namespace(namespace)
    detailed = detail_level == "detailed"

    async def newest_events() -> list[dict[str, Any]] | None:
        async with gw.acting(f"reading events of {ns}/{name}"):
            try:
                return await gw.kube.events_for(ns, name, **({} if detailed else {"limit": 3}))
            except ApiException as exc:  # the concise digest does without events the caller may not list
                if detailed or exc.status != 403:
                    raise
                return None

    async def objects() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        async with gw.acting(f"reading cluster {ns}/{name}"):
            return await both(gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, name),
                              gw.kube.intent_get_or_none(PLURAL, ns, name))

    # The three reads at once: the tool costs one round trip, not two in a row.
    (cluster, request), events = await both(objects(), newest_events())
    if cluster is None and request is None:
        raise errors.tool_error(errors.NOT_FOUND, f"no cluster {name!r} in namespace {ns!r}; "
                                                  "list_postgres_clusters shows what exists")
    summary = render.cluster_summary(cluster, request, detailed=detailed, full=True)
    # The window needs the Cluster (which ObjectStore archives it): a second read, only when it archives.
    window = await _recoverability(gw, cluster) if cluster is not None else None
    summary.update(digest.digest(cluster, window=window))
    if events is not None:
        summary["events"] = render.event_entries(events)
    return result(render.cluster_text(summary), summary, as_json=format == "json")


async def create_postgres_cluster(
    gw: Gateway,
    name: ClusterName, ctx: Context,
    instances: Annotated[int, Field(ge=1, le=10, description="PostgreSQL instances (1-10)")] = 3,
    storage_size: Annotated[str, Field(description="Storage per instance, e.g. 10Gi")] = "10Gi",
    postgres_version: Annotated[str, Field(description="PostgreSQL major version, e.g. 16")] = "16",
    storage_class: Annotated[str | None, Field(description="StorageClass (cluster default if unset)")] = None,
    wait: Annotated[bool, Field(description="Wait until CNPG reports the cluster ready")] = False,
    timeout: Annotated[int | None, Field(ge=30, le=600, description="Seconds to wait (30-600; default "
                                                                     "60 per instance)")] = None,
    namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to create a new highly available PostgreSQL cluster.
    Creates a PgClusterRequest; the cnpg-mcp operator creates the CloudNativePG Cluster (database 'app'
    owned by 'app', credentials in Secret <name>-app)."""
    ns = gw.namespace(namespace)
    body = intents.cluster_intent(name, ns, instances=instances, storage_size=storage_size,
                                  postgres_version=postgres_version, storage_class=storage_class,
                                  requested_by=gw.requested_by())
    async with gw.acting(f"creating cluster {ns}/{name}"):
        if await gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, name) is not None:
            raise errors.tool_error(errors.ALREADY_EXISTS, f"a Cluster {name!r} already exists in {ns!r}; "
                                    "use scale_postgres_cluster or pick another name")
        created = await gw.kube.write_intent(PLURAL, ns, body, dry_run=dry_run)
    applied = {"apiVersion": created["apiVersion"], "kind": created["kind"],
               "metadata": {"name": name, "namespace": ns}, "spec": created["spec"]}
    if dry_run:
        text = (f"Dry run: PgClusterRequest for '{name}' in namespace '{ns}' (validated by the API server, "
                f"nothing created):\n```yaml\n{render.manifests_yaml([applied])}```")
        return result(text, {"dry_run": True, "created": False, "manifest": applied})
    data: dict[str, Any] = {"dry_run": False, "created": True, "name": name, "namespace": ns,
                            "request": f"{PLURAL}/{name}", "app_secret": f"{name}-app"}
    configuration = (f"\n\nConfiguration:\n- Instances: {instances}\n- PostgreSQL Version: {postgres_version}"
                     f"\n- Storage Size: {storage_size}"
                     + (f"\n- Storage Class: {storage_class}" if storage_class else ""))
    if wait:
        limit = float(timeout or min(600, max(30, instances * 60)))
        waited_from = time.monotonic()
        outcome = await _ready_wait(gw, ctx, ns, name, limit)
        data.update(ready=outcome["ready"], waited_seconds=round(time.monotonic() - waited_from, 1))
        status = outcome["status"]
        if outcome["ready"]:
            text = (f"Successfully created PostgreSQL cluster '{name}' in namespace '{ns}' (PgClusterRequest "
                    f"{ns}/{name}).{configuration}\n- Current Primary: {status.get('currentPrimary')}\n\n"
                    f"Status: {status.get('phase')}\nCluster is operational and ready for connections! "
                    f"Time elapsed: {data['waited_seconds']} seconds.\n"
                    f"Password: {render.secret_hint(name + '-app', ns)}")
            return result(text, data)
    else:
        _, request = await _poll(lambda: gw.kube.intent_get_or_none(PLURAL, ns, name),
                                 lambda r: _produced_uid(r) is not None or _refused(r), OPERATOR_ANSWER_SECONDS)
        status = (request or {}).get("status") or {}
    data["cluster_created"] = _produced_uid({"status": status}) is not None
    if not data["cluster_created"]:
        text = (f"PgClusterRequest {ns}/{name} created, but the operator has NOT created PostgreSQL cluster "
                f"'{name}' yet ({status.get('message') or 'no status yet'}).{configuration}\n\n"
                f"Check with get_cluster_status(namespace=\"{ns}\", name=\"{name}\").")
    elif wait:
        text = (f"Cluster '{name}' created but TIMED OUT waiting for it to become operational "
                f"({status.get('message') or 'no status'}); the cluster was NOT removed.{configuration}\n\n"
                f"Timeout: {limit:.0f} seconds elapsed. Check status with "
                f"get_cluster_status(namespace=\"{ns}\", name=\"{name}\").")
    else:
        text = (f"Successfully created PostgreSQL cluster '{name}' in namespace '{ns}' (PgClusterRequest "
                f"{ns}/{name}).{configuration}\n\nThe cluster is now being provisioned. You can monitor its "
                f"status using: get_cluster_status(namespace=\"{ns}\", name=\"{name}\")\n"
                f"Application credentials will be in Secret {name}-app.")
    return result(text, data)

async def scale_postgres_cluster(
    gw: Gateway,
    name: ClusterName,
    instances: Annotated[int, Field(ge=1, le=10, description="New number of instances (1-10)")],
    namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to change the number of PostgreSQL instances of a cluster (scaling down removes instances).
    A cluster not created through cnpg-mcp is adopted into a PgClusterRequest (owning only its instance
    count, deletionPolicy Retain) instead of being edited."""
    ns = gw.namespace(namespace)
    async with gw.acting(f"scaling cluster {ns}/{name}"):
        cluster, request = await _existing(gw, ns, name)
        current = (((cluster or {}).get("spec") or {}).get("instances")
                   or ((request or {}).get("spec") or {}).get("instances") or 3)
        if request is None:
            assert cluster is not None
            body = intents.adoption_intent(cluster, instances=instances, requested_by=gw.requested_by())
            written = await gw.kube.write_intent(PLURAL, ns, body, dry_run=dry_run)
            action = "adopted into a new PgClusterRequest (it owns only the instance count; Retain)"
        else:
            written = await gw.kube.patch_intent(PLURAL, ns, name, {"spec": {"instances": instances}},
                                                 dry_run=dry_run)
            action = "PgClusterRequest updated"
    change = instances - int(current)
    delta = (f"{change} instance(s) will be added" if change > 0 else
             f"{-change} instance(s) will be removed" if change < 0 else "no change in instance count")
    direction = "up" if change > 0 else "down" if change < 0 else "(unchanged)"
    data = {"dry_run": dry_run, "name": name, "namespace": ns, "current_instances": current,
            "instances": instances, "adopted": request is None, "spec": written["spec"]}
    scaling = f"Scaling cluster '{ns}/{name}' from {current} to {instances} instances ({direction}; {delta})"
    if dry_run:
        return result(f"Dry run: Scaling operation for cluster '{ns}/{name}' (nothing changed).\n"
                      f"{scaling}; would be done by: {action}.", data)
    return result(f"Successfully initiated scaling of cluster '{ns}/{name}' to {instances} instance(s).\n"
                  f"{scaling}: {action}; the operator applies it and CNPG performs a rolling update.\n"
                  f"Monitor the scaling progress with: get_cluster_status(namespace=\"{ns}\", name=\"{name}\")",
                  data)


async def delete_postgres_cluster(
    gw: Gateway,
    name: ClusterName,
    confirm_deletion: Annotated[bool, Field(description="Must be true to really delete")] = False,
    namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use only when the user wants a PostgreSQL cluster AND ITS DATA gone for good.
    Without confirm_deletion=true nothing is deleted and the tool explains what would go. The
    PgClusterRequest is switched to deletionPolicy Delete and removed; the operator then deletes the
    Cluster; roles, databases and Secrets it produced go with it."""
    ns = gw.namespace(namespace)
    async with gw.acting(f"deleting cluster {ns}/{name}"):
        cluster, request = await _existing(gw, ns, name)
        roles = [r["metadata"]["name"] for r in await gw.kube.intent_list(constants.ROLE_REQUEST_PLURAL, ns)
                 if r["spec"].get("cluster") == name]
        databases = [d["metadata"]["name"] for d in
                     await gw.kube.intent_list(constants.DATABASE_REQUEST_PLURAL, ns)
                     if d["spec"].get("cluster") == name]
        spec = (cluster or {}).get("spec") or {}
        size = (spec.get("storage") or {}).get("size", "?")
        data: dict[str, Any] = {"name": name, "namespace": ns, "deleted": False, "dry_run": dry_run,
                                "instances": spec.get("instances"), "storage_per_instance": size,
                                "role_requests": roles, "database_requests": databases,
                                "adopted": request is None}
        what = (f"Cluster {ns}/{name} ({spec.get('instances', '?')} instance(s) × {size}; all data), "
                f"{len(roles)} role request(s) and {len(databases)} database request(s) targeting it")
        if dry_run:
            return result(f"Dry run: Deletion preview for cluster '{ns}/{name}': deleting would remove {what}. "
                          "Nothing was deleted.", data)
        if not confirm_deletion:
            return result(f"DELETION NOT CONFIRMED: deleting cluster '{ns}/{name}' would remove {what}. "
                          "This is DESTRUCTIVE and IRREVERSIBLE.\nNOTHING was deleted. To delete, call "
                          f"delete_postgres_cluster again with name='{name}', namespace='{ns}', "
                          "confirm_deletion=true.", data)
        if cluster is not None and request is not None and not _manages(request, cluster):
            raise errors.tool_error(errors.CONFLICT, (
                f"Cluster {ns}/{name} was NOT deleted: PgClusterRequest {name} does not manage it "
                f"({render.intent_state(request) or {}}); set spec.adoptExisting on the request first"))
        if request is None:
            assert cluster is not None
            request = await _adopt_for_deletion(gw, cluster)
        for role in roles:
            await gw.kube.delete_intent(constants.ROLE_REQUEST_PLURAL, ns, role, missing_ok=True)
        for database in databases:
            await gw.kube.delete_intent(constants.DATABASE_REQUEST_PLURAL, ns, database, missing_ok=True)
        await gw.kube.patch_intent(PLURAL, ns, name, {"spec": {"deletionPolicy": "Delete"}})
        await gw.kube.delete_intent(PLURAL, ns, name)
        gone, left = await _poll(lambda: gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, name),
                                 lambda c: c is None, DELETION_WAIT_SECONDS if cluster is not None else 0)
    data.update(deleted=gone, deletion_requested=True)
    requests_removed = (f"Removed {len(roles)} role request(s) and {len(databases)} database request(s); the "
                        "operator deletes their Secrets.")
    if gone:
        return result(f"Successfully deleted cluster '{ns}/{name}': {what} — all data is gone.\n"
                      f"{requests_removed}", data)
    phase = ((left or {}).get("status") or {}).get("phase") or "no phase"
    return result(f"Successfully initiated deletion of cluster '{ns}/{name}'; it still exists after "
                  f"{DELETION_WAIT_SECONDS:.0f}s ({phase}), deletion continues.\n{requests_removed}\n"
                  f"Check deletion progress with get_cluster_status(namespace=\"{ns}\", name=\"{name}\"); "
                  "the cluster no longer appears in list_postgres_clusters once deletion is complete.", data)



TOOLS = (
    ToolSpec("list_postgres_clusters", "List PostgreSQL clusters", "clusters", READ, outputs.ClusterList,
             list_postgres_clusters),
    ToolSpec("get_cluster_status", "Get cluster status", "clusters", READ, outputs.ClusterSummary,
             get_cluster_status, (errors.NOT_FOUND,)),
    ToolSpec("create_postgres_cluster", "Create PostgreSQL cluster", "clusters", CREATE, outputs.ClusterCreated,
             create_postgres_cluster, (errors.ALREADY_EXISTS,)),
    # Destructive: scaling down removes instances (and their volumes).
    ToolSpec("scale_postgres_cluster", "Scale PostgreSQL cluster", "clusters",
             hints(read_only=False, destructive=True, idempotent=True), outputs.ClusterScaled,
             scale_postgres_cluster, (errors.NOT_FOUND,)),
    ToolSpec("delete_postgres_cluster", "Delete PostgreSQL cluster and its data", "clusters", DELETE,
             outputs.ClusterDeleted, delete_postgres_cluster, (errors.NOT_FOUND, errors.CONFLICT)),
)
