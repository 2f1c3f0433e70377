"""Cluster tools: list, status, create, scale, delete — reads of CNPG Clusters, writes of PgClusterRequests."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import anyio
from mcp.server import MCPServer
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import CLUSTER_NAME_PATTERN
from mcp_gateway import errors, intents, render
from mcp_gateway.gateway import Gateway, both
from mcp_gateway.tools import result

PLURAL = constants.CLUSTER_REQUEST_PLURAL
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


def register(mcp: MCPServer, gw: Gateway, *, writes: bool, deletes: bool) -> None:
    read = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

    async def list_postgres_clusters(namespace: Namespace = None, detail_level: DetailLevel = "concise",
                                     format: Format = "text") -> CallToolResult:
        """List the PostgreSQL clusters (CloudNativePG Clusters) of a namespace, with health and whether
        cnpg-mcp manages them. Also shows requested clusters the operator has not created yet."""
        ns = gw.namespace(namespace)
        async with gw.acting(f"listing clusters in {ns}"):
            clusters, request_list = await both(gw.kube.cnpg_list(constants.CNPG_CLUSTERS, ns),
                                                gw.kube.intent_list(PLURAL, ns))
            requests = {r["metadata"]["name"]: r for r in request_list}
        detailed = detail_level == "detailed"
        summaries = [render.cluster_summary(c, requests.pop(c["metadata"]["name"], None), detailed=detailed)
                     for c in clusters]
        summaries += [render.cluster_summary(None, r, detailed=detailed) for r in requests.values()]
        data = {"clusters": summaries, "count": len(summaries), "scope": render.scope(ns)}
        if not summaries:
            text = f"No PostgreSQL clusters found in {render.scope(ns)}."
        else:
            text = f"Found {len(summaries)} PostgreSQL cluster(s) in {render.scope(ns)}:\n\n" + "\n\n".join(
                render.cluster_text(s) for s in summaries)
        return result(text, data, as_json=format == "json")

    async def get_cluster_status(name: ClusterName, namespace: Namespace = None,
                                 detail_level: DetailLevel = "concise", format: Format = "text") -> CallToolResult:
        """Health of one cluster: phase, ready instances, primary, version, storage, and (detailed) its
        conditions, parameters, managed roles and recent events, plus the state of its PgClusterRequest."""
        ns = gw.namespace(namespace)
        async with gw.acting(f"reading cluster {ns}/{name}"):
            cluster, request = await both(gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, name),
                                          gw.kube.intent_get_or_none(PLURAL, ns, name))
        if cluster is None and request is None:
            raise errors.tool_error(errors.NOT_FOUND, f"no cluster {name!r} in namespace {ns!r}; "
                                                      "list_postgres_clusters shows what exists")
        summary = render.cluster_summary(cluster, request, detailed=detail_level == "detailed", full=True)
        if detail_level == "detailed":
            async with gw.acting(f"reading events of {ns}/{name}"):
                summary["events"] = render.event_entries(await gw.kube.events_for(ns, name))
        return result(render.cluster_text(summary), summary, as_json=format == "json")

    mcp.add_tool(list_postgres_clusters, name="list_postgres_clusters", annotations=read)
    mcp.add_tool(get_cluster_status, name="get_cluster_status", annotations=read)
    if not writes:
        return

    async def create_postgres_cluster(
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
        """Create a highly available PostgreSQL cluster by creating a PgClusterRequest; the cnpg-mcp operator
        creates the CloudNativePG Cluster (database 'app' owned by 'app', credentials in Secret <name>-app)."""
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
        text = (f"PgClusterRequest {ns}/{name} created: {instances} instance(s), {storage_size} each, "
                f"PostgreSQL {postgres_version}. The operator creates the CNPG Cluster; application "
                f"credentials will be in Secret {name}-app.")
        if wait:
            limit = float(timeout or min(600, max(30, instances * 60)))
            waited_from = time.monotonic()
            outcome = await _ready_wait(gw, ctx, ns, name, limit)
            data.update(ready=outcome["ready"], waited_seconds=round(time.monotonic() - waited_from, 1))
            status = outcome["status"]
            if outcome["ready"]:
                text += (f"\nReady after {data['waited_seconds']}s; primary {status.get('currentPrimary')}. "
                         f"Password: {render.secret_hint(name + '-app', ns)}")
            else:
                text += (f"\nNot ready after {limit:.0f}s (still being set up: {status.get('message') or 'no status'})"
                         "; the cluster was NOT removed. Check get_cluster_status later.")
        return result(text, data)

    async def scale_postgres_cluster(
        name: ClusterName,
        instances: Annotated[int, Field(ge=1, le=10, description="New number of instances (1-10)")],
        namespace: Namespace = None, dry_run: DryRun = False,
    ) -> CallToolResult:
        """Change the number of instances. A cluster not created through cnpg-mcp is adopted into a
        PgClusterRequest (owning only its instance count, deletionPolicy Retain) instead of being edited."""
        ns = gw.namespace(namespace)
        async with gw.acting(f"scaling cluster {ns}/{name}"):
            cluster = await gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, name)
            request = await gw.kube.intent_get_or_none(PLURAL, ns, name)
            if cluster is None and request is None:
                raise errors.tool_error(errors.NOT_FOUND, f"no cluster {name!r} in namespace {ns!r}")
            current = ((cluster or {}).get("spec") or {}).get("instances") or (request or {})["spec"]["instances"]
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
        data = {"dry_run": dry_run, "name": name, "namespace": ns, "current_instances": current,
                "instances": instances, "adopted": request is None, "spec": written["spec"]}
        prefix = "Dry run (nothing changed): " if dry_run else ""
        return result(f"{prefix}{ns}/{name}: {current} → {instances} ({delta}); {action}.", data)

    mcp.add_tool(create_postgres_cluster, name="create_postgres_cluster", annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False))
    mcp.add_tool(scale_postgres_cluster, name="scale_postgres_cluster", annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=False))
    if not deletes:
        return

    async def delete_postgres_cluster(
        name: ClusterName,
        confirm_deletion: Annotated[bool, Field(description="Must be true to really delete")] = False,
        namespace: Namespace = None, dry_run: DryRun = False,
    ) -> CallToolResult:
        """Delete a PostgreSQL cluster AND ITS DATA. Without confirm_deletion=true nothing is deleted and the
        tool explains what would go. The PgClusterRequest is switched to deletionPolicy Delete and removed;
        the operator then deletes the Cluster; roles, databases and Secrets it produced go with it."""
        ns = gw.namespace(namespace)
        async with gw.acting(f"deleting cluster {ns}/{name}"):
            cluster = await gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, name)
            request = await gw.kube.intent_get_or_none(PLURAL, ns, name)
            if cluster is None and request is None:
                raise errors.tool_error(errors.NOT_FOUND, f"no cluster {name!r} in namespace {ns!r}")
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
            if dry_run or not confirm_deletion:
                how = ("" if dry_run else "\nNOTHING was deleted. To delete, call delete_postgres_cluster again with "
                       f"name='{name}', namespace='{ns}', confirm_deletion=true.")
                return result(f"{'Dry run: ' if dry_run else ''}Deleting would remove {what}.{how}", data)
            if request is None:
                assert cluster is not None
                adopted = intents.adoption_intent(cluster, instances=int(spec.get("instances") or 1),
                                                  requested_by=gw.requested_by())
                await gw.kube.write_intent(PLURAL, ns, adopted)
            for role in roles:
                await gw.kube.delete_intent(constants.ROLE_REQUEST_PLURAL, ns, role)
            for database in databases:
                await gw.kube.delete_intent(constants.DATABASE_REQUEST_PLURAL, ns, database)
            await gw.kube.patch_intent(PLURAL, ns, name, {"spec": {"deletionPolicy": "Delete"}})
            await gw.kube.delete_intent(PLURAL, ns, name)
        data["deleted"] = True
        return result(f"Deletion of {what} requested; the operator deletes the Cluster and cleans up role and "
                      "database requests and their Secrets.", data)

    mcp.add_tool(delete_postgres_cluster, name="delete_postgres_cluster", annotations=ToolAnnotations(
        read_only_hint=False, destructive_hint=True, idempotent_hint=False, open_world_hint=False))
