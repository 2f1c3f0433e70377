"""The operator's command-line configuration (what `cnpg-mcp-operator --help` documents)."""

from __future__ import annotations

import argparse
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cnpg_mcp_operator.backend import CHOICES

DEFAULT_PEERING_LIFETIME = 30  # seconds; a killed active replica blocks the standby at most this long
GATEWAY_NAMESPACE_ENV = "CNPG_MCP_GATEWAY_NAMESPACE"
# In a pod, the namespace of its ServiceAccount (the operator's own namespace).
SERVICE_ACCOUNT_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
FALLBACK_GATEWAY_NAMESPACE = "cnpg-mcp"


@dataclass(frozen=True)
class OperatorConfig:
    kubeconfig: str | None
    namespaces: tuple[str, ...]  # empty = all namespaces
    allowed_privileged_namespaces: frozenset[str]
    role_backend: str  # auto | databaserole | managed-roles
    liveness: str | None
    metrics: str | None = None  # URL of the Prometheus endpoint, e.g. http://0.0.0.0:8081/metrics
    peering: str | None = None  # Kopf peering object name; None = standalone (one process only)
    peering_priority: int = 0
    peering_lifetime: int = DEFAULT_PEERING_LIFETIME
    # Where the MCP gateway runs: the read-only SQL credentials Secret is written there.
    gateway_namespace: str = FALLBACK_GATEWAY_NAMESPACE

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


def start_time_priority() -> int:
    """A Kopf peering priority that is unique per process and lower for later starts.

    Kopf pauses every operator that sees a live peer of higher priority, and *all* of them when
    priorities tie; so replicas need distinct priorities. Earlier start = higher priority means the
    active replica is never pre-empted by a newcomer (a rollout's new pod waits until the old one
    leaves). Milliseconds times 1000 plus a random tie-breaker stays below 2**53 (exact in JSON).
    """
    return -(time.time_ns() // 1_000_000 * 1000 + secrets.randbelow(1000))


def default_gateway_namespace() -> str:
    """$CNPG_MCP_GATEWAY_NAMESPACE, else the operator's own namespace (in a pod), else cnpg-mcp."""
    if from_env := os.environ.get(GATEWAY_NAMESPACE_ENV):
        return from_env
    try:
        own = SERVICE_ACCOUNT_NAMESPACE_FILE.read_text().strip()
    except OSError:
        own = ""
    return own or FALLBACK_GATEWAY_NAMESPACE


def parse_args(argv: Sequence[str] | None = None) -> OperatorConfig:
    parser = argparse.ArgumentParser(
        prog="cnpg-mcp-operator",
        description="Reconciles PgClusterRequest, PgRoleRequest and PgDatabaseRequest intents into "
                    "CloudNativePG objects and reports the outcome on each intent's status.",
    )
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG") or None,
                        help="kubeconfig file (default: $KUBECONFIG, else in-cluster credentials)")
    scope = parser.add_mutually_exclusive_group(required=True)
    scope.add_argument("--namespace", "-n", action="append", default=[], metavar="NAME",
                       help="watch this namespace (repeatable)")
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace")
    parser.add_argument("--allow-privileged-namespace", action="append", default=[], metavar="NAME",
                        help="the admin policy: intents in this namespace may ask for privileged roles "
                             "(superuser, replication, bypassrls, privileged memberships) (repeatable)")
    parser.add_argument("--role-backend", choices=CHOICES,
                        default=os.environ.get("CNPG_MCP_ROLE_BACKEND", "auto"),
                        help="how PgRoleRequests reach CNPG: DatabaseRole objects, "
                             "Cluster.spec.managed.roles entries, or auto-detect "
                             "(default: $CNPG_MCP_ROLE_BACKEND or auto)")
    parser.add_argument("--liveness", metavar="URL", default=None,
                        help="serve the liveness probe at this URL, e.g. http://0.0.0.0:8080/healthz")
    parser.add_argument("--metrics", metavar="URL", default=None,
                        help="serve Prometheus metrics at this URL, e.g. http://0.0.0.0:8081/metrics (default: off)")
    parser.add_argument("--gateway-namespace", metavar="NAME", default=None,
                        help="the MCP gateway's namespace: the read-only SQL credentials Secret goes there "
                             f"(default: ${GATEWAY_NAMESPACE_ENV}, else the operator's own namespace)")
    peering = parser.add_argument_group(
        "peering", "several replicas, one active: Kopf peering through a ClusterKopfPeering (with "
                   "--all-namespaces) or a KopfPeering per namespace; without --peering the operator "
                   "runs standalone and must be the only one")
    peering.add_argument("--peering", metavar="NAME", default=os.environ.get("CNPG_MCP_PEERING") or None,
                         help="join the peering object NAME (created if missing); only the live replica "
                              "with the highest priority reconciles (default: $CNPG_MCP_PEERING, else standalone)")
    peering.add_argument("--standalone", action="store_true",
                         help="no peering even if $CNPG_MCP_PEERING is set (single-process dev mode)")
    peering.add_argument("--peering-priority", type=int, default=None, metavar="N",
                         help="this replica's priority (default: from the start time, so the oldest live "
                              "replica is active; any N >= 0 pre-empts those, e.g. for debugging)")
    peering.add_argument("--peering-lifetime", type=int, default=DEFAULT_PEERING_LIFETIME, metavar="SECONDS",
                         help="keep-alive lifetime: a replica that died without leaving blocks the others "
                              f"this long (default: {DEFAULT_PEERING_LIFETIME})")
    args = parser.parse_args(argv)
    if args.peering_lifetime < 2:
        parser.error("--peering-lifetime must be at least 2 seconds")
    return OperatorConfig(
        kubeconfig=args.kubeconfig,
        namespaces=tuple(dict.fromkeys(args.namespace)),
        allowed_privileged_namespaces=frozenset(args.allow_privileged_namespace),
        role_backend=args.role_backend,
        liveness=args.liveness,
        metrics=args.metrics,
        peering=None if args.standalone else args.peering,
        peering_priority=start_time_priority() if args.peering_priority is None else args.peering_priority,
        peering_lifetime=args.peering_lifetime,
        gateway_namespace=args.gateway_namespace or default_gateway_namespace(),
    )
