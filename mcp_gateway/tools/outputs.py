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
