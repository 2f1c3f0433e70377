"""The structured output of every tool (published as its outputSchema; the SDK validates each result).

Field names are the original server's JSON fields. Extra fields are refused so the schema cannot drift
from what the tools return.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Output(BaseModel):
    model_config = ConfigDict(extra="forbid")


class State(Output):
    """The reconcile state of an intent (or of a CNPG declaration)."""

    name: str | None = Field(None, description="The intent's name (absent for declarations outside cnpg-mcp)")
    ready: bool
    reason: str
    message: str | None = None


class Condition(Output):
    type: str | None
    status: str | None
    reason: str | None
    message: str | None


class Event(Output):
    type: str | None
    reason: str | None
    message: str | None
    object: str
    last_seen: str | None
    count: int | None


class InstanceState(Output):
    name: str
    role: str = Field(description="primary or replica")
    status: str = Field(description="CNPG's instancesStatus bucket (healthy, replicating, failed…) or unknown")
    ready: bool
    timeline: int | None = Field(description="From instancesReportedState, when CNPG reported it")


class ManagedRolesSummary(Output):
    by_status: dict[str, int] = Field(description="How many roles CNPG reports in each state")
    cannot_reconcile: dict[str, str] = Field(description="Role → why CNPG cannot reconcile it")


class Certificate(Output):
    secret: str
    expires: str = Field(description="As CloudNativePG reports it")
    days_left: int | None


class Recoverability(Output):
    """How far back a point-in-time recovery can go (the backups' recoverability window)."""

    source: str = Field(description="Where it was read: the plugin's ObjectStore, or the Cluster status (in-tree)")
    store: str | None = Field(description="The Barman Cloud ObjectStore archiving the WAL")
    server_name: str | None = Field(description="The cluster's folder in the store")
    first_recoverability_point: str | None = Field(description="The earliest time a restore can reach")
    last_successful_backup: str | None
    last_failed_backup: str | None
    note: str | None = Field(description="Why the window is empty or unknown")


class ClusterSummary(Output):
    name: str
    namespace: str | None
    instances: int | None
    ready_instances: int
    phase: str
    current_primary: str | None
    postgres_version: str | None = None
    image: str | None = None
    storage_size: str | None = None
    conditions: list[Condition] | None = None
    storage_class: str | None = None
    postgresql_parameters: dict[str, Any] | None = None
    managed_roles: list[str | None] | None = None
    managed_roles_status: dict[str, Any] | None = None
    request: State | None = Field(description="The PgClusterRequest managing it; null: not managed by cnpg-mcp")
    events: list[Event] | None = Field(None, description="Newest events (get_cluster_status: 3, detailed 10)")
    # The health digest (get_cluster_status only).
    verdict: str | None = Field(None, description="One line: healthy, or the most important problem")
    next_check: str | None = Field(None, description="What to look at next (often a tool call); null when healthy")
    problems: list[str] | None = Field(None, description="Every problem found, most important first")
    phase_reason: str | None = None
    target_primary: str | None = Field(None, description="Differs from current_primary during a switchover")
    timeline: int | None = None
    instances_status: list[InstanceState] | None = None
    key_conditions: dict[str, str] | None = Field(None, description="Ready, ContinuousArchiving, "
                                                  "LastBackupSucceeded, cnpg.io/hibernation: 'status (reason)'")
    managed_roles_summary: ManagedRolesSummary | None = None
    certificates: list[Certificate] | None = Field(None, description="status.certificates.expirations")
    recoverability: Recoverability | None = Field(None, description="The backups' recoverability window; null "
                                                  "when the cluster has no backups configured")


class ClusterList(Output):
    clusters: list[ClusterSummary]
    count: int = Field(description="Clusters in this answer (one page)")
    scope: str
    total: int = Field(description="Clusters in the namespace, all pages")
    phases: dict[str, int] = Field(description="How many of all the clusters are in each phase")
    continue_: str | None = Field(None, alias="continue",
                                  description="Pass as 'continue' for the next page; absent on the last page")


class ClusterCreated(Output):
    dry_run: bool
    created: bool = Field(description="Whether the PgClusterRequest was created")
    manifest: dict[str, Any] | None = Field(None, description="What would be applied (dry_run)")
    name: str | None = None
    namespace: str | None = None
    request: str | None = Field(None, description="The PgClusterRequest, as <plural>/<name>")
    app_secret: str | None = Field(None, description="The Secret that will hold the 'app' user's credentials")
    ready: bool | None = Field(None, description="With wait: whether CNPG reported the cluster ready in time")
    waited_seconds: float | None = None
    cluster_created: bool | None = Field(None, description="Whether the operator created the Cluster yet")


class ClusterScaled(Output):
    dry_run: bool
    name: str
    namespace: str
    current_instances: int
    instances: int
    adopted: bool = Field(description="The Cluster was not managed by cnpg-mcp and is adopted by a new request")
    spec: dict[str, Any] = Field(description="The PgClusterRequest's spec as written")


class ClusterDeleted(Output):
    name: str
    namespace: str
    deleted: bool = Field(description="Whether the Cluster is gone")
    dry_run: bool
    instances: int | None
    storage_per_instance: str
    role_requests: list[str]
    database_requests: list[str]
    adopted: bool
    deletion_requested: bool | None = None


class RoleEntry(Output):
    name: str
    ensure: str
    login: bool
    superuser: bool
    inherit: bool
    createdb: bool
    createrole: bool
    replication: bool
    password_secret: str = Field(description="The Secret holding the password ('none' if unknown); never the "
                                             "password")
    in_roles: list[str]
    source: str = Field(description="Where the role is declared")
    status: State | None


class RoleList(Output):
    cluster: str
    roles: list[RoleEntry]
    count: int = Field(description="Entries in this answer (one page)")
    total: int = Field(description="Entries of the cluster, all pages")
    continue_: str | None = Field(None, alias="continue",
                                  description="Pass as 'continue' for the next page; absent on the last page")


class RoleCreated(Output):
    dry_run: bool
    created: bool
    role: str
    cluster: str
    request: str
    password_secret: str
    manifest: dict[str, Any]


class Change(Output):
    old: Any
    new: Any


class RoleUpdated(Output):
    changed: bool
    role: str
    dry_run: bool | None = None
    changes: dict[str, Change] | None = None
    password_rotated: bool | None = None


class RoleDeleted(Output):
    dry_run: bool
    deleted: bool
    role: str
    reclaim_policy: str


class DatabaseEntry(Output):
    crd_name: str
    database_name: str | None
    owner: str | None
    ensure: str
    reclaim_policy: str
    applied: bool | None
    message: str | None
    request: State | None


class DatabaseList(Output):
    cluster: str
    databases: list[DatabaseEntry]
    count: int = Field(description="Entries in this answer (one page)")
    total: int = Field(description="Entries of the cluster, all pages")
    continue_: str | None = Field(None, alias="continue",
                                  description="Pass as 'continue' for the next page; absent on the last page")


class DatabaseCreated(Output):
    dry_run: bool
    created: bool
    database: str
    owner: str
    cluster: str
    request: str
    manifest: dict[str, Any]


class DatabaseDeleted(Output):
    dry_run: bool
    deleted: bool
    database: str
    reclaim_policy: str


class LogInstance(Output):
    pod: str
    role: str | None = Field(description="primary or replica (the Pod's cnpg.io/instanceRole label)")
    error: str | None = Field(description="Why this instance's log could not be read; null when it was")


class LogLine(Output):
    pod: str
    time: str | None = Field(description="RFC 3339, as CloudNativePG logged it; null for a line that is not JSON")
    level: str | None
    logger: str | None = Field(description="'postgres' for PostgreSQL's own lines, else the instance manager's")
    message: str = Field(description="PostgreSQL lines as '<SEVERITY>: <message>'; passwords redacted")


class ClusterLogs(Output):
    cluster: str
    namespace: str
    instances: list[LogInstance]
    entries: list[LogLine] = Field(description="Oldest first, every instance merged in time order")
    count: int
    truncated: bool = Field(description="Older matching lines were left out to stay within tail_lines/max_bytes")
    omitted: int = Field(description="How many matching lines were left out")


class ServiceEndpoint(Output):
    name: str
    purpose: str
    host: str
    port: int


class PoolerEndpoint(Output):
    """A CloudNativePG Pooler (PgBouncer) whose spec.cluster names the cluster; its Service has its name."""

    name: str
    type: str = Field(description="rw, ro or r: which instances it forwards to")
    target: str
    pool_mode: str = Field(description="PgBouncer pool mode: session or transaction")
    instances: int | None
    host: str
    port: int
    uri: str = Field(description="libpq URI through the pooler, without the password")


class ConnectionInfo(Output):
    cluster: str
    namespace: str
    services: list[ServiceEndpoint]
    host: str = Field(description="The read-write Service's DNS name")
    port: int
    database: str
    user: str
    role_declared_in: str
    password_secret: str | None = Field(description="The Secret holding the password (key 'password'); never "
                                                    "the password")
    password_command: str | None = Field(description="The kubectl command that prints the password")
    sslmode: str
    ca_secret: str = Field(description="The Secret whose key ca.crt is the server CA certificate")
    ca_secret_key: str
    ca_command: str = Field(description="The kubectl command that saves only ca.crt")
    uri: str = Field(description="libpq URI without the password")
    poolers: list[PoolerEndpoint] = Field(default_factory=list, description="CNPG Poolers targeting the cluster")
    poolers_unreadable: str | None = Field(None, description="Why Poolers could not be listed (then unknown)")


class QueryColumn(Output):
    name: str
    type: str = Field(description="PostgreSQL type name (or OID when unknown)")


class QueryResult(Output):
    cluster: str
    namespace: str
    database: str
    statement: str = Field(description="SELECT, EXPLAIN or SHOW (as the guard parsed it)")
    columns: list[QueryColumn]
    rows: list[list[Any]] = Field(description="Row values in column order; non-JSON types as their text form")
    row_count: int
    truncated: bool = Field(description="More rows existed than max_rows / the byte cap allowed")
    truncated_by: str | None = Field(description="max_rows or max_bytes when truncated")
    duration_ms: float


class DiagnosticResult(Output):
    cluster: str
    namespace: str
    database: str
    check: str
    description: str
    rows: list[dict[str, Any]] = Field(description="One object per row, keyed by column name")
    row_count: int
    truncated: bool
    duration_ms: float


class RecoveryWindow(Output):
    server_name: str | None = Field(description="The cluster's folder (serverName) in the store")
    first_recoverability_point: str | None = Field(description="The earliest time a restore can reach; null: "
                                                               "no completed backup yet")
    last_successful_backup_time: str | None
    last_failed_backup_time: str | None
    summary: str = Field(description="'you can restore to any time between A and now', or why not")


class BackupStoreConfigured(Output):
    dry_run: bool
    cluster: str
    store: str = Field(description="The PgBackupStoreRequest (and its ObjectStore), as <namespace>/<name>")
    action: str = Field(description="created, updated, unchanged, or deleted (archiving turned off)")
    archiving: bool | None = Field(None, description="Whether the store is the Cluster's WAL archiver (state.ready: "
                                                     "CNPG confirms archiving works)")
    state: State | None = Field(None, description="The request's reconcile state when the tool answered")
    spec: dict[str, Any] | None = Field(None, description="The request's spec as written (Secret names and key "
                                                          "names only, never a credential value)")
    window: RecoveryWindow | None = None


class BackupTaken(Output):
    dry_run: bool
    created: bool = Field(description="Whether the PgBackupRequest was created")
    backup: str = Field(description="Name of the backup (the PgBackupRequest and the CNPG Backup)")
    cluster: str
    method: str
    phase: str | None = Field(None, description="CNPG's Backup phase when the tool answered (completed, failed, "
                                                "running, ...); null: not started yet")
    finished: bool = Field(description="Whether the phase is final (completed or failed)")
    backup_id: str | None = None
    started_at: str | None = None
    stopped_at: str | None = None
    error: str | None = None
    waited_seconds: float | None = None
    manifest: dict[str, Any] | None = Field(None, description="What would be applied (dry_run)")


class BackupEntry(Output):
    name: str
    phase: str = Field(description="CNPG's phase; 'requested' while only the PgBackupRequest exists")
    method: str
    target: str | None
    started_at: str | None
    stopped_at: str | None
    backup_id: str | None = Field(description="status.backupId (restore_postgres_cluster's backup_id)")
    error: str | None
    scheduled_by: str | None = Field(description="The ScheduledBackup that took it, if any")
    request: str | None = Field(description="The PgBackupRequest, when taken through cnpg-mcp")


class ScheduleEntry(Output):
    name: str
    schedule: str = Field(description="Six-field cron, seconds first (UTC)")
    suspended: bool
    immediate: bool
    method: str
    next_runs: list[str] = Field(description="The next runs computed from the schedule (UTC); empty when suspended")
    last_schedule_time: str | None
    next_schedule_time: str | None = Field(description="As CNPG reports it")
    request: str | None = Field(description="The PgBackupScheduleRequest, when made through cnpg-mcp")


class BackupList(Output):
    cluster: str
    store: str | None = Field(description="The ObjectStore the cluster archives into (null: none)")
    archiving: bool | None = Field(description="CNPG's ContinuousArchiving condition is True")
    window: RecoveryWindow | None
    backups: list[BackupEntry] = Field(description="Oldest first")
    schedules: list[ScheduleEntry]
    count: int


class BackupScheduled(Output):
    dry_run: bool
    schedule_name: str
    cluster: str
    schedule: str
    action: str = Field(description="created, updated or unchanged")
    suspended: bool
    immediate: bool
    next_runs: list[str] = Field(description="The next runs (UTC); empty when suspended")
    state: State | None = None
    spec: dict[str, Any] | None = None


class BackupScheduleDeleted(Output):
    dry_run: bool
    deleted: bool
    schedule_name: str
    cluster: str
    backups_kept: bool = Field(description="Whether the Backups it took stay (backupOwnerReference none/cluster)")


class ClusterRestore(Output):
    dry_run: bool
    created: bool = Field(description="Whether the PgClusterRequest was created")
    name: str
    namespace: str
    source_cluster: str
    store: str
    server_name: str
    target: dict[str, Any] | None = Field(description="restoreFrom.target; null: the latest state")
    window: RecoveryWindow
    manifest: dict[str, Any] | None = Field(None, description="The PgClusterRequest (dry_run)")
    cluster_manifest: dict[str, Any] | None = Field(None, description="The recovery Cluster the operator would "
                                                                      "create (dry_run)")
    state: State | None = None
    cluster_created: bool | None = Field(None, description="Whether the operator created the Cluster yet")
    ready: bool | None = Field(None, description="Whether CNPG reports the restored cluster healthy")
    waited_seconds: float | None = None
class PoolerEntry(Output):
    name: str
    cluster: str | None
    type: str | None
    instances: int | None = Field(description="PgBouncer instances asked for")
    ready_instances: int | None = Field(description="PgBouncer instances CNPG reports (status.instances)")
    phase: str | None = Field(description="CNPG's Pooler phase: active, paused, inactive, failed")
    pool_mode: str | None
    paused: bool | None
    parameters: dict[str, str]
    service: str = Field(description="Where clients connect: <pooler>.<namespace>:5432")
    managed: bool = Field(description="A PgPoolerRequest of cnpg-mcp manages it")
    request: State | None


class PoolerList(Output):
    scope: str
    poolers: list[PoolerEntry]
    count: int


class PoolerCreated(Output):
    dry_run: bool
    created: bool
    name: str
    cluster: str
    request: str
    manifest: dict[str, Any]
    pooler_created: bool | None = Field(None, description="The operator created the CNPG Pooler (not dry runs)")
    service: str | None = None
    message: str | None = None


class PoolerUpdated(Output):
    dry_run: bool
    changed: bool
    name: str
    changes: dict[str, Change]


class PoolerDeleted(Output):
    dry_run: bool
    deleted: bool
    name: str
    cluster: str | None
    deletion_requested: bool | None = None


class ConfigChange(Output):
    old: Any
    new: Any
    effect: str = Field(description="online, reload, restart (every instance) or major-upgrade (all stop)")
    why: str


class ClusterUpdated(Output):
    dry_run: bool
    applied: bool = Field(description="The operator has applied it to the Cluster (never claimed otherwise)")
    name: str
    namespace: str
    effect: str | None = Field(description="The most disruptive effect: online, reload, restart, major-upgrade")
    changes: dict[str, ConfigChange]
    adopted: bool = Field(description="The Cluster was not managed by cnpg-mcp and got a PgClusterRequest")
    request_state: State | None = None


class OperationResult(Output):
    """A day-2 operation (PgOperationRequest) as the operator reports it."""

    operation: str = Field(description="switchover, restart, reload, fence, unfence, hibernate, resume, "
                                       "rebuildReplica")
    cluster: str = Field(description="namespace/name")
    instance: str | None = Field(description="The instance acted on (the switchover target chosen when not given)")
    request: str = Field(description="pgoperationrequests/<name>")
    dry_run: bool
    phase: str | None = Field(description="Pending, Running, Succeeded or Failed (null for a dry run)")
    reason: str | None = Field(description="The Ready condition's reason (Running, Succeeded, Timeout...)")
    message: str
    evidence: dict[str, str] = Field(description="What CNPG reported that proves the effect (e.g. currentPrimary)")
