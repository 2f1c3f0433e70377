"""MCP resources (a cluster's status digest and its logs), their completions, and prompts that use them.

Resources read through the same handlers as the tools (same RBAC, same codes, same bounds); completions
offer the cluster names of a namespace, and the namespaces. Subscriptions: subscriptions.py.
"""

from __future__ import annotations

import json
from typing import Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import Completion, CompletionArgument, CompletionContext, PromptReference, ResourceTemplateReference

from cnpg_mcp_api import constants
from mcp_gateway.gateway import Gateway
from mcp_gateway.tools import clusters, diagnostics

STATUS_URI = "cnpg://{namespace}/{cluster}/status"
LOGS_URI = "cnpg://{namespace}/{cluster}/logs"
COMPLETION_LIMIT = 100  # MCP caps a completion answer at 100 values


def _text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def cluster_names(gw: Gateway, namespace: str | None, prefix: str) -> list[str]:
    """Cluster (and requested cluster) names in a namespace starting with `prefix`."""
    ns = gw.namespace(namespace)
    async with gw.acting(f"listing clusters in {ns}"):
        found = {c["metadata"]["name"] for c in await gw.kube.cnpg_list(constants.CNPG_CLUSTERS, ns)}
        found |= {r["metadata"]["name"] for r in await gw.kube.intent_list(constants.CLUSTER_REQUEST_PLURAL, ns)}
    return sorted(n for n in found if n.startswith(prefix))


async def namespace_names(gw: Gateway, prefix: str) -> list[str]:
    """The namespaces served starting with `prefix`: --namespace-allow, else those the caller may list (else
    the default namespace alone: the gateway's own role may not list namespaces)."""
    if gw.config.namespace_allow:
        found = set(gw.config.namespace_allow)
    else:
        try:
            async with gw.acting("listing namespaces"):
                found = set(await gw.kube.namespace_names())
        except ToolError:
            found = {gw.default_namespace}
    return sorted(n for n in found if n.startswith(prefix))


def register(mcp: MCPServer, gw: Gateway, *, logs: bool) -> None:
    """Resources, prompts and completions; the logs resource only where get_cluster_logs is offered."""

    @mcp.resource(STATUS_URI, name="cluster-status", title="Cluster status digest", mime_type="application/json",
                  description="get_cluster_status's digest (verdict, next check, instances, conditions) as JSON; "
                              "subscribe to it for resources/updated when the Cluster changes.")
    async def status(namespace: str, cluster: str) -> str:
        result = await clusters.get_cluster_status(gw, cluster, namespace, format="json")
        return json.dumps(result.structured_content, indent=2, default=str)

    if logs:
        @mcp.resource(LOGS_URI, name="cluster-logs", title="Cluster logs", mime_type="text/plain",
                      description="The newest 100 log lines of every instance (get_cluster_logs' text).")
        async def recent_logs(namespace: str, cluster: str) -> str:
            return _text(await diagnostics.get_cluster_logs(gw, cluster, namespace=namespace))

    @mcp.prompt(name="diagnose_cluster", title="Diagnose a slow or unhealthy cluster")
    def diagnose_cluster(cluster: str, namespace: str = "") -> str:
        """Step by step: the digest, the logs, the events; read-only."""
        where = f'name="{cluster}"' + (f', namespace="{namespace}"' if namespace else "")
        return (f"Diagnose the PostgreSQL cluster {cluster} without changing anything.\n"
                f"1. Call get_cluster_status({where}) and read its verdict and next_check.\n"
                f"2. Call get_cluster_logs({where}, level=\"warning\"); narrow with instance, since_seconds or "
                "contains if the verdict names an instance or a subsystem (archive, replication, checkpoint).\n"
                f"3. Call get_cluster_status({where}, detail_level=\"detailed\") for every condition and the "
                "newest events.\n"
                "   If it is slow rather than down: look in the logs for lock waits, checkpoints, temporary files "
                "and canceled statements (contains=\"lock\", \"checkpoint\", \"temporary file\", \"canceling\"), "
                "and compare the instances' timelines and readiness (a lagging or restarting replica).\n"
                "4. Report: what is wrong, the evidence (quote log lines and conditions), and the safest next step. "
                "Never ask for or print a password; get_connection_info names the Secret instead.")

    @mcp.prompt(name="prepare_major_upgrade", title="Prepare a safe PostgreSQL major upgrade")
    def prepare_major_upgrade(cluster: str, target_version: str, namespace: str = "") -> str:
        """A checklist before changing the major version; nothing is changed by this prompt."""
        where = f'name="{cluster}"' + (f', namespace="{namespace}"' if namespace else "")
        return (f"Prepare (do not perform) a major upgrade of cluster {cluster} to PostgreSQL {target_version}.\n"
                f"1. get_cluster_status({where}): it must be healthy, every instance ready, archiving True and the "
                "last backup successful; otherwise stop and report why.\n"
                f"2. get_cluster_logs({where}, level=\"error\"): no recurring errors.\n"
                "3. Check that a recent backup exists and that a restore was tested (point-in-time recovery is the "
                "way back: CloudNativePG's in-place major upgrade cannot be rolled back).\n"
                "4. List extensions and their availability for the target version, and the applications' drivers.\n"
                "5. Write the plan: maintenance window, the image change, how success is verified, the rollback.")

    @mcp.prompt(name="plan_pitr", title="Plan a point-in-time recovery")
    def plan_pitr(cluster: str, target_time: str, namespace: str = "") -> str:
        """How to recover a cluster to a moment into a new cluster, checked first; nothing is changed."""
        where = f'name="{cluster}"' + (f', namespace="{namespace}"' if namespace else "")
        return (f"Plan a point-in-time recovery of cluster {cluster} to {target_time} (plan only).\n"
                f"1. get_cluster_status({where}): WAL archiving (ContinuousArchiving) must be True, else the target "
                "may be unreachable; note the last backup's state.\n"
                "2. Confirm the target lies inside the recoverability window: the digest's recoverability "
                "(first_recoverability_point to now, read from the backup store).\n"
                "3. The recovery creates a NEW cluster (bootstrap.recovery with recoveryTarget.targetTime); the "
                "original keeps running. Name it, size it like the original.\n"
                f"4. get_cluster_logs({where}, contains=\"archive\") for archiving failures near the target time.\n"
                "5. Write the plan: the new cluster's manifest, how the data is verified, how clients are switched.")

    @mcp.completion()  # type: ignore[no-untyped-call, untyped-decorator]  # the SDK leaves it untyped
    async def complete(ref: PromptReference | ResourceTemplateReference, argument: CompletionArgument,
                       context: CompletionContext | None) -> Completion | None:
        if argument.name == "namespace":
            names = await namespace_names(gw, argument.value)
        elif argument.name == "cluster":
            namespace = ((context.arguments if context else None) or {}).get("namespace") or None
            names = await cluster_names(gw, namespace, argument.value)
        else:
            return None
        return Completion(values=names[:COMPLETION_LIMIT], total=len(names),
                          has_more=len(names) > COMPLETION_LIMIT)
