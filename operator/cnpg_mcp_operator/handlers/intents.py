"""The intent kinds the operator serves: one entry each (see handlers/kinds.py and docs/operator.md,
"Adding an intent kind"). Importing this module registers their handlers in REGISTRY."""

from __future__ import annotations

from cnpg_mcp_operator.handlers import cluster_requests, database_requests, role_requests
from cnpg_mcp_operator.handlers.common import CLUSTER_REQUESTS, DATABASE_REQUESTS, ROLE_REQUESTS
from cnpg_mcp_operator.handlers.kinds import IntentKind, register_intent_kind
from cnpg_mcp_operator.k8s import DATABASE_ROLES, DATABASES

INTENT_KINDS = (
    IntentKind(CLUSTER_REQUESTS, "cluster_request", cluster_requests.reconcile, cluster_requests.finalize,
               cluster_requests.refresh_status, cluster_requests.needs_reconcile, by_cluster=False),
    IntentKind(ROLE_REQUESTS, "role_request", role_requests.reconcile, role_requests.finalize,
               role_requests.refresh_status, role_requests.needs_reconcile, produces=DATABASE_ROLES),
    IntentKind(DATABASE_REQUESTS, "database_request", database_requests.reconcile, database_requests.finalize,
               database_requests.refresh_status, database_requests.needs_reconcile, produces=DATABASES),
)

for _kind in INTENT_KINDS:
    register_intent_kind(_kind)
