"""Names of the intent API and of the CloudNativePG objects it produces."""

from __future__ import annotations

from typing import Final

GROUP: Final = "cnpg-mcp.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

CLUSTER_REQUEST_KIND: Final = "PgClusterRequest"
ROLE_REQUEST_KIND: Final = "PgRoleRequest"
DATABASE_REQUEST_KIND: Final = "PgDatabaseRequest"
CLUSTER_REQUEST_PLURAL: Final = "pgclusterrequests"
ROLE_REQUEST_PLURAL: Final = "pgrolerequests"
DATABASE_REQUEST_PLURAL: Final = "pgdatabaserequests"
BACKUP_STORE_REQUEST_KIND: Final = "PgBackupStoreRequest"
BACKUP_REQUEST_KIND: Final = "PgBackupRequest"
BACKUP_SCHEDULE_REQUEST_KIND: Final = "PgBackupScheduleRequest"
BACKUP_STORE_REQUEST_PLURAL: Final = "pgbackupstorerequests"
BACKUP_REQUEST_PLURAL: Final = "pgbackuprequests"
BACKUP_SCHEDULE_REQUEST_PLURAL: Final = "pgbackupschedulerequests"
POOLER_REQUEST_KIND: Final = "PgPoolerRequest"
POOLER_REQUEST_PLURAL: Final = "pgpoolerrequests"
OPERATION_REQUEST_KIND: Final = "PgOperationRequest"
OPERATION_REQUEST_PLURAL: Final = "pgoperationrequests"

CNPG_GROUP: Final = "postgresql.cnpg.io"
CNPG_VERSION: Final = "v1"
CNPG_API_VERSION: Final = f"{CNPG_GROUP}/{CNPG_VERSION}"
CNPG_CLUSTERS: Final = "clusters"
CNPG_DATABASES: Final = "databases"
CNPG_DATABASE_ROLES: Final = "databaseroles"
CNPG_HEALTHY_PHASE: Final = "Cluster in healthy state"
CNPG_IMAGE_REPOSITORY: Final = "ghcr.io/cloudnative-pg/postgresql"
CNPG_BACKUPS: Final = "backups"
CNPG_SCHEDULED_BACKUPS: Final = "scheduledbackups"
CNPG_POOLERS: Final = "poolers"

# The Barman Cloud plugin (CNPG-I): backups and WAL archiving the CNPG 1.30 way.
BARMAN_GROUP: Final = "barmancloud.cnpg.io"
BARMAN_VERSION: Final = "v1"
BARMAN_API_VERSION: Final = f"{BARMAN_GROUP}/{BARMAN_VERSION}"
BARMAN_OBJECT_STORES: Final = "objectstores"
BARMAN_PLUGIN_NAME: Final = "barman-cloud.cloudnative-pg.io"

# Kopf's finalizer and its progress/diff-base annotations live under our own domain.
FINALIZER: Final = f"{GROUP}/finalizer"
KOPF_ANNOTATIONS_PREFIX: Final = GROUP

MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "cnpg-mcp"
MANAGED_BY: Final = {MANAGED_BY_LABEL: MANAGED_BY_VALUE}
REQUEST_LABEL: Final = f"{GROUP}/request"
# Who asked, as the client says (the MCP gateway writes the MCP user it serves): immutable once set.
REQUESTED_BY_ANNOTATION: Final = f"{GROUP}/requested-by"
# Who asked, as the API server saw the request: stamped at admission (deploy/admission/requester.yaml)
# from request.userInfo, whatever the client sent, and immutable afterwards.
REQUESTER_ANNOTATION: Final = f"{GROUP}/requester"
REQUESTER_GROUPS_ANNOTATION: Final = f"{GROUP}/requester-groups"
# Through an impersonating gateway: the gateway's own username, as the API server authenticated it. The
# gateway sends it as the impersonated user extra VIA_USER_EXTRA (its RBAC allows only its own name there);
# admission copies it here. Absent on intents not created through an impersonating gateway.
REQUESTED_VIA_ANNOTATION: Final = f"{GROUP}/requested-via"
VIA_USER_EXTRA: Final = f"{GROUP}/via"
PASSWORD_ROTATION_ANNOTATION: Final = f"{GROUP}/password-rotation"
CNPG_CLUSTER_LABEL: Final = "cnpg.io/cluster"
CNPG_ROLE_LABEL: Final = "cnpg.io/role"
CNPG_RELOAD_LABEL: Final = "cnpg.io/reload"

POSTGRES_PORT: Final = 5432

# Day-2 operations, the CloudNativePG 1.30 way (pkg/utils/labels_annotations.go, api/v1/cluster_types.go,
# pkg/reconciler/hibernation/status.go, internal/cmd/plugin/{promote,restart,reload,fence}).
CNPG_RESTARTED_AT_ANNOTATION: Final = "kubectl.kubernetes.io/restartedAt"
CNPG_RELOADED_AT_ANNOTATION: Final = "cnpg.io/reloadedAt"
CNPG_HIBERNATION_ANNOTATION: Final = "cnpg.io/hibernation"
CNPG_HIBERNATION_CONDITION: Final = "cnpg.io/hibernation"
CNPG_HIBERNATED_REASON: Final = "Hibernated"
CNPG_FENCED_INSTANCES_ANNOTATION: Final = "cnpg.io/fencedInstances"
CNPG_FENCE_ALL: Final = "*"
CNPG_UNRECOVERABLE_ANNOTATION: Final = "alpha.cnpg.io/unrecoverable"
CNPG_PHASE_SWITCHOVER: Final = "Switchover in progress"
CNPG_PHASE_INPLACE_PRIMARY_RESTART: Final = "Primary instance is being restarted in-place"
CNPG_INSTANCE_ROLE_LABEL: Final = "cnpg.io/instanceRole"
CNPG_INSTANCE_NAME_LABEL: Final = "cnpg.io/instanceName"
