"""Typed models of the intent API: the single source of truth for crds/*.yaml.

Wire names are camelCase (Kubernetes style); Python attributes are snake_case. Rules that the
API server enforces on its own are attached as CEL (`x-kubernetes-validations`), so `kubectl apply`
of a bad intent is refused with a clear message before the operator ever sees it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from cnpg_mcp_api import constants
from cnpg_mcp_api.cnpg_rules import FIXED_PARAMETERS, PGBOUNCER_PARAMETERS
from cnpg_mcp_api.naming import MAX_PG_NAME_BYTES, PG_NAME_CHARACTERS

# ASCII only, so the API server's character count is also PostgreSQL's byte count.
PG_IDENTIFIER_PATTERN = PG_NAME_CHARACTERS.pattern
CLUSTER_NAME_PATTERN = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
QUANTITY_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
RESERVED_ROLE_NAMES = ("postgres", "streaming_replica", "cnpg_pooler_pgbouncer")
CNPG_RESERVED_ROLE_PREFIX = "cnpg_"  # CloudNativePG reserves role names starting with it
RESERVED_DATABASE_NAMES = ("postgres", "template0", "template1")
DEFAULT_POSTGRES_VERSION = "16"
DEFAULT_PARAMETERS = {"max_connections": "100", "shared_buffers": "256MB"}


def _immutable(what: str) -> dict[str, Any]:
    return {"x-kubernetes-validations": [
        {"rule": "self == oldSelf", "message": f"{what} is immutable; create a new request instead"}
    ]}


PgIdentifier = Annotated[str, Field(
    pattern=PG_IDENTIFIER_PATTERN, min_length=1, max_length=MAX_PG_NAME_BYTES,
    description="A PostgreSQL name (always quoted, so case matters): letters, digits, '_', '-', '.', '$'; "
                "at most 63 bytes.",
)]
ClusterName = Annotated[str, Field(
    pattern=CLUSTER_NAME_PATTERN, min_length=1, max_length=50,
    description="Name of the CloudNativePG Cluster in the same namespace (immutable).",
    json_schema_extra=_immutable("spec.cluster"),
)]


class CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def to_wire(self) -> dict[str, Any]:
        """The camelCase dict that goes into a manifest (unset optional fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


# --------------------------------------------------------------------------- status


class Condition(CamelModel):
    """A condition in the shape of metav1.Condition."""

    type: str = Field(description="Condition type, e.g. Ready.")
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(description="CamelCase reason, e.g. Applied, Pending, Blocked, PolicyDenied.")
    message: str = Field(default="", description="Human-readable detail.")
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(default=None, description="The spec generation this was set for.")


class IntentStatus(CamelModel):
    # Kopf and future versions may add fields: unknown status fields are preserved, not pruned.
    model_config = ConfigDict(extra="allow", json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})

    observed_generation: int | None = Field(default=None, description="The last spec generation reconciled.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready and friends.")
    message: str | None = Field(default=None, description="One line saying where things stand.")


# --------------------------------------------------------------------------- PgClusterRequest


class StorageSpec(CamelModel):
    # CNPG can grow a volume, never shrink it (its webhook refuses); the API server says so at once.
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "!has(oldSelf.size) || !has(self.size) || quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0",
         "message": "storage.size can only grow (CloudNativePG cannot shrink a volume)"},
    ]})

    size: str = Field(default="10Gi", pattern=QUANTITY_PATTERN, description="Volume size per instance.")
    storage_class: str | None = Field(default=None, description="Kubernetes StorageClass (cluster default if unset).")


class BootstrapSpec(CamelModel):
    database: PgIdentifier = Field(default="app", description="Database created at bootstrap.")
    owner: PgIdentifier = Field(default="app",
                                description="Owner of the bootstrap database (its Secret is <cluster>-app).")


class ResourcesSpec(CamelModel):
    requests: dict[str, str] | None = Field(default=None, description="e.g. {cpu: 500m, memory: 1Gi}")
    limits: dict[str, str] | None = Field(default=None, description="e.g. {memory: 2Gi}")


RECREATE_ANNOTATION = f"{constants.GROUP}/recreate"


def _without_schema_default(schema: dict[str, Any]) -> None:
    """Keep a default out of the CRD so the API server does not fill it in: the operator must see
    whether a field was set explicitly (an adopted Cluster changes only in fields the request sets)."""
    schema.pop("default", None)


K8S_NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
K8sName = Annotated[str, Field(pattern=K8S_NAME_PATTERN, min_length=1, max_length=253)]
_EXCLUSIVE_TARGETS = ("time", "lsn", "name", "xid", "immediate")
_ONE_TARGET_RULE = " + ".join(f"(has(self.{t}) ? 1 : 0)" for t in _EXCLUSIVE_TARGETS) + " <= 1"
_BACKUP_ID_RULE = "!(has(self.name) || has(self.xid) || (has(self.immediate) && self.immediate)) || has(self.backupID)"


class RecoveryTargetSpec(CamelModel):
    """Where recovery stops (CNPG recoveryTarget); none = replay all archived WAL (the latest state)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": _ONE_TARGET_RULE, "message": "set at most one of time, lsn, name, xid, immediate"},
        {"rule": _BACKUP_ID_RULE, "message": "name, xid and immediate targets need backupID (CNPG picks the "
                                             "backup by itself only for time and lsn)"},
    ]})

    time: str | None = Field(default=None, json_schema_extra={"format": "date-time"},
                             description="Recover up to this moment (RFC 3339); must be inside the store's "
                                         "recoverability window.")
    lsn: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$",
                            description="Recover up to this WAL position, e.g. 0/3000060.")
    name: str | None = Field(default=None, min_length=1, description="A restore point created with "
                                                                      "pg_create_restore_point.")
    xid: str | None = Field(default=None, pattern=r"^[0-9]+$", description="Recover up to this transaction id.")
    immediate: bool | None = Field(default=None, description="Stop as soon as the backup is consistent.")
    backup_id: str | None = Field(default=None, alias="backupID", min_length=1,
                                  description="The backup to start from (its status.backupId).")
    exclusive: bool | None = Field(default=None, description="Stop just before the target instead of after it.")


class RestoreFromSpec(CamelModel):
    """Create the Cluster from another cluster's backups (never in place: always a new Cluster)."""

    cluster: str = Field(pattern=CLUSTER_NAME_PATTERN, min_length=1, max_length=50,
                         description="The cluster whose backups are restored (it may no longer exist).")
    store: K8sName = Field(description="The Barman Cloud ObjectStore holding those backups (the name of the "
                                       "PgBackupStoreRequest that archived the source).")
    server_name: str | None = Field(default=None, pattern=CLUSTER_NAME_PATTERN, max_length=63,
                                    description="The source's serverName in the store (default: cluster).")
    target: RecoveryTargetSpec | None = Field(default=None, description="Point in time; default the latest.")


class ReadOnlyQueriesSpec(CamelModel):
    """Read-only SQL for the MCP gateway (run_readonly_query): a dedicated login role, member of
    pg_monitor only, whose credentials reach the gateway through a mounted Secret."""

    enabled: bool = Field(default=False, description="Provision the read-only role mcp_readonly and "
                                                     "project its credentials to the MCP gateway.")
    database: PgIdentifier = Field(default="app", description="The database the gateway connects to.")


_FIXED_PARAMETER_RULE = ("self.all(k, !(k in [" + ", ".join(f"'{p}'" for p in sorted(FIXED_PARAMETERS)) + "]))")
_MAJOR_NOT_DOWN_RULE = "int(self.split('.')[0]) >= int(oldSelf.split('.')[0])"


def _fixed_parameters_refused(value: dict[str, str]) -> dict[str, str]:
    fixed = sorted(k for k in value if k in FIXED_PARAMETERS)
    if fixed:
        raise ValueError(f"{', '.join(fixed)}: fixed by CloudNativePG (its operator manages them); remove them")
    return value


class NodeMaintenanceWindowSpec(CamelModel):
    """Node maintenance (CNPG spec.nodeMaintenanceWindow, api/v1/cluster_types.go NodeMaintenanceWindow)."""

    in_progress: bool = Field(description="A node maintenance is in progress: CloudNativePG lets the node be "
                                          "drained (no PodDisruptionBudget blocks it).")
    reuse_pvc: bool | None = Field(default=None, alias="reusePVC",
                                   description="true (CNPG's default): an instance on a drained node waits for the "
                                               "node and keeps its volume; false: it is recreated on another node "
                                               "with a new volume (needs instances > 1).")


class SynchronousSpec(CamelModel):
    """Synchronous replication (CNPG spec.postgresql.synchronous, api/v1/cluster_types.go)."""

    method: Literal["any", "first"] = Field(description="any: quorum-based; first: priority-based.")
    number: int = Field(ge=1, le=9, description="Synchronous standbys each commit waits for.")
    data_durability: Literal["required", "preferred"] | None = Field(
        default=None, description="required (CNPG's default): writes block without enough standbys; "
                                  "preferred: the number adjusts to the healthy standbys.")
    failover_quorum: bool | None = Field(default=None, description="Check a quorum of synchronous standbys "
                                                                   "before a failover promotes one.")
    max_standby_names_from_cluster: int | None = Field(default=None, ge=0)


class PgClusterRequestSpec(CamelModel):
    """A desired CloudNativePG Cluster; the Cluster gets the request's name."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "!(has(self.postgresVersion) && has(self.imageName))",
         "message": "set either postgresVersion or imageName, not both"},
        {"rule": "!(has(self.restoreFrom) && has(self.adoptExisting) && self.adoptExisting)",
         "message": "restoreFrom creates a new Cluster; it cannot adopt an existing one"},
    ]})

    instances: int = Field(default=3, ge=1, le=10, json_schema_extra=_without_schema_default,
                           description="Number of PostgreSQL instances (1-10); default 3 for a new Cluster, "
                                       "an adopted Cluster keeps its own unless set.")
    storage: StorageSpec = Field(default_factory=StorageSpec)
    postgres_version: str | None = Field(
        default=None, pattern=r"^[0-9]{2}(\.[0-9]+)?$",
        description=f"PostgreSQL major version, e.g. 16 (default {DEFAULT_POSTGRES_VERSION}); "
                    f"the image is {constants.CNPG_IMAGE_REPOSITORY}:<version>. Raising the major on an "
                    "existing Cluster is an in-place major upgrade (all instances stop, pg_upgrade runs); "
                    "it never goes down.",
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": _MAJOR_NOT_DOWN_RULE, "message": "postgresVersion cannot go down (no major downgrade)"}]},
    )
    image_name: str | None = Field(default=None, min_length=1,
                                   description="Full image reference instead of postgresVersion.")
    parameters: Annotated[dict[str, str], AfterValidator(_fixed_parameters_refused)] = Field(
        default_factory=lambda: dict(DEFAULT_PARAMETERS), max_length=200,
        description="postgresql.conf parameters the request owns (default max_connections=100, "
                    "shared_buffers=256MB for a new Cluster; none for an adopted one unless set). Parameters "
                    "CloudNativePG fixes (port, ssl*, shared_preload_libraries, …) are refused.",
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": _FIXED_PARAMETER_RULE,
             "message": "a parameter fixed by CloudNativePG cannot be set (see cnpg_mcp_api/cnpg_rules.py)"}]},
    )
    pg_hba: list[Annotated[str, Field(min_length=1, max_length=1024)]] | None = Field(
        default=None, max_length=64, description="pg_hba.conf lines the request owns (CNPG postgresql.pg_hba).")
    synchronous: SynchronousSpec | None = Field(default=None, description="Synchronous replication.")
    resources: ResourcesSpec | None = Field(default=None, description="CPU/memory for each instance.")
    bootstrap: BootstrapSpec | None = Field(default=None, description="Bootstrap database and owner (default app/app).")
    deletion_policy: Literal["Retain", "Delete"] = Field(
        default="Retain",
        description="Retain (default): deleting the request leaves the Cluster and its data. "
                    "Delete: the Cluster is deleted too.",
    )
    adopt_existing: bool = Field(
        default=False,
        description="Take over an existing Cluster of the same name that no request manages (never recreates it); "
                    "only the fields set explicitly in this spec are changed on it.",
    )
    restore_from: RestoreFromSpec | None = Field(
        default=None, json_schema_extra=_immutable("spec.restoreFrom"),
        description="Bootstrap the new Cluster from another cluster's backups (point-in-time recovery) instead "
                    "of an empty database; immutable.",
    )
    read_only_queries: ReadOnlyQueriesSpec | None = Field(
        default=None,
        description="Let the MCP gateway run read-only SQL on this cluster (off by default; "
                    "docs/diagnosis.md).")
    node_maintenance_window: NodeMaintenanceWindowSpec | None = Field(
        default=None, description="Node maintenance window (CNPG spec.nodeMaintenanceWindow): set inProgress "
                                  "while the Kubernetes nodes are drained, unset it afterwards.")


class ReadOnlyQueriesStatus(CamelModel):
    """Where read-only SQL stands (never a credential)."""

    enabled: bool = False
    ready: bool = Field(default=False, description="The role exists and its credentials are projected.")
    role: str | None = Field(default=None, description="The PostgreSQL role the gateway logs in as.")
    role_request: str | None = Field(default=None, description="The PgRoleRequest that produces the role.")
    host: str | None = Field(default=None, description="The read-only Service the gateway connects to.")
    credentials: str | None = Field(default=None, description="<gateway namespace>/<Secret>:<key> of the "
                                                              "projected credentials.")
    message: str | None = None


class PgClusterRequestStatus(IntentStatus):
    cluster: str | None = Field(default=None, description="Name of the CNPG Cluster.")
    phase: str | None = Field(default=None, description="CNPG's phase text.")
    instances: int | None = None
    ready_instances: int | None = None
    current_primary: str | None = None
    cluster_uid: str | None = Field(default=None, alias="clusterUID",
                                    description="UID of the Cluster this request produced or adopted; once set, "
                                                "a missing Cluster is reported (ClusterDeleted), not recreated.")
    recreate_acknowledged: str | None = Field(
        default=None,
        description=f"The last value of the {RECREATE_ANNOTATION} annotation the operator has seen; setting the "
                    "annotation to a new value while the Cluster is deleted creates it again (empty).")
    read_only_queries: ReadOnlyQueriesStatus | None = Field(default=None,
                                                            description="Read-only SQL for the MCP gateway.")
    last_change: str | None = Field(
        default=None, description="The last configuration change the operator applied to the Cluster and its "
                                  "effect (reload, restart of every instance, in-place major upgrade).")


# --------------------------------------------------------------------------- PgRoleRequest


class PasswordSpec(CamelModel):
    rotation: str | None = Field(
        default=None, max_length=253,
        description="Opaque token; changing it (e.g. to a timestamp) generates a new password. Nothing else does.",
    )


_PRIVILEGED_ROLE_RULE = (
    "(has(self.privileged) && self.privileged) || !("
    "(has(self.superuser) && self.superuser) || (has(self.replication) && self.replication) || "
    "(has(self.bypassrls) && self.bypassrls) || (has(self.createrole) && self.createrole))"
)
_PRIVILEGED_MEMBERSHIP_RULE = (
    "(has(self.privileged) && self.privileged) || !has(self.inRoles) || "
    "self.inRoles.all(r, !r.startsWith('pg_') && !(r in ['postgres', 'streaming_replica']))"
)
_RESERVED_ROLE_RULE = (
    "!(self.roleName in [" + ", ".join(f"'{n}'" for n in RESERVED_ROLE_NAMES) + "]) && "
    "!self.roleName.lowerAscii().startsWith('pg_') && "
    f"!self.roleName.startsWith('{CNPG_RESERVED_ROLE_PREFIX}')"  # CNPG's DatabaseRole CRD refuses it
)


class PgRoleRequestSpec(CamelModel):
    """A PostgreSQL role in a CNPG cluster, with its password Secret."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": _RESERVED_ROLE_RULE,
         "message": "roleName is reserved (postgres, streaming_replica, pg_*, cnpg_*)"},
        {"rule": _PRIVILEGED_ROLE_RULE,
         "message": "superuser, replication, bypassrls and createrole need privileged: true (and an admin policy that "
                    "allows privileged roles in this namespace)"},
        {"rule": _PRIVILEGED_MEMBERSHIP_RULE,
         "message": "membership in postgres, streaming_replica or pg_* roles needs privileged: true (and an "
                    "admin policy that allows privileged roles in this namespace)"},
    ]})

    cluster: ClusterName
    role_name: Annotated[PgIdentifier, Field(json_schema_extra=_immutable("spec.roleName"))]
    login: bool = Field(default=True, description="The role can log in.")
    superuser: bool = Field(default=False, description="Privileged: needs privileged: true and the admin policy.")
    inherit: bool = Field(default=True, description="Inherit privileges of roles it is a member of.")
    createdb: bool = False
    createrole: bool = Field(default=False, description="Privileged (close to superuser before PostgreSQL 16): "
                                                        "needs privileged: true and the admin policy.")
    replication: bool = Field(default=False, description="Privileged: needs privileged: true and the admin policy.")
    bypassrls: bool = Field(default=False, description="Privileged: needs privileged: true and the admin policy.")
    connection_limit: int = Field(default=-1, ge=-1, description="-1 means no limit.")
    valid_until: str | None = Field(default=None, description="Password expiry (RFC 3339 timestamp).",
                                    json_schema_extra={"format": "date-time"})
    in_roles: list[PgIdentifier] = Field(
        default_factory=list, max_length=32,
        description="Roles this role is a member of. Roles produced by Ready requests of this namespace are "
                    "allowed; any other (the bootstrap owner, pg_*, roles created elsewhere) needs "
                    "privileged: true and the admin policy.")
    comment: str | None = Field(default=None, max_length=1024)
    privileged: bool = Field(default=False,
                             description="Explicit acknowledgement for privileged attributes or memberships "
                                         "(granted only where the operator's admin policy allows it).")
    password: PasswordSpec = Field(default_factory=PasswordSpec)
    reclaim_policy: Literal["delete", "retain"] = Field(
        default="delete",
        description="delete (default): deleting the request drops the role. retain: the role stays in PostgreSQL.",
    )


class PgRoleRequestStatus(IntentStatus):
    secret_name: str | None = Field(default=None, description="Secret holding the password (never in status).")
    database_role: str | None = Field(default=None, description="Name of the CNPG DatabaseRole (DatabaseRole backend).")
    backend: Literal["DatabaseRole", "ManagedRoles"] | None = None
    applied: bool | None = Field(default=None, description="CNPG reports the role applied.")
    password_rotation: str | None = Field(
        default=None,
        description="The spec.password.rotation value the current password Secret was issued for "
                    "(a token, never a password); a deleted Secret is re-issued only for a new one.",
    )


# --------------------------------------------------------------------------- PgDatabaseRequest


class ExtensionSpec(CamelModel):
    name: str = Field(min_length=1, max_length=63)
    version: str | None = None
    schema_name: str | None = Field(default=None, alias="schema")
    ensure: Literal["present", "absent"] = "present"


class SchemaSpec(CamelModel):
    name: PgIdentifier
    owner: PgIdentifier | None = None
    ensure: Literal["present", "absent"] = "present"


class PgDatabaseRequestSpec(CamelModel):
    """A PostgreSQL database in a CNPG cluster (a CNPG Database object)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "!(self.name in [" + ", ".join(f"'{n}'" for n in RESERVED_DATABASE_NAMES) + "])",
         "message": "name is reserved (postgres, template0, template1)"},
    ]})

    cluster: ClusterName
    name: Annotated[PgIdentifier, Field(json_schema_extra=_immutable("spec.name"))]
    owner: PgIdentifier
    database_reclaim_policy: Literal["retain", "delete"] = Field(
        default="retain",
        description="retain (default): deleting the request keeps the database. delete: it is dropped.",
    )
    encoding: str | None = None
    locale: str | None = None
    template: str | None = None
    extensions: list[ExtensionSpec] = Field(default_factory=list, max_length=64)
    schemas: list[SchemaSpec] = Field(default_factory=list, max_length=64)


class PgDatabaseRequestStatus(IntentStatus):
    database: str | None = Field(default=None, description="Name of the CNPG Database object.")
    applied: bool | None = Field(default=None, description="CNPG reports the database applied.")


# --------------------------------------------------------------------------- backups (Barman Cloud plugin)

# Six fields, seconds first (robfig/cron, as CNPG's ScheduledBackup reads it); cnpg_mcp_api.cron checks ranges.
SIX_FIELD_CRON_PATTERN = r"^\s*\S+(\s+\S+){5}\s*$"
RETENTION_PATTERN = r"^[1-9][0-9]*[dwm]$"


class SecretKeyRef(CamelModel):
    """A key of a Secret in the same namespace (the value never appears in an intent)."""

    name: K8sName
    key: str = Field(min_length=1, max_length=253)


class S3Credentials(CamelModel):
    """S3 credentials: keys of one Secret, or the pod's IAM role."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "has(self.secretName) != (has(self.inheritFromIAMRole) && self.inheritFromIAMRole)",
         "message": "set either secretName or inheritFromIAMRole: true"},
    ]})

    secret_name: K8sName | None = Field(default=None, description="Secret holding the keys below.")
    access_key_id_key: str = Field(default="ACCESS_KEY_ID", min_length=1)
    secret_access_key_key: str = Field(default="ACCESS_SECRET_KEY", min_length=1)
    region_key: str | None = Field(default=None, min_length=1)
    session_token_key: str | None = Field(default=None, min_length=1)
    inherit_from_iam_role: bool | None = Field(default=None, alias="inheritFromIAMRole")


class AzureCredentials(CamelModel):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "(has(self.secretName) ? 1 : 0) + ((has(self.inheritFromAzureAD) && self.inheritFromAzureAD) ? 1 : 0)"
                 " + ((has(self.useDefaultAzureCredentials) && self.useDefaultAzureCredentials) ? 1 : 0) == 1",
         "message": "set exactly one of secretName, inheritFromAzureAD: true, useDefaultAzureCredentials: true"},
        {"rule": "!has(self.secretName) || has(self.connectionStringKey) || has(self.storageAccountKey)",
         "message": "with secretName, name the key of the connection string or of the storage account"},
    ]})

    secret_name: K8sName | None = None
    connection_string_key: str | None = Field(default=None, min_length=1)
    storage_account_key: str | None = Field(default=None, min_length=1)
    storage_key_key: str | None = Field(default=None, min_length=1)
    storage_sas_token_key: str | None = Field(default=None, min_length=1)
    inherit_from_azure_ad: bool | None = Field(default=None, alias="inheritFromAzureAD")
    use_default_azure_credentials: bool | None = None


class GoogleCredentials(CamelModel):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "has(self.secretName) != (has(self.gkeEnvironment) && self.gkeEnvironment)",
         "message": "set either secretName or gkeEnvironment: true"},
    ]})

    secret_name: K8sName | None = None
    application_credentials_key: str = Field(default="credentials.json", min_length=1)
    gke_environment: bool | None = None


class WalSettings(CamelModel):
    compression: Literal["bzip2", "gzip", "lz4", "snappy", "xz", "zstd"] | None = None
    max_parallel: int | None = Field(default=None, ge=1, le=64)


class DataSettings(CamelModel):
    compression: Literal["bzip2", "gzip", "lz4", "snappy"] | None = None
    jobs: int | None = Field(default=None, ge=1, le=64)


_ONE_CREDENTIALS_RULE = " + ".join(
    f"(has(self.{c}) ? 1 : 0)" for c in ("s3Credentials", "azureCredentials", "googleCredentials")) + " == 1"


class PgBackupStoreRequestSpec(CamelModel):
    """A Barman Cloud object store (an ObjectStore named like the request) and, with `cluster`, that
    Cluster's continuous WAL archiving into it (the base of every backup and of point-in-time recovery)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": _ONE_CREDENTIALS_RULE,
         "message": "set exactly one of s3Credentials, azureCredentials, googleCredentials"},
        {"rule": "!has(self.serverName) || has(self.cluster)", "message": "serverName needs cluster"},
    ]})

    destination_path: str = Field(pattern=r"^(s3|gs|https?)://\S+$", max_length=1024,
                                  description="Where backups and WAL go, e.g. s3://bucket/path.")
    endpoint_url: str | None = Field(default=None, alias="endpointURL", pattern=r"^https?://\S+$",
                                     description="Object store endpoint (MinIO, ...); default the provider's.")
    endpoint_ca: SecretKeyRef | None = Field(default=None, description="CA bundle of the endpoint.")
    s3_credentials: S3Credentials | None = None
    azure_credentials: AzureCredentials | None = None
    google_credentials: GoogleCredentials | None = None
    wal: WalSettings | None = None
    data: DataSettings | None = None
    retention_policy: str | None = Field(default=None, pattern=RETENTION_PATTERN,
                                         description="Keep backups and WAL this long, e.g. 30d, 4w, 6m.")
    cluster: ClusterName | None = Field(default=None,
                                        description="Archive this Cluster's WAL here (turns on the Barman Cloud "
                                                    "plugin as the Cluster's WAL archiver); immutable.")
    server_name: str | None = Field(default=None, pattern=CLUSTER_NAME_PATTERN, max_length=63,
                                    json_schema_extra=_immutable("spec.serverName"),
                                    description="Folder of this Cluster in the store (default: the cluster name); "
                                                "a restored cluster must use a new one.")


class PgBackupStoreRequestStatus(IntentStatus):
    object_store: str | None = Field(default=None, description="Name of the Barman Cloud ObjectStore.")
    cluster: str | None = Field(default=None, description="The Cluster archiving into it.")
    server_name: str | None = None
    archiving: bool | None = Field(default=None, description="The Cluster's WAL archiver is this store.")
    first_recoverability_point: str | None = Field(default=None, description="Earliest time a restore can reach.")
    last_successful_backup_time: str | None = None
    last_failed_backup_time: str | None = None


_ONLINE_RULE = "!has(self.online) || self.method == 'volumeSnapshot'"
_ONLINE_MESSAGE = "online applies to volumeSnapshot backups only"


BackupMethod = Literal["plugin", "volumeSnapshot"]
BACKUP_METHOD_DESCRIPTION = ("plugin (default: Barman Cloud, needs a PgBackupStoreRequest for the cluster) or "
                             "volumeSnapshot.")


class PgBackupRequestSpec(CamelModel):
    """One backup now (a CNPG Backup named like the request); immutable, like the Backup itself."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": _ONLINE_RULE, "message": _ONLINE_MESSAGE},
        {"rule": "self == oldSelf", "message": "a backup request is immutable; create a new one"},
    ]})

    cluster: ClusterName
    method: BackupMethod = Field(default="plugin", description=BACKUP_METHOD_DESCRIPTION)
    target: Literal["primary", "prefer-standby"] | None = Field(
        default=None, description="Which instance to back up (default: the Cluster's, i.e. prefer-standby).")
    online: bool | None = Field(default=None, description="volumeSnapshot only: hot (true) or cold backup.")
    ttl_seconds_after_finished: int = Field(
        default=604800, ge=0,
        description="Delete this request that long after the backup finished (default 7 days); the Backup and "
                    "its data stay.")


class PgBackupRequestStatus(IntentStatus):
    backup: str | None = Field(default=None, description="Name of the CNPG Backup.")
    backup_uid: str | None = Field(default=None, alias="backupUID", description="UID of the Backup produced.")
    phase: str | None = Field(default=None, description="CNPG's Backup phase.")
    backup_id: str | None = Field(default=None, alias="backupID", description="The Backup's backupId.")
    started_at: str | None = None
    stopped_at: str | None = None
    error: str | None = None
    finished_at: str | None = Field(default=None, description="When the backup was seen finished (TTL start).")


class PgBackupScheduleRequestSpec(CamelModel):
    """Backups on a schedule (a CNPG ScheduledBackup named like the request)."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": _ONLINE_RULE, "message": _ONLINE_MESSAGE},
    ]})

    cluster: ClusterName
    schedule: str = Field(pattern=SIX_FIELD_CRON_PATTERN, max_length=256,
                          description="Six-field cron, seconds first: '0 0 2 * * *' = 02:00:00 every day (UTC).")
    suspend: bool = Field(default=False, description="Pause the schedule.")
    immediate: bool = Field(default=False, description="Also take one backup as soon as the schedule is created.")
    method: BackupMethod = Field(default="plugin", description=BACKUP_METHOD_DESCRIPTION)
    target: Literal["primary", "prefer-standby"] | None = None
    online: bool | None = Field(default=None, description="volumeSnapshot only.")
    backup_owner_reference: Literal["none", "self", "cluster"] = Field(
        default="none",
        description="Who owns the Backups it creates: none (default: they outlive the schedule), self (the "
                    "ScheduledBackup), cluster.")


class PgBackupScheduleRequestStatus(IntentStatus):
    scheduled_backup: str | None = Field(default=None, description="Name of the CNPG ScheduledBackup.")
    last_schedule_time: str | None = None
    next_schedule_time: str | None = None


# --------------------------------------------------------------------------- PgPoolerRequest

_PGBOUNCER_PARAMETER_RULE = ("self.all(k, k in [" + ", ".join(f"'{p}'" for p in sorted(PGBOUNCER_PARAMETERS))
                             + "])")


def _pgbouncer_parameters_allowed(value: dict[str, str]) -> dict[str, str]:
    unknown = sorted(k for k in value if k not in PGBOUNCER_PARAMETERS)
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: not among the PgBouncer parameters CloudNativePG allows "
                         "(e.g. default_pool_size, max_client_conn, query_timeout)")
    return value


class PgBouncerSpec(CamelModel):
    pool_mode: Literal["session", "transaction"] = Field(default="session",
                                                         description="session (default) or transaction pooling.")
    parameters: Annotated[dict[str, str], AfterValidator(_pgbouncer_parameters_allowed)] = Field(
        default_factory=dict, max_length=64,
        description="PgBouncer settings from CloudNativePG's allow-list (default_pool_size, max_client_conn, …).",
        json_schema_extra={"x-kubernetes-validations": [
            {"rule": _PGBOUNCER_PARAMETER_RULE,
             "message": "a PgBouncer parameter outside CloudNativePG's allow-list (see cnpg_mcp_api/cnpg_rules.py)"}]},
    )
    paused: bool = Field(default=False, description="PAUSE PgBouncer (clients wait) until set back to false.")


class PgPoolerRequestSpec(CamelModel):
    """A PgBouncer pooler in front of a CloudNativePG Cluster (a CNPG Pooler named like the request)."""

    cluster: ClusterName
    type: Literal["rw", "ro", "r"] = Field(default="rw", description="rw: to the primary (default); ro: to the "
                                                                     "replicas; r: to any instance.")
    instances: int = Field(default=1, ge=0, le=10, description="PgBouncer pods (0 stops the pooler).")
    pgbouncer: PgBouncerSpec = Field(default_factory=PgBouncerSpec)


class PgPoolerRequestStatus(IntentStatus):
    pooler: str | None = Field(default=None, description="Name of the CNPG Pooler (and of its Service).")
    pooler_uid: str | None = Field(default=None, alias="poolerUID", description="UID of the Pooler produced.")
    phase: str | None = Field(default=None, description="CNPG's Pooler phase: active, paused, inactive, failed.")
    instances: int | None = Field(default=None, description="PgBouncer pods as CNPG reports them.")
    service: str | None = Field(default=None, description="Where clients connect: <pooler>.<namespace>:5432.")


# --------------------------------------------------------------------------- PgOperationRequest

OperationType = Literal["switchover", "restart", "reload", "fence", "unfence", "hibernate", "resume",
                        "rebuildReplica"]
OPERATION_TYPES: tuple[str, ...] = ("switchover", "restart", "reload", "fence", "unfence", "hibernate", "resume",
                                    "rebuildReplica")
# Phases of an operation: one-shot, like a Job.
OPERATION_PENDING, OPERATION_RUNNING = "Pending", "Running"
OPERATION_SUCCEEDED, OPERATION_FAILED = "Succeeded", "Failed"
OPERATION_FINISHED = (OPERATION_SUCCEEDED, OPERATION_FAILED)
_NO_INSTANCE_TYPES = ("reload", "hibernate", "resume")


class PgOperationRequestSpec(CamelModel):
    """One day-2 action on a CloudNativePG cluster, done the way `kubectl cnpg` does it; immutable."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        {"rule": "self == oldSelf", "message": "an operation request is immutable; create a new one"},
        {"rule": "self.type != 'rebuildReplica' || has(self.instance)",
         "message": "rebuildReplica needs instance (the replica to rebuild)"},
        {"rule": "!(self.type in [" + ", ".join(f"'{t}'" for t in _NO_INSTANCE_TYPES) + "]) || !has(self.instance)",
         "message": "reload, hibernate and resume act on the whole cluster: leave instance out"},
    ]})

    type: OperationType = Field(
        description="switchover (promote a replica), restart (all instances, or one), reload (configuration), "
                    "fence / unfence (one instance, or all), hibernate / resume, rebuildReplica.")
    cluster: ClusterName
    instance: str | None = Field(
        default=None, pattern=K8S_NAME_PATTERN, min_length=1, max_length=63,
        description="The instance (Pod name, e.g. main-db-2): switchover target (default: a healthy replica), "
                    "the one instance to restart, to fence/unfence (default: all), or the replica to rebuild.")
    timeout_seconds: int = Field(default=600, ge=10, le=86400,
                                 description="Failed when CNPG has not shown the effect within this time.")
    ttl_seconds_after_finished: int = Field(default=86400, ge=0,
                                            description="Delete this request that long after it finished.")


class PgOperationRequestStatus(IntentStatus):
    phase: Literal["Pending", "Running", "Succeeded", "Failed"] | None = None
    cluster_uid: str | None = Field(default=None, alias="clusterUID", description="The Cluster acted on.")
    instance: str | None = Field(default=None, description="The instance acted on (chosen when not given).")
    started_at: str | None = Field(default=None, description="When the operator wrote CNPG's trigger.")
    finished_at: str | None = Field(default=None, description="When it succeeded or failed (TTL start).")
    evidence: dict[str, str] | None = Field(
        default=None, description="What CNPG reported that proves the effect (e.g. currentPrimary, the "
                                  "cnpg.io/hibernation condition, restarted Pods).")


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True, kw_only=True)
class IntentKind:
    """Everything about one kind that the CRD generator and the clients need."""

    kind: str
    plural: str
    short_names: list[str]
    spec: type[CamelModel]
    status: type[IntentStatus]
    description: str
    columns: list[dict[str, str]]
    root_rules: list[dict[str, str]] = field(default_factory=list)


_READY = {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'}
_REASON = {"name": "Reason", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'}
_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}
_MESSAGE = {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": "1"}
# Dots in an annotation key are escaped in a printer column's JSONPath.
_REQUESTER = {"name": "Requester", "type": "string",
              "jsonPath": ".metadata.annotations." + constants.REQUESTER_ANNOTATION.replace(".", "\\.")}
_REQUESTED_BY = {"name": "Requested-By", "type": "string", "priority": "1",
                 "jsonPath": ".metadata.annotations." + constants.REQUESTED_BY_ANNOTATION.replace(".", "\\.")}
# Every kind ends with: Ready, Reason, Requester (who asked, per the API server), Age; -o wide adds the
# message and the client's own requested-by (the MCP user behind a non-impersonating gateway).
_COMMON_COLUMNS = (_READY, _REASON, _REQUESTER, _AGE, _MESSAGE, _REQUESTED_BY)

CLUSTER_REQUEST = IntentKind(
    kind=constants.CLUSTER_REQUEST_KIND, plural=constants.CLUSTER_REQUEST_PLURAL, short_names=["pgcr"],
    spec=PgClusterRequestSpec, status=PgClusterRequestStatus,
    description="A desired CloudNativePG Cluster, reconciled by cnpg-mcp.",
    columns=[{"name": "Instances", "type": "integer", "jsonPath": ".spec.instances"},
             {"name": "Ready-Instances", "type": "integer", "jsonPath": ".status.readyInstances"},
             {"name": "Phase", "type": "string", "jsonPath": ".status.phase"}, *_COMMON_COLUMNS],
    root_rules=[{
        "rule": f"self.metadata.name.size() <= 50 && self.metadata.name.matches('{CLUSTER_NAME_PATTERN}')",
        "message": "metadata.name becomes the Cluster name: lowercase letters, digits and '-', "
                   "at most 50 characters",
    }],
)
ROLE_REQUEST = IntentKind(
    kind=constants.ROLE_REQUEST_KIND, plural=constants.ROLE_REQUEST_PLURAL, short_names=["pgrr"],
    spec=PgRoleRequestSpec, status=PgRoleRequestStatus,
    description="A PostgreSQL role in a CloudNativePG cluster, with a generated password Secret.",
    columns=[{"name": "Cluster", "type": "string", "jsonPath": ".spec.cluster"},
             {"name": "Role", "type": "string", "jsonPath": ".spec.roleName"},
             {"name": "Secret", "type": "string", "jsonPath": ".status.secretName"}, *_COMMON_COLUMNS],
)
DATABASE_REQUEST = IntentKind(
    kind=constants.DATABASE_REQUEST_KIND, plural=constants.DATABASE_REQUEST_PLURAL, short_names=["pgdr"],
    spec=PgDatabaseRequestSpec, status=PgDatabaseRequestStatus,
    description="A PostgreSQL database in a CloudNativePG cluster (a CNPG Database), reconciled by cnpg-mcp.",
    columns=[{"name": "Cluster", "type": "string", "jsonPath": ".spec.cluster"},
             {"name": "Database", "type": "string", "jsonPath": ".spec.name"},
             {"name": "Owner", "type": "string", "jsonPath": ".spec.owner"}, *_COMMON_COLUMNS],
)
_CLUSTER_COLUMN = {"name": "Cluster", "type": "string", "jsonPath": ".spec.cluster"}
BACKUP_STORE_REQUEST = IntentKind(
    kind=constants.BACKUP_STORE_REQUEST_KIND, plural=constants.BACKUP_STORE_REQUEST_PLURAL, short_names=["pgbsr"],
    spec=PgBackupStoreRequestSpec, status=PgBackupStoreRequestStatus,
    description="A Barman Cloud object store (ObjectStore) and a Cluster's WAL archiving into it.",
    columns=[_CLUSTER_COLUMN, {"name": "Destination", "type": "string", "jsonPath": ".spec.destinationPath"},
             {"name": "Recoverable-Since", "type": "string", "jsonPath": ".status.firstRecoverabilityPoint"},
             _READY, _REASON, _AGE, _MESSAGE],
)
BACKUP_REQUEST = IntentKind(
    kind=constants.BACKUP_REQUEST_KIND, plural=constants.BACKUP_REQUEST_PLURAL, short_names=["pgbr"],
    spec=PgBackupRequestSpec, status=PgBackupRequestStatus,
    description="One backup of a CloudNativePG cluster (a CNPG Backup), reconciled by cnpg-mcp.",
    columns=[_CLUSTER_COLUMN, {"name": "Method", "type": "string", "jsonPath": ".spec.method"},
             {"name": "Phase", "type": "string", "jsonPath": ".status.phase"}, _READY, _REASON, _AGE, _MESSAGE],
)
BACKUP_SCHEDULE_REQUEST = IntentKind(
    kind=constants.BACKUP_SCHEDULE_REQUEST_KIND, plural=constants.BACKUP_SCHEDULE_REQUEST_PLURAL,
    short_names=["pgbsch"], spec=PgBackupScheduleRequestSpec, status=PgBackupScheduleRequestStatus,
    description="Scheduled backups of a CloudNativePG cluster (a CNPG ScheduledBackup), reconciled by cnpg-mcp.",
    columns=[_CLUSTER_COLUMN, {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
             {"name": "Next", "type": "string", "jsonPath": ".status.nextScheduleTime"},
             _READY, _REASON, _AGE, _MESSAGE],
)
POOLER_REQUEST = IntentKind(
    kind=constants.POOLER_REQUEST_KIND, plural=constants.POOLER_REQUEST_PLURAL, short_names=["pgpr"],
    spec=PgPoolerRequestSpec, status=PgPoolerRequestStatus,
    description="A PgBouncer pooler for a CloudNativePG cluster (a CNPG Pooler), reconciled by cnpg-mcp.",
    columns=[_CLUSTER_COLUMN, {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
             {"name": "Instances", "type": "integer", "jsonPath": ".spec.instances"},
             {"name": "Phase", "type": "string", "jsonPath": ".status.phase"}, *_COMMON_COLUMNS],
    root_rules=[{
        "rule": "self.metadata.name != self.spec.cluster",
        "message": "a Pooler cannot have the name of a Cluster (CloudNativePG's Services would clash); "
                   "choose e.g. <cluster>-pooler-rw",
    }, {
        "rule": f"self.metadata.name.size() <= 63 && self.metadata.name.matches('{CLUSTER_NAME_PATTERN}')",
        "message": "metadata.name becomes the Pooler's Deployment and Service name: lowercase letters, digits "
                   "and '-', at most 63 characters",
    }],
)
OPERATION_REQUEST = IntentKind(
    kind=constants.OPERATION_REQUEST_KIND, plural=constants.OPERATION_REQUEST_PLURAL, short_names=["pgops"],
    spec=PgOperationRequestSpec, status=PgOperationRequestStatus,
    description="One day-2 operation on a CloudNativePG cluster (switchover, restart, reload, fence, hibernate...).",
    columns=[_CLUSTER_COLUMN, {"name": "Type", "type": "string", "jsonPath": ".spec.type"},
             {"name": "Instance", "type": "string", "jsonPath": ".status.instance"},
             {"name": "Phase", "type": "string", "jsonPath": ".status.phase"}, _REASON, _REQUESTER, _AGE, _MESSAGE,
             _REQUESTED_BY],
)
KINDS = (CLUSTER_REQUEST, ROLE_REQUEST, DATABASE_REQUEST, BACKUP_STORE_REQUEST, BACKUP_REQUEST,
         BACKUP_SCHEDULE_REQUEST, POOLER_REQUEST, OPERATION_REQUEST)


def manifest(kind: IntentKind, name: str, spec: CamelModel, *, namespace: str | None = None,
             labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    """The full object for an intent (what `kubectl apply` or the gateway sends)."""
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    if labels:
        metadata["labels"] = dict(labels)
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": constants.API_VERSION, "kind": kind.kind, "metadata": metadata, "spec": spec.to_wire()}
