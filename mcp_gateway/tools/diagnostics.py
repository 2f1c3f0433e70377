"""Diagnostics tools: an instance's logs (`pods/log`) and how to connect — reads only, never a password."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

import anyio
from kubernetes.client.exceptions import ApiException
from mcp.types import CallToolResult
from pydantic import Field

from cnpg_mcp_api import constants
from cnpg_mcp_api.naming import identifier_problem, role_secret_name
from mcp_gateway import errors
from mcp_gateway.gateway import Gateway
from mcp_gateway.registry import READ, ToolSpec
from mcp_gateway.tools import logview, outputs, result
from mcp_gateway.tools.clusters import ClusterName, Format, Namespace

INSTANCE_ROLE_LABEL = "cnpg.io/instanceRole"
POD_ROLE_LABEL = "cnpg.io/podRole"
POSTGRES_PORT = 5432
# A safety cap on one Pod's log body (tail_lines bounds it already; a runaway line must not exhaust memory).
POD_LOG_BYTES = 2 * 1024 * 1024
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
InstanceName = Annotated[str | None, Field(
    description="One instance Pod, e.g. 'pg-1'; default: every instance of the cluster.", pattern=DNS_LABEL,
    max_length=63)]
# What each default Service selects (CNPG's naming: <cluster>-rw / -ro / -r).
DEFAULT_SERVICES = (("rw", "read-write: the primary"), ("ro", "read-only: the replicas only"),
                    ("r", "read: any instance"))
CNPG_POOLERS = "poolers"  # postgresql.cnpg.io Poolers (PgBouncer); CNPG names each one's Service after it
POOLER_TARGETS = {"rw": "the primary", "ro": "the replicas only", "r": "any instance"}


def _instances_selector(cluster: str) -> str:
    return f"{constants.CNPG_CLUSTER_LABEL}={cluster},{POD_ROLE_LABEL}=instance"


async def _read_log(gw: Gateway, ns: str, pod: str, *, container: str, tail_lines: int,
                    since_seconds: int | None) -> tuple[str | None, str | None]:
    """(log text, None), or (None, why) when this one Pod's log cannot be read (RBAC failures still raise)."""
    try:
        text = await gw.kube.pod_log(ns, pod, container=container, tail_lines=tail_lines,
                                     since_seconds=since_seconds, limit_bytes=POD_LOG_BYTES)
    except ApiException as exc:
        if exc.status in (401, 403):
            raise
        return None, errors.from_api_exception(exc, f"reading the log of {ns}/{pod}").args[0]
    if len(text.encode()) >= POD_LOG_BYTES:  # cut by the cap: the last line may be partial
        text = text.rsplit("\n", 1)[0]
    return text, None


async def get_cluster_logs(
    gw: Gateway,
    name: ClusterName,
    instance: InstanceName = None,
    tail_lines: Annotated[int, Field(ge=1, le=1000, description=(
        "Newest lines read per instance, and the most lines returned (1-1000)"))] = 100,
    since_seconds: Annotated[int | None, Field(ge=1, le=7 * 86400, description=(
        "Only lines from the last N seconds"))] = None,
    level: Annotated[Literal["debug", "info", "warning", "error"] | None, Field(description=(
        "Only lines at this level or above"))] = None,
    contains: Annotated[str | None, Field(min_length=1, max_length=200, description=(
        "Only lines whose message contains this text (case-insensitive)"))] = None,
    container: Annotated[str, Field(pattern=DNS_LABEL, max_length=63, description=(
        "Container of the instance Pod"))] = "postgres",
    max_bytes: Annotated[int, Field(ge=1000, le=20_000, description=(
        "Most bytes of log text returned; older lines beyond it are left out and marked"))] = 8000,
    namespace: Namespace = None, format: Format = "text",
) -> CallToolResult:
    """Use to read what a cluster's PostgreSQL instances logged (errors, failed logins, restarts, failovers).
    Reads the instance Pods' logs through Kubernetes (like kubectl logs), parses CloudNativePG's JSON lines
    into time, level, logger and message, merges the instances in time order and keeps the newest lines
    within tail_lines and max_bytes, saying when older ones were left out. Passwords are redacted."""
    ns = gw.namespace(namespace)
    async with gw.acting(f"reading the logs of cluster {ns}/{name}"):
        pods = await gw.kube.pods(ns, _instances_selector(name))
        if not pods and await gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, name) is None:
            raise errors.tool_error(errors.NOT_FOUND, f"no cluster {name!r} in namespace {ns!r}; "
                                                      "list_postgres_clusters shows what exists")
        roles = {p["metadata"]["name"]: (p["metadata"].get("labels") or {}).get(INSTANCE_ROLE_LABEL) for p in pods}
        if instance is not None and instance not in roles:
            raise errors.tool_error(errors.NOT_FOUND, f"cluster {ns}/{name} has no instance {instance!r}; its "
                                    f"instances: {', '.join(sorted(roles)) or 'none yet'}")
        chosen = sorted([instance] if instance else roles)
        reads: dict[str, tuple[str | None, str | None]] = {}

        async def read(pod: str) -> None:
            reads[pod] = await _read_log(gw, ns, pod, container=container, tail_lines=tail_lines,
                                         since_seconds=since_seconds)

        try:
            async with anyio.create_task_group() as tasks:
                for pod in chosen:
                    tasks.start_soon(read, pod)
        except BaseExceptionGroup as group:  # acting maps one API error, not a group of them
            raise group.exceptions[0] from None
    entries = [e for pod in chosen for e in logview.parse(pod, reads[pod][0] or "")
               if logview.keep(e, min_level=level, contains=contains)]
    shown, omitted = logview.bounded(entries, max_lines=tail_lines, max_bytes=max_bytes)
    instances = [{"pod": pod, "role": roles.get(pod), "error": reads[pod][1]} for pod in chosen]
    data: dict[str, Any] = {"cluster": name, "namespace": ns, "instances": instances, "entries": shown,
                            "count": len(shown), "truncated": omitted > 0, "omitted": omitted}
    return result(_logs_text(name, ns, data, max_bytes), data, as_json=format == "json")


def _logs_text(name: str, ns: str, data: dict[str, Any], max_bytes: int) -> str:
    pods = ", ".join(f"{i['pod']} ({i['role'] or 'unknown role'})" for i in data["instances"]) or "none yet"
    lines = [f"Logs of cluster {ns}/{name} — instances: {pods}; {data['count']} line(s)"]
    lines += [f"! {i['pod']}: {i['error']}" for i in data["instances"] if i["error"]]
    if data["truncated"]:
        lines.append(f"… truncated: {data['omitted']} older line(s) left out (tail_lines/max_bytes={max_bytes}); "
                     "narrow with since_seconds, level or contains, or raise the limits.")
    lines += [logview.entry_text(e) for e in data["entries"]]
    if not data["entries"]:
        lines.append("(no matching lines)")
    return "\n".join(lines)


def _password_command(secret: str, ns: str) -> str:
    return f"kubectl get secret {secret} -n {ns} -o jsonpath='{{.data.password}}' | base64 -d"


def _role_secret(cluster: dict[str, Any], role_requests: list[dict[str, Any]], role: str,
                 owner: str, app_secret: str) -> tuple[str | None, str]:
    """(the Secret holding `role`'s password or None, where the role is declared); NOT_FOUND if nowhere."""
    name = cluster["metadata"]["name"]
    spec = cluster.get("spec") or {}
    if role == owner:
        return app_secret, "the application owner (bootstrap.initdb)"
    for request in role_requests:
        if request["spec"].get("cluster") == name and request["spec"].get("roleName") == role:
            secret = (request.get("status") or {}).get("secretName") or role_secret_name(name, role)
            return secret, f"PgRoleRequest {request['metadata']['name']}"
    for entry in (spec.get("managed") or {}).get("roles") or []:
        if entry.get("name") == role:
            return (entry.get("passwordSecret") or {}).get("name"), "Cluster spec.managed.roles"
    if role == "postgres":
        secret = (spec.get("superuserSecret") or {}).get("name") or f"{name}-superuser"
        return secret, "the superuser (only when enableSuperuserAccess is true)"
    raise errors.tool_error(errors.NOT_FOUND, f"role {role!r} is not declared for cluster "
                            f"{cluster['metadata']['namespace']}/{name}; list_postgres_roles shows its roles")


def _uri(user: str, host: str, db: str, ca_file: str) -> str:
    """A libpq URI with no password (libpq takes it from PGPASSWORD or ~/.pgpass)."""
    return (f"postgresql://{quote(user, safe='')}@{host}:{POSTGRES_PORT}/{quote(db, safe='')}"
            f"?sslmode=verify-full&sslrootcert={ca_file}")


def pooler_endpoints(poolers: list[dict[str, Any]], cluster: str, *, user: str, db: str,
                     ca_file: str) -> list[dict[str, Any]]:
    """The CNPG Poolers whose spec.cluster.name is `cluster`, each with its Service and a URI (no password)."""
    found = []
    for pooler in sorted(poolers, key=lambda p: str(p["metadata"]["name"])):
        spec = pooler.get("spec") or {}
        if (spec.get("cluster") or {}).get("name") != cluster:
            continue
        name, ns = pooler["metadata"]["name"], pooler["metadata"]["namespace"]
        kind = spec.get("type") or "rw"
        host = f"{name}.{ns}.svc"
        found.append({"name": name, "type": kind, "target": POOLER_TARGETS.get(kind, kind),
                      "pool_mode": (spec.get("pgbouncer") or {}).get("poolMode") or "session",
                      "instances": spec.get("instances"), "host": host, "port": POSTGRES_PORT,
                      "uri": _uri(user, host, db, ca_file)})
    return found


def connection_info(cluster: dict[str, Any], role_requests: list[dict[str, Any]], *, role: str | None,
                    database: str | None, poolers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Pure: Services and Poolers, user, database, the password Secret and how to read it, TLS, and URIs
    without password."""
    meta, spec = cluster["metadata"], cluster.get("spec") or {}
    name, ns = meta["name"], meta["namespace"]
    initdb = (spec.get("bootstrap") or {}).get("initdb") or {}
    app_database = initdb.get("database") or "app"
    owner = initdb.get("owner") or app_database
    app_secret = (initdb.get("secret") or {}).get("name") or f"{name}-app"
    user = role or owner
    secret, declared = _role_secret(cluster, role_requests, user, owner, app_secret)
    services_spec = (spec.get("managed") or {}).get("services") or {}
    disabled = set(services_spec.get("disabledDefaultServices") or [])
    services = [{"name": f"{name}-{suffix}", "purpose": purpose, "host": f"{name}-{suffix}.{ns}.svc",
                 "port": POSTGRES_PORT} for suffix, purpose in DEFAULT_SERVICES if suffix not in disabled]
    for extra in services_spec.get("additional") or []:
        service = ((extra.get("serviceTemplate") or {}).get("metadata") or {}).get("name")
        if service:
            services.append({"name": service, "purpose": f"additional ({extra.get('selectorType', 'rw')})",
                             "host": f"{service}.{ns}.svc", "port": POSTGRES_PORT})
    certificates = (cluster.get("status") or {}).get("certificates") or spec.get("certificates") or {}
    ca_secret = certificates.get("serverCASecret") or f"{name}-ca"
    ca_file = f"{name}-ca.crt"
    db = database or app_database
    uri = _uri(user, f"{name}-rw.{ns}.svc", db, ca_file)
    return {
        "cluster": name, "namespace": ns, "services": services, "host": f"{name}-rw.{ns}.svc",
        "port": POSTGRES_PORT, "database": db, "user": user, "role_declared_in": declared,
        "password_secret": secret,
        "password_command": _password_command(secret, ns) if secret else None,
        "sslmode": "verify-full", "ca_secret": ca_secret, "ca_secret_key": "ca.crt",
        "ca_command": f"kubectl get secret {ca_secret} -n {ns} -o jsonpath='{{.data.ca\\.crt}}' | base64 -d "
                      f"> {ca_file}",
        "uri": uri,
        "poolers": pooler_endpoints(poolers or [], name, user=user, db=db, ca_file=ca_file),
    }


async def get_connection_info(
    gw: Gateway, name: ClusterName,
    role: Annotated[str | None, Field(max_length=63, description=(
        "PostgreSQL role to connect as; default: the application owner"))] = None,
    database: Annotated[str | None, Field(max_length=63, description=(
        "Database; default: the application database"))] = None,
    namespace: Namespace = None, format: Format = "text",
) -> CallToolResult:
    """Use to tell a person or an application how to connect to a cluster, without handling any password.
    Gives the Services (-rw primary, -ro replicas, -r any) and the CloudNativePG Poolers (PgBouncer) in
    front of the cluster, port, database and user, the Secret holding the password with the exact kubectl
    command to read it, sslmode and the CA Secret (its ca.crt) and libpq URIs without the password. The
    gateway never reads Secrets."""
    ns = gw.namespace(namespace)
    for value, what in ((role, "role"), (database, "database")):
        problem = identifier_problem(value, what) if value is not None else None
        if problem:
            raise errors.tool_error(errors.INVALID_ARGUMENT, f"{problem}.")
    async with gw.acting(f"reading connection details of {ns}/{name}"):
        cluster = await gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, name)
        if cluster is None:
            requested = await gw.kube.intent_get_or_none(constants.CLUSTER_REQUEST_PLURAL, ns, name)
            raise errors.tool_error(errors.NOT_FOUND, f"no cluster {name!r} in namespace {ns!r}" + (
                " yet (its PgClusterRequest exists; get_cluster_status follows it)" if requested else
                "; list_postgres_clusters shows what exists"))
        requests = await gw.kube.intent_list(constants.ROLE_REQUEST_PLURAL, ns) if role else []
        poolers, unreadable = await _poolers(gw, ns)
    data = connection_info(cluster, requests, role=role, database=database, poolers=poolers)
    data["poolers_unreadable"] = unreadable
    return result(_connection_text(data), data, as_json=format == "json")


async def _poolers(gw: Gateway, ns: str) -> tuple[list[dict[str, Any]], str | None]:
    """The namespace's Poolers, or none and why (a caller who may not list Poolers still gets the rest)."""
    try:
        return await gw.kube.cnpg_list(CNPG_POOLERS, ns), None
    except ApiException as exc:
        if exc.status != 403:
            raise
        return [], errors.from_api_exception(exc, f"listing Poolers in {ns}").args[0]


def _connection_text(data: dict[str, Any]) -> str:
    lines = [f"Connecting to {data['namespace']}/{data['cluster']} as {data['user']} "
             f"({data['role_declared_in']}), database {data['database']}:", "Services (port 5432):"]
    lines += [f"- {s['host']} — {s['purpose']}" for s in data["services"]]
    if data["poolers"]:
        lines.append("Poolers (PgBouncer, port 5432):")
        lines += [f"- {p['host']} — pooler {p['name']}, type {p['type']} ({p['target']}), pool mode {p['pool_mode']}"
                  f"\n  URI: {p['uri']}" for p in data["poolers"]]
    if data.get("poolers_unreadable"):
        lines.append(f"Poolers: unknown ({data['poolers_unreadable']})")
    if data["password_secret"]:
        lines.append(f"Password: in Secret {data['password_secret']} (key password); read it with:\n  "
                     f"{data['password_command']}")
    else:
        lines.append("Password: no password Secret is declared for this role (it may not log in with one).")
    lines.append(f"TLS: sslmode={data['sslmode']}; the CA certificate is key ca.crt of Secret {data['ca_secret']}:"
                 f"\n  {data['ca_command']}")
    lines.append(f"URI (no password; libpq reads PGPASSWORD): {data['uri']}")
    lines.append("The gateway never reads Secrets or returns passwords.")
    return "\n".join(lines)


TOOLS = (
    ToolSpec("get_cluster_logs", "Get cluster logs", "diagnostics", READ, outputs.ClusterLogs, get_cluster_logs,
             (errors.NOT_FOUND,)),
    ToolSpec("get_connection_info", "Get connection info", "clusters", READ, outputs.ConnectionInfo,
             get_connection_info, (errors.NOT_FOUND,)),
)
