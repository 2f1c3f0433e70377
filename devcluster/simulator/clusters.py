"""Cluster (postgresql.cnpg.io/v1): the part of CNPG's cluster controller the simulation plays.

Services `-rw`/`-ro`/`-r`, the `<name>-app` Secret, the bootstrap owner and database, the
`spec.managed.roles`, the instance Pods (pods.py) and the status. A step that fails (a Service the
API server refuses, a missing Secret) is reported in `status.phaseReason` and the Cluster is
retried with backoff; the other steps still run.
"""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Literal

import psycopg
from kubernetes.client.exceptions import ApiException
from psycopg import sql

from cnpg_mcp_api.cnpg_rules import image_major
from devcluster.simulator import operations
from devcluster.simulator.common import (
    CLUSTER_DOMAIN,
    CLUSTER_LABEL,
    INSTANCE_ROLE_LABEL,
    PHASE_HEALTHY,
    PHASE_INPLACE_PRIMARY_RESTART,
    PHASE_SETTING_UP,
    POD_ROLE_INSTANCE,
    POD_ROLE_LABEL,
    POSTGRES_PORT,
    RELOAD_LABEL,
    RESERVED_ROLES,
    ROLE_PRIMARY,
    ROLE_REPLICA,
    Json,
    Key,
    api_error_text,
    now_rfc3339,
    owner_reference,
    pg_error_text,
    upsert_condition,
)
from devcluster.simulator.context import ChangeFilter, Context, WatchSpec, custom_objects, spec_fingerprint
from devcluster.simulator.databases import create_database_sql
from devcluster.simulator.pods import ensure_instance_pods
from devcluster.simulator.roles import DesiredRole, apply_role, desired_role, drop_role
from devcluster.simulator.tls import CA_SECRET_SUFFIX, ServerNames

log = logging.getLogger("cnpg-simulator")
PLURAL = "clusters"


# ============================================================================ pure: objects


def generate_password(length: int = 64) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def app_secret_name(cluster: Mapping[str, Any]) -> str:
    initdb = ((cluster.get("spec") or {}).get("bootstrap") or {}).get("initdb") or {}
    custom: str | None = (initdb.get("secret") or {}).get("name")
    return custom or f"{cluster['metadata']['name']}-app"


def bootstrap_database(cluster: Mapping[str, Any]) -> tuple[str, str] | None:
    """(database, owner) of spec.bootstrap.initdb (default app/app); None for recovery/pg_basebackup."""
    bootstrap = (cluster.get("spec") or {}).get("bootstrap") or {}
    if "initdb" not in bootstrap and bootstrap:
        return None
    initdb = bootstrap.get("initdb") or {}
    database = initdb.get("database") or "app"
    return database, initdb.get("owner") or database


def app_secret_body(cluster: Mapping[str, Any], dbname: str, username: str, password: str) -> Json:
    """The `<cluster>-app` Secret the way CNPG writes it (kubernetes.io/basic-auth + connection strings)."""
    from urllib.parse import quote, urlencode  # noqa: PLC0415 (only needed here)

    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    host = f"{name}-rw"
    short_host = f"{host}.{namespace}:{POSTGRES_PORT}"
    fqdn_host = f"{host}.{namespace}.svc.{CLUSTER_DOMAIN}:{POSTGRES_PORT}"
    userinfo = f"{quote(username, safe='')}:{quote(password, safe='')}"
    jdbc_query = urlencode({"password": password, "user": username})
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
        "metadata": {
            "name": app_secret_name(cluster), "namespace": namespace,
            "labels": {CLUSTER_LABEL: name, "cnpg.io/userType": "app", RELOAD_LABEL: "true",
                       "app.kubernetes.io/managed-by": "cloudnative-pg"},
            "ownerReferences": [owner_reference(cluster)],
        },
        "stringData": {
            "username": username, "user": username, "password": password, "dbname": dbname,
            "host": host, "port": str(POSTGRES_PORT),
            "pgpass": f"{host}:{POSTGRES_PORT}:{dbname}:{username}:{password}\n",
            "uri": f"postgresql://{userinfo}@{short_host}/{dbname}",
            "jdbc-uri": f"jdbc:postgresql://{short_host}/{dbname}?{jdbc_query}",
            "fqdn-uri": f"postgresql://{userinfo}@{fqdn_host}/{dbname}",
            "fqdn-jdbc-uri": f"jdbc:postgresql://{fqdn_host}/{dbname}?{jdbc_query}",
        },
    }


SERVICE_SELECTORS: dict[str, tuple[str, str]] = {
    "rw": (INSTANCE_ROLE_LABEL, ROLE_PRIMARY),
    "ro": (INSTANCE_ROLE_LABEL, ROLE_REPLICA),
    "r": (POD_ROLE_LABEL, POD_ROLE_INSTANCE),
}


def service_body(cluster: Mapping[str, Any], suffix: str) -> Json:
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    selector_key, selector_value = SERVICE_SELECTORS[suffix]
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {
            "name": f"{name}-{suffix}", "namespace": namespace,
            "labels": {CLUSTER_LABEL: name, "app.kubernetes.io/name": "postgresql",
                       "app.kubernetes.io/instance": name, "app.kubernetes.io/component": "database",
                       "app.kubernetes.io/managed-by": "cloudnative-pg"},
            "ownerReferences": [owner_reference(cluster)],
        },
        "spec": {
            "type": "ClusterIP",
            "ports": [{"name": "postgres", "protocol": "TCP", "port": POSTGRES_PORT,
                       "targetPort": POSTGRES_PORT}],
            "selector": {CLUSTER_LABEL: name, selector_key: selector_value},
        },
    }



# ============================================================================= pure: status


@dataclass
class RoleOutcome:
    """Result of reconciling one managed role; `error` set → cannotReconcile."""

    name: str
    state: Literal["reconciled", "pending-reconciliation", "reserved"]
    error: str | None = None
    transaction_id: int | None = None
    secret_version: str | None = None


def managed_roles_status(outcomes: Sequence[RoleOutcome]) -> Json:
    """Cluster.status.managedRolesStatus (byStatus, cannotReconcile, passwordStatus) as CNPG shapes it."""
    by_status: dict[str, list[str]] = {}
    for outcome in outcomes:
        by_status.setdefault(outcome.state, []).append(outcome.name)
    status: Json = {"byStatus": {state: sorted(names) for state, names in sorted(by_status.items())}}
    cannot = {o.name: [o.error] for o in outcomes if o.error}
    if cannot:
        status["cannotReconcile"] = cannot
    passwords = {o.name: {"transactionID": o.transaction_id, "resourceVersion": o.secret_version}
                 for o in outcomes if o.secret_version is not None and o.transaction_id is not None}
    if passwords:
        status["passwordStatus"] = passwords
    return status


def applied_password_versions(status: Mapping[str, Any]) -> dict[str, str]:
    """role → Secret resourceVersion last applied, from managedRolesStatus.passwordStatus."""
    entries = ((status.get("managedRolesStatus") or {}).get("passwordStatus") or {})
    return {role: str(v.get("resourceVersion")) for role, v in entries.items() if v.get("resourceVersion")}


def cluster_status(cluster: Mapping[str, Any], *, roles_status: Json | None, app_secret_version: str | None,
                   blocked_reason: str | None, now: str) -> Json:
    """The status keys the simulator owns. blocked_reason set → not (yet) healthy."""
    name = cluster["metadata"]["name"]
    generation = int(cluster["metadata"].get("generation", 1))
    previous = cluster.get("status") or {}
    instances = max(1, int((cluster.get("spec") or {}).get("instances", 1)))
    names = [f"{name}-{i}" for i in range(1, instances + 1)]
    # A switchover (someone set status.targetPrimary) completes at once; an unknown target resets.
    target = previous.get("targetPrimary") if previous.get("targetPrimary") in names else names[0]
    healthy = blocked_reason is None
    status: Json = {
        "phase": PHASE_HEALTHY if healthy else PHASE_SETTING_UP,
        "phaseReason": None if healthy else blocked_reason,
        "instances": instances,
        "readyInstances": instances if healthy else 0,
        "instanceNames": names,
        "instancesStatus": {"healthy": names} if healthy else None,
        "currentPrimary": target if healthy else previous.get("currentPrimary"),
        "targetPrimary": target,
        "latestGeneratedNode": max(instances, int(previous.get("latestGeneratedNode") or 0)),
        "timelineID": 1,
        # What each instance last reported to CNPG (its role and timeline); the simulator never fails over.
        "instancesReportedState": {n: {"isPrimary": n == target, "timeLineID": 1} for n in names} if healthy
        else previous.get("instancesReportedState"),
        "writeService": f"{name}-rw",
        "readService": f"{name}-r",
        "conditions": upsert_condition(
            previous.get("conditions") or [], type_="Ready", status="True" if healthy else "False",
            reason="ClusterIsReady" if healthy else "ClusterIsNotReady",
            message="Cluster is Ready" if healthy else "Cluster Is Not Ready",
            generation=generation, now=now),
    }
    if healthy and previous.get("currentPrimary") != target:
        status["currentPrimaryTimestamp"] = now
    if previous.get("targetPrimary") != target:
        status["targetPrimaryTimestamp"] = now
    status["managedRolesStatus"] = roles_status or None
    image = (cluster.get("spec") or {}).get("imageName")
    major = image_major(image)
    if healthy and image and major is not None:
        # The image the data directory runs with (CNPG records it once an upgrade, major or not, is done;
        # its webhook refuses a lower major than this one).
        status["image"] = image
        status["pgDataImageInfo"] = {"image": image, "majorVersion": major}
    if app_secret_version is not None:
        versions = dict(previous.get("secretsResourceVersion") or {})
        versions["applicationSecretVersion"] = app_secret_version
        status["secretsResourceVersion"] = versions
    return status



def managed_inline(cluster: Mapping[str, Any], role: str) -> bool:
    entries = ((cluster.get("spec") or {}).get("managed") or {}).get("roles") or []
    return any(entry.get("name") == role for entry in entries)


def instance_names(cluster: Mapping[str, Any]) -> list[str]:
    """`<name>-1` … `<name>-N` for spec.instances = N (at least one)."""
    name = cluster["metadata"]["name"]
    instances = max(1, int((cluster.get("spec") or {}).get("instances", 1)))
    return [f"{name}-{i}" for i in range(1, instances + 1)]


def primary_instance(cluster: Mapping[str, Any]) -> str:
    """The instance that is (or becomes, for a switchover) the primary: see cluster_status."""
    names = instance_names(cluster)
    target = (cluster.get("status") or {}).get("targetPrimary")
    return str(target) if target in names else names[0]


def cluster_fingerprint(cluster: Mapping[str, Any]) -> Hashable:
    """A switchover is asked for in the status (targetPrimary ≠ an existing currentPrimary), an in-place
    primary restart by the status phase: news too."""
    status = cluster.get("status") or {}
    current, target = status.get("currentPrimary"), status.get("targetPrimary")
    restart = status.get("phase") == PHASE_INPLACE_PRIMARY_RESTART
    return spec_fingerprint(cluster), target if current and target != current else None, restart


# ================================================================================= handler


class ClusterHandler:
    kind: ClassVar[str] = "cluster"

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._generations: dict[tuple[str, str], int] = {}
        self._changes = ChangeFilter(cluster_fingerprint)
        self._tls = ServerNames(ctx.pg.server)

    def watches(self) -> Sequence[WatchSpec]:
        return [WatchSpec("clusters", custom_objects(PLURAL), self._event)]

    def _event(self, event_type: str, obj: Json) -> None:
        self._ctx.kube.observe(PLURAL, event_type, obj)  # DatabaseRoles read their Cluster from here
        meta = obj["metadata"]
        ref = (meta["namespace"], meta["name"])
        if not self._changes.is_news(event_type, obj):
            return  # e.g. the echo of our own status patch
        self._ctx.enqueue((self.kind, *ref))
        generation = int(meta.get("generation", 0))
        changed = self._generations.get(ref) != generation
        self._generations[ref] = generation
        if event_type == "DELETED":
            self._generations.pop(ref, None)
        if event_type in ("ADDED", "DELETED") or changed:
            for user in self._ctx.cluster_users.users_of(*ref):
                self._ctx.enqueue(user)

    def reconcile(self, namespace: str, name: str) -> bool:
        ctx = self._ctx
        key: Key = (self.kind, namespace, name)
        cluster = ctx.kube.get(PLURAL, namespace, name)
        if cluster is None or cluster["metadata"].get("deletionTimestamp"):
            ctx.secret_users.remember(key, [])
            return True  # owned objects (Services, Secret, Pods) go by garbage collection
        status = cluster.get("status") or {}
        if not status.get("phase"):
            ctx.kube.patch_status(PLURAL, cluster, cluster_status(
                cluster, roles_status=None, app_secret_version=None, blocked_reason="Creating primary",
                now=now_rfc3339()))
        problems = self._ensure_services(cluster) + self._ensure_tls(cluster)
        blocked, app_version, app_secret = self._bootstrap(cluster)
        if blocked is None:
            blocked = self._apply_runtime_parameters(cluster)
        outcomes, role_secrets = self._reconcile_managed_roles(cluster)
        ctx.secret_users.remember(key, [*role_secrets, app_secret])
        wanted = [] if operations.hibernation_requested(cluster) else instance_names(cluster)
        pods_problem = ensure_instance_pods(ctx, cluster, wanted, primary_instance(cluster))
        problems += [p for p in (blocked, pods_problem) if p]
        played = operations.apply(ctx, cluster, primary_instance(cluster))
        ctx.kube.patch_status(PLURAL, cluster, operations.adjust_status(cluster, cluster_status(
            cluster, roles_status=managed_roles_status(outcomes), app_secret_version=app_version,
            blocked_reason="; ".join(problems) or None, now=now_rfc3339()), played.pods))
        if problems:
            log.warning("Cluster %s/%s: %s", namespace, name, "; ".join(problems)[:500])
        return not problems and not any(o.error for o in outcomes)

    def _ensure_services(self, cluster: Json) -> list[str]:
        """Creates the missing Services; returns one problem text per Service the API refused."""
        namespace, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
        services = ((cluster.get("spec") or {}).get("managed") or {}).get("services") or {}
        disabled = set(services.get("disabledDefaultServices") or []) - {"rw"}
        core = self._ctx.kube.core()
        existing = {s.metadata.name for s in core.list_namespaced_service(
            namespace, label_selector=f"{CLUSTER_LABEL}={name}").items}
        problems: list[str] = []
        for suffix in SERVICE_SELECTORS:
            body = service_body(cluster, suffix)
            service = body["metadata"]["name"]
            if suffix in disabled or service in existing:
                continue
            try:
                self._ctx.kube.create_if_missing(partial(core.create_namespaced_service, namespace, body),
                                                 f"Service {namespace}/{service}")
            except ApiException as exc:  # e.g. 422 invalid name, 500 "the Service IP range is full"
                problems.append(f"Service {service}: {api_error_text(exc)}")
        return problems

    def _ensure_tls(self, cluster: Json) -> list[str]:
        """The server certificate covers this cluster's Service names; its `<cluster>-ca` Secret exists."""
        namespace, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
        secret_name = f"{name}{CA_SECRET_SUFFIX}"
        try:
            self._tls.ensure(namespace, name)
            if self._ctx.kube.read_secret(namespace, secret_name) is None:
                core = self._ctx.kube.core()
                self._ctx.kube.create_if_missing(
                    partial(core.create_namespaced_secret, namespace, self._tls.ca_secret(cluster)),
                    f"Secret {namespace}/{secret_name}", "secrets")
        except ApiException as exc:
            return [f"Secret {secret_name}: {api_error_text(exc)}"]
        except (OSError, psycopg.Error) as exc:
            return [f"server certificate: {pg_error_text(exc) if isinstance(exc, psycopg.Error) else exc}"]
        return []

    def _bootstrap(self, cluster: Json) -> tuple[str | None, str | None, str]:
        """App Secret + bootstrap owner and database. → (blocked reason, app Secret version, its name)."""
        namespace = cluster["metadata"]["namespace"]
        secret_name = app_secret_name(cluster)
        target = bootstrap_database(cluster)
        if target is None:
            if "recovery" in ((cluster.get("spec") or {}).get("bootstrap") or {}):
                from devcluster.simulator.recovery import restore_cluster  # noqa: PLC0415 (it imports this module)

                return restore_cluster(self._ctx, cluster), None, secret_name
            return None, None, secret_name
        database, owner = target
        default_secret = secret_name == f"{cluster['metadata']['name']}-app"
        if default_secret and self._ctx.kube.read_secret(namespace, secret_name) is None:
            body = app_secret_body(cluster, database, owner, generate_password())
            core = self._ctx.kube.core()
            self._ctx.kube.create_if_missing(partial(core.create_namespaced_secret, namespace, body),
                                             f"Secret {namespace}/{secret_name}", "secrets")
        try:
            password, version = self._ctx.kube.secret_password(namespace, secret_name)
        except LookupError as exc:
            return str(exc), None, secret_name
        applied = ((cluster.get("status") or {}).get("secretsResourceVersion") or {}).get(
            "applicationSecretVersion")
        try:
            apply_role(self._ctx.pg, DesiredRole(name=owner, login=True), password, version, applied)
            if self._ctx.pg.database(database) is None:
                self._ctx.pg.run(create_database_sql({"name": database, "owner": owner}))
                log.info("database %s created (owner %s)", database, owner)
        except psycopg.Error as exc:
            return f"bootstrap of database {database}: {pg_error_text(exc)}", None, secret_name
        return None, version, secret_name

    def _apply_runtime_parameters(self, cluster: Json) -> str | None:
        """What a reload does: the parameters PostgreSQL can apply without a restart take effect. The one
        server is shared by every simulated Cluster, so they are set on the Cluster's bootstrap database
        (ALTER DATABASE … SET: a new connection to it sees them, e.g. SHOW work_mem) rather than server-wide;
        only those of pg_settings.context user/superuser can be set that way (sighup and postmaster ones are
        not applied). A parameter dropped from the spec is not reset: Clusters bootstrapped with the same
        database name share that database in the one server, and one must not undo another's setting."""
        target = bootstrap_database(cluster)
        if target is None or self._ctx.pg.database(target[0]) is None:
            return None
        database = target[0]
        wanted = {str(k): str(v) for k, v in (((cluster.get("spec") or {}).get("postgresql") or {})
                                             .get("parameters") or {}).items()}
        conn = self._ctx.pg.conn()
        settable = {row[0] for row in conn.execute(
            "SELECT name FROM pg_catalog.pg_settings WHERE context IN ('user', 'superuser')").fetchall()}
        current: dict[str, str] = {}
        for (entry,) in conn.execute(
                """SELECT unnest(s.setconfig) FROM pg_catalog.pg_db_role_setting s
                   JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
                   WHERE d.datname = %s AND s.setrole = 0""", (database,)).fetchall():
            key, _, value = str(entry).partition("=")
            current[key] = value
        try:
            for key, value in sorted(wanted.items()):
                if key in settable and current.get(key) != value:
                    conn.execute(sql.SQL("ALTER DATABASE {} SET {} = {}").format(
                        sql.Identifier(database), sql.Identifier(key), sql.Literal(value)))
                    log.info("database %s: %s = %s (reload)", database, key, value)
        except psycopg.Error as exc:
            return f"configuration of database {database}: {pg_error_text(exc)}"
        return None

    def _reconcile_managed_roles(self, cluster: Json) -> tuple[list[RoleOutcome], list[str]]:
        namespace = cluster["metadata"]["namespace"]
        entries = ((cluster.get("spec") or {}).get("managed") or {}).get("roles") or []
        applied_versions = applied_password_versions(cluster.get("status") or {})
        outcomes: list[RoleOutcome] = []
        secret_names: list[str] = []
        for entry in entries:
            desired = desired_role(entry)
            if desired.name in RESERVED_ROLES:
                outcomes.append(RoleOutcome(desired.name, "reserved"))
                continue
            if desired.password_secret:
                secret_names.append(desired.password_secret)
            outcomes.append(self._reconcile_one_role(namespace, desired, applied_versions.get(desired.name)))
        return outcomes, secret_names

    def _reconcile_one_role(self, namespace: str, desired: DesiredRole,
                            applied_version: str | None) -> RoleOutcome:
        try:
            if desired.ensure == "absent":
                drop_role(self._ctx.pg, desired.name)
                return RoleOutcome(desired.name, "reconciled")
            password, version = None, None
            if desired.password_secret and not desired.disable_password:
                password, version = self._ctx.kube.secret_password(namespace, desired.password_secret)
            xmin = apply_role(self._ctx.pg, desired, password, version, applied_version)
            return RoleOutcome(desired.name, "reconciled", transaction_id=xmin, secret_version=version)
        except (psycopg.Error, LookupError) as exc:
            message = pg_error_text(exc)
            log.warning("managed role %s cannot be reconciled: %s", desired.name, message)
            return RoleOutcome(desired.name, "pending-reconciliation", error=message)

