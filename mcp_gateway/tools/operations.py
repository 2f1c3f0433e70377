"""Operation tools: switchover, restart, reload, hibernate, fence, rebuild — each writes one
PgOperationRequest; the operator performs it the CloudNativePG 1.30 way (docs/operations.md) and reports
the phase and CNPG's evidence, which the tool reports back (never an effect CNPG did not show)."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from cnpg_mcp_api import constants, operations
from cnpg_mcp_api.models import K8S_NAME_PATTERN, OPERATION_FINISHED, OPERATION_SUCCEEDED
from mcp_gateway import errors, intents, render
from mcp_gateway.gateway import Gateway
from mcp_gateway.registry import CREATE, DELETE, ToolSpec
from mcp_gateway.tools import outputs, result
from mcp_gateway.tools.clusters import OPERATOR_ANSWER_SECONDS, ClusterName, DryRun, Namespace

PLURAL = constants.OPERATION_REQUEST_PLURAL
POLL_SECONDS = 0.5
InstanceName = Annotated[str, Field(pattern=K8S_NAME_PATTERN, max_length=63,
                                    description="Instance (Pod) name, e.g. main-db-2 (get_cluster_status lists them)")]
Wait = Annotated[bool, Field(description="Wait until CNPG shows the effect (progress is reported); false: return "
                                         "once the operator has accepted or refused the request")]
Timeout = Annotated[int, Field(ge=10, le=600, description="Seconds the operation may take (10-600) before it is "
                                                          "reported Failed; the tool waits that long with wait")]
# Failed reasons that mean "nothing was done", with the code the tool fails with.
REFUSAL_CODES = {"Busy": errors.CONFLICT, "Refused": errors.CONFLICT, "Invalid": errors.INVALID_ARGUMENT,
                 "ClusterNotFound": errors.NOT_FOUND}


# Marks a schedule request that hibernation suspended, so that resuming re-enables exactly those (and never
# one the user had paused on purpose).
SUSPENDED_FOR_HIBERNATION = "cnpg-mcp.io/suspended-for-hibernation"


async def suspended_schedules(gw: Gateway, namespace: str, cluster: str) -> list[str]:
    """Suspends the running backup schedule requests of `cluster` for its hibernation (no backup of a stopped
    cluster can succeed); returns the ones it suspended."""
    suspended = []
    for request in await gw.kube.intent_list(constants.BACKUP_SCHEDULE_REQUEST_PLURAL, namespace):
        if request["spec"].get("cluster") != cluster or request["spec"].get("suspend"):
            continue
        name = request["metadata"]["name"]
        await gw.kube.patch_intent(constants.BACKUP_SCHEDULE_REQUEST_PLURAL, namespace, name, {
            "metadata": {"annotations": {SUSPENDED_FOR_HIBERNATION: "true"}}, "spec": {"suspend": True}})
        suspended.append(name)
    return suspended


async def resumed_schedules(gw: Gateway, namespace: str, cluster: str) -> list[str]:
    """Resumes the backup schedule requests of `cluster` that its hibernation suspended; returns them."""
    resumed = []
    for request in await gw.kube.intent_list(constants.BACKUP_SCHEDULE_REQUEST_PLURAL, namespace):
        annotations = request["metadata"].get("annotations") or {}
        if request["spec"].get("cluster") != cluster or SUSPENDED_FOR_HIBERNATION not in annotations:
            continue
        name = request["metadata"]["name"]
        await gw.kube.patch_intent(constants.BACKUP_SCHEDULE_REQUEST_PLURAL, namespace, name, {
            "metadata": {"annotations": {SUSPENDED_FOR_HIBERNATION: None}}, "spec": {"suspend": False}})
        resumed.append(name)
    return resumed


def _running_operation(requests: list[dict[str, Any]], cluster: str) -> str | None:
    for request in requests:
        status = request.get("status") or {}
        if request.get("spec", {}).get("cluster") == cluster and status.get("phase") not in OPERATION_FINISHED:
            return str(request["metadata"]["name"])
    return None


async def _checked(gw: Gateway, ns: str, cluster_name: str, op_type: str, instance: str | None) -> str | None:
    """Refuse early, with the operator's own rules, what CNPG would not do; returns the resolved instance."""
    cluster = await gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, cluster_name)
    if cluster is None:
        raise errors.tool_error(errors.NOT_FOUND, f"no cluster {cluster_name!r} in namespace {ns!r}; "
                                                  "list_postgres_clusters shows what exists")
    names = operations.instance_names(cluster)
    if instance and op_type != "unfence" and names and instance not in names:
        raise errors.tool_error(errors.NOT_FOUND, f"instance {instance!r} does not exist in cluster {cluster_name!r} "
                                                  f"(instances: {', '.join(names)})")
    running = _running_operation(await gw.kube.intent_list(PLURAL, ns), cluster_name)
    if running is not None:
        raise errors.tool_error(errors.CONFLICT, f"operation {running} is still running on cluster {cluster_name!r}; "
                                                 "one operation runs at a time: try again once it has finished")
    resolved = operations.resolve_instance(op_type, instance, cluster)
    problem = operations.refusal(op_type, resolved, cluster)
    if problem is not None:
        raise errors.tool_error(errors.CONFLICT, problem)
    return resolved


async def _follow(gw: Gateway, ctx: Context, ns: str, name: str, *, until_finished: bool,
                  timeout: float) -> dict[str, Any] | None:
    """Read the request until the operator accepted it (Running) or, with until_finished, until it finished;
    progress goes to the client on every new message."""
    deadline = time.monotonic() + timeout
    last = None
    request: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        request = await gw.kube.intent_get_or_none(PLURAL, ns, name)
        status = (request or {}).get("status") or {}
        phase = status.get("phase") or "Pending"
        message = status.get("message") or "waiting for the operator"
        if (phase, message) != last:
            step = {"Pending": 0, "Running": 1}.get(phase, 2)
            await ctx.report_progress(step, 2, f"{name}: {phase}: {message}")
            last = (phase, message)
        if phase in OPERATION_FINISHED or (phase == "Running" and not until_finished):
            return request
        await anyio.sleep(POLL_SECONDS)
    return request


async def _operate(gw: Gateway, ctx: Context, *, cluster_name: str, op_type: str, instance: str | None,
                   wait: bool, timeout: int, namespace: str | None, dry_run: bool, doing: str,
                   note: str = "") -> CallToolResult:
    ns = gw.namespace(namespace)
    async with gw.acting(f"{doing} {ns}/{cluster_name}"):
        resolved = await _checked(gw, ns, cluster_name, op_type, instance)
        body = intents.operation_intent(cluster_name, op_type, ns, instance=instance or (
            resolved if op_type == "switchover" else None), timeout_seconds=timeout,
            requested_by=gw.requested_by())
        created = await gw.kube.write_intent(PLURAL, ns, body, dry_run=dry_run)
    name = created["metadata"]["name"]
    data: dict[str, Any] = {"operation": op_type, "cluster": f"{ns}/{cluster_name}", "instance": resolved,
                            "request": f"{PLURAL}/{name}", "dry_run": dry_run}
    target = f" ({resolved})" if resolved else ""
    if dry_run:
        manifest = {k: created[k] for k in ("apiVersion", "kind", "spec")}
        data.update(phase=None, reason=None, message="dry run: nothing was created", evidence={})
        return result(f"Dry run: {op_type}{target} of {ns}/{cluster_name} would be requested as:\n```yaml\n"
                      f"{render.manifests_yaml([manifest])}```", data)
    async with gw.acting(f"following {name}"):
        request = await _follow(gw, ctx, ns, name, until_finished=wait,
                                timeout=timeout + 5 if wait else OPERATOR_ANSWER_SECONDS)
    status = (request or {}).get("status") or {}
    reason = render.ready_condition(request).get("reason")
    phase = status.get("phase") or "Pending"
    message = status.get("message") or "the operator has not answered yet"
    if phase == "Failed" and reason in REFUSAL_CODES:
        raise errors.tool_error(REFUSAL_CODES[str(reason)], f"{op_type} of {ns}/{cluster_name} refused "
                                                            f"({name}): {message}")
    data.update(instance=status.get("instance") or resolved, phase=phase, reason=reason, message=message,
                evidence=dict(status.get("evidence") or {}))
    target = f" ({data['instance']})" if data["instance"] else ""
    evidence = "".join(f"\n- {k}: {v}" for k, v in sorted(data["evidence"].items()))
    if phase == OPERATION_SUCCEEDED:
        heading = f"{op_type}{target} of {ns}/{cluster_name} succeeded: {message}"
    elif phase == "Failed":
        heading = f"{op_type}{target} of {ns}/{cluster_name} FAILED: {message}"
    else:
        heading = (f"{op_type}{target} of {ns}/{cluster_name} requested; it is {phase}: {message}. "
                   f"Follow it with: kubectl get pgops {name} -n {ns}")
    return result(f"{heading}{note}\nRequest: {PLURAL}/{name}" + (f"\nCNPG evidence:{evidence}" if evidence else ""),
                  data)


async def switchover_postgres_cluster(
    gw: Gateway, name: ClusterName, ctx: Context,
    target_instance: Annotated[InstanceName | None, Field(
        description="The replica to promote; default: a healthy, unfenced replica (lowest serial), named in the "
                    "answer")] = None,
    wait: Wait = True, timeout: Timeout = 120, namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to move the primary role to another instance (planned switchover, e.g. before node maintenance).
    Writes a PgOperationRequest; the operator sets the Cluster status targetPrimary as `kubectl cnpg promote`
    does, and CNPG demotes the old primary and promotes the target (writes are briefly interrupted)."""
    return await _operate(gw, ctx, cluster_name=name, op_type="switchover", instance=target_instance, wait=wait,
                          timeout=timeout, namespace=namespace, dry_run=dry_run, doing="switching over")


async def restart_postgres_cluster(
    gw: Gateway, name: ClusterName, ctx: Context,
    instance: Annotated[InstanceName | None, Field(
        description="Restart only this instance (a replica's Pod is recreated; the primary restarts in place); "
                    "default: every instance, one at a time")] = None,
    wait: Wait = True, timeout: Timeout = 300, namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to restart PostgreSQL (e.g. to apply a parameter that needs a restart).
    Writes a PgOperationRequest: the whole cluster rolls (annotation kubectl.kubernetes.io/restartedAt, as
    `kubectl cnpg restart`), or one instance restarts."""
    return await _operate(gw, ctx, cluster_name=name, op_type="restart", instance=instance, wait=wait,
                          timeout=timeout, namespace=namespace, dry_run=dry_run, doing="restarting")


async def reload_postgres_cluster(
    gw: Gateway, name: ClusterName, ctx: Context,
    wait: Wait = True, timeout: Timeout = 60, namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to make PostgreSQL re-read its configuration without restarting.
    Writes a PgOperationRequest; the operator sets the annotation cnpg.io/reloadedAt (as `kubectl cnpg reload`)."""
    return await _operate(gw, ctx, cluster_name=name, op_type="reload", instance=None, wait=wait, timeout=timeout,
                          namespace=namespace, dry_run=dry_run, doing="reloading")


async def hibernate_postgres_cluster(
    gw: Gateway, name: ClusterName, ctx: Context,
    state: Annotated[Literal["on", "off"], Field(
        description="'on': stop every instance (the data volumes stay); 'off': start them again")] = "on",
    wait: Wait = True, timeout: Timeout = 300, namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to stop a cluster entirely while keeping its data (hibernation), or to wake it up again.
    Writes a PgOperationRequest; the operator sets the annotation cnpg.io/hibernation on|off and reports
    CNPG's cnpg.io/hibernation condition. While hibernated nothing can connect."""
    op_type = "hibernate" if state == "on" else "resume"
    ns = gw.namespace(namespace)
    note = ""
    if state == "on" and not dry_run:
        schedules = await suspended_schedules(gw, ns, name)
        if schedules:
            note = f"\nBackup schedules suspended while hibernated: {', '.join(schedules)}"
    elif not dry_run:
        schedules = await resumed_schedules(gw, ns, name)
        if schedules:
            note = f"\nBackup schedules resumed: {', '.join(schedules)}"
    return await _operate(gw, ctx, cluster_name=name, op_type=op_type, instance=None, wait=wait, timeout=timeout,
                          namespace=ns, dry_run=dry_run, doing="hibernating" if state == "on" else "resuming",
                          note=note)


async def fence_postgres_instance(
    gw: Gateway, name: ClusterName, ctx: Context,
    instance: Annotated[str, Field(pattern=r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$", max_length=63,
                                   description="The instance to fence or unfence; '*' = every instance")],
    action: Annotated[Literal["fence", "unfence"], Field(
        description="'fence': stop PostgreSQL on it (the Pod stays, not ready); 'unfence': start it again")] = "fence",
    wait: Wait = True, timeout: Timeout = 120, namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to isolate an instance (e.g. to investigate it) or to lift that isolation.
    Writes a PgOperationRequest; the operator edits the annotation cnpg.io/fencedInstances (as `kubectl cnpg
    fencing`). A fenced primary stops serving writes."""
    return await _operate(gw, ctx, cluster_name=name, op_type=action, instance=None if instance == "*" else instance,
                          wait=wait, timeout=timeout, namespace=namespace, dry_run=dry_run, doing=f"{action}ing")


async def rebuild_postgres_replica(
    gw: Gateway, name: ClusterName, ctx: Context,
    instance: Annotated[InstanceName, Field(description="The broken replica (never the primary)")],
    wait: Wait = True, timeout: Timeout = 300, namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to throw away a broken replica and clone it again from the primary.
    Writes a PgOperationRequest; the operator annotates its Pod alpha.cnpg.io/unrecoverable and CNPG deletes the
    instance's Pod and volumes and creates a fresh replica. The current or target primary is refused."""
    return await _operate(gw, ctx, cluster_name=name, op_type="rebuildReplica", instance=instance, wait=wait,
                          timeout=timeout, namespace=namespace, dry_run=dry_run, doing="rebuilding a replica of")


_CODES = (errors.NOT_FOUND, errors.CONFLICT)
TOOLS = (
    ToolSpec("switchover_postgres_cluster", "Switch over PostgreSQL primary", "operations", DELETE,
             outputs.OperationResult, switchover_postgres_cluster, _CODES),
    ToolSpec("restart_postgres_cluster", "Restart PostgreSQL cluster or instance", "operations", DELETE,
             outputs.OperationResult, restart_postgres_cluster, _CODES),
    ToolSpec("reload_postgres_cluster", "Reload PostgreSQL configuration", "operations", CREATE,
             outputs.OperationResult, reload_postgres_cluster, _CODES),
    ToolSpec("hibernate_postgres_cluster", "Hibernate or resume PostgreSQL cluster", "operations", DELETE,
             outputs.OperationResult, hibernate_postgres_cluster, _CODES),
    ToolSpec("fence_postgres_instance", "Fence or unfence PostgreSQL instance", "operations", DELETE,
             outputs.OperationResult, fence_postgres_instance, _CODES),
    ToolSpec("rebuild_postgres_replica", "Rebuild PostgreSQL replica", "operations", DELETE,
             outputs.OperationResult, rebuild_postgres_replica, _CODES),
)
