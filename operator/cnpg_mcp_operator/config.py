"""The operator's command-line configuration (what `cnpg-mcp-operator --help` documents)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cnpg_mcp_operator.backend import CHOICES


@dataclass(frozen=True)
class OperatorConfig:
    kubeconfig: str | None
    namespaces: tuple[str, ...]  # empty = all namespaces
    allowed_privileged_namespaces: frozenset[str]
    role_backend: str  # auto | databaserole | managed-roles
    liveness: str | None

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces


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
    args = parser.parse_args(argv)
    return OperatorConfig(
        kubeconfig=args.kubeconfig,
        namespaces=tuple(dict.fromkeys(args.namespace)),
        allowed_privileged_namespaces=frozenset(args.allow_privileged_namespace),
        role_backend=args.role_backend,
        liveness=args.liveness,
    )
