"""The intent kinds the operator serves: one entry each (see handlers/kinds.py and docs/operator.md,
"Adding an intent kind"). Importing this module registers their handlers in REGISTRY."""

from __future__ import annotations

from cnpg_mcp_operator.handlers import (
    backup_requests,
    backup_schedule_requests,
    backup_store_requests,
    cluster_requests,
    database_requests,
    operation_requests,
    pooler_requests,
    role_requests,
)
from cnpg_mcp_operator.handlers.common import (
    BACKUP_REQUESTS,
    BACKUP_SCHEDULE_REQUESTS,
    BACKUP_STORE_REQUESTS,
    CLUSTER_REQUESTS,
    DATABASE_REQUESTS,
    OPERATION_REQUESTS,
    POOLER_REQUESTS,
    ROLE_REQUESTS,
)
from cnpg_mcp_operator.handlers.kinds import IntentKind, register_intent_kind
from cnpg_mcp_operator.k8s import BACKUPS, DATABASE_ROLES, DATABASES, OBJECT_STORES, POOLERS, SCHEDULED_BACKUPS

INTENT_KINDS = (
    IntentKind(CLUSTER_REQUESTS, "cluster_request", cluster_requests.reconcile, cluster_requests.finalize,
               cluster_requests.refresh_status, cluster_requests.needs_reconcile, by_cluster=False),
    IntentKind(ROLE_REQUESTS, "role_request", role_requests.reconcile, role_requests.finalize,
               role_requests.refresh_status, role_requests.needs_reconcile, produces=DATABASE_ROLES),
    IntentKind(DATABASE_REQUESTS, "database_request", database_requests.reconcile, database_requests.finalize,
               database_requests.refresh_status, database_requests.needs_reconcile, produces=DATABASES),
    IntentKind(BACKUP_STORE_REQUESTS, "backup_store_request", backup_store_requests.reconcile,
               backup_store_requests.finalize, backup_store_requests.refresh_status,
               backup_store_requests.needs_reconcile, produces=OBJECT_STORES),
    IntentKind(BACKUP_REQUESTS, "backup_request", backup_requests.reconcile, backup_requests.finalize,
               backup_requests.refresh_status, backup_requests.needs_reconcile, produces=BACKUPS),
    IntentKind(BACKUP_SCHEDULE_REQUESTS, "backup_schedule_request", backup_schedule_requests.reconcile,
               backup_schedule_requests.finalize, backup_schedule_requests.refresh_status,
               backup_schedule_requests.needs_reconcile, produces=SCHEDULED_BACKUPS),
    IntentKind(POOLER_REQUESTS, "pooler_request", pooler_requests.reconcile, pooler_requests.finalize,
               pooler_requests.refresh_status, pooler_requests.needs_reconcile, produces=POOLERS),
    IntentKind(OPERATION_REQUESTS, "operation_request", operation_requests.reconcile, operation_requests.finalize,
               operation_requests.refresh_status, operation_requests.needs_reconcile),
)

for _kind in INTENT_KINDS:
    register_intent_kind(_kind)
