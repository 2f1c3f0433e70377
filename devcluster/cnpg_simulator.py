"""CNPG SIMULATOR — a stand-in for the CloudNativePG operator, for tests and the dev sandbox only.

This is NOT CloudNativePG and NOT part of the cnpg-mcp operator. It watches CNPG 1.30 objects
(``postgresql.cnpg.io/v1`` Cluster, Database, DatabaseRole) on a real API server and plays the
part CNPG would play, against ONE real PostgreSQL server shared by every simulated Cluster:

- Cluster: status goes to ``Cluster in healthy state`` (readyInstances = spec.instances,
  currentPrimary/targetPrimary, Ready condition, managedRolesStatus); creates the ``<name>-app``
  Secret and the ``-rw``/``-ro``/``-r`` Services (owned by the Cluster); really creates the
  bootstrap database and owner, and really reconciles ``spec.managed.roles`` in PostgreSQL.
- DatabaseRole / Database: really creates/alters/drops the role or database; sets
  ``status.applied``/``message``/``observedGeneration``; CNPG's finalizers and reclaim policies.

No pods, no storage, no replication: "instances" exist only in the status. Role and database
names are global across simulated clusters (one shared server): use unique names.
See docs/cnpg-simulator.md.

Run: ``python -m devcluster.cnpg_simulator --kubeconfig PATH --postgres-json PATH``.
Prints ``cnpg-simulator ready`` on stdout once every watch is established; logs go to stderr.
Passwords are never logged.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import heapq
import hmac
import json
import logging
import os
import queue
import secrets
import selectors
import signal
import string
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psycopg
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException
from psycopg import sql

if TYPE_CHECKING:
    from devcluster.postgres import PostgresServer

log = logging.getLogger("cnpg-simulator")

READY_LINE = "cnpg-simulator ready"
GROUP = "postgresql.cnpg.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
PHASE_HEALTHY = "Cluster in healthy state"
PHASE_SETTING_UP = "Setting up primary"
ROLE_FINALIZER = "cnpg.io/deleteRole"
DATABASE_FINALIZER = "cnpg.io/deleteDatabase"
RELOAD_LABEL = "cnpg.io/reload"
CLUSTER_LABEL = "cnpg.io/cluster"
RESERVED_ROLES = frozenset({"postgres", "streaming_replica"})
POSTGRES_PORT = 5432
CLUSTER_DOMAIN = "cluster.local"
ERR_MANAGED_BY_CLUSTER = "database role is already managed by the CNPG cluster"
RETRY_BASE_S = 0.5
RETRY_MAX_S = 10.0
WATCH_TIMEOUT_S = 240

Json = dict[str, Any]
Key = tuple[str, str, str]  # (kind, namespace, name); kind in {"cluster", "databaserole", "database"}
ListFactory = Callable[[Any], tuple[Callable[..., Any], Json]]
WatchSpec = tuple[str, ListFactory, Callable[[str, Json], None], bool]


# =============================================================================== pure: roles


@dataclass(frozen=True)
class DesiredRole:
    """A CNPG RoleConfiguration (Cluster.spec.managed.roles[] or DatabaseRole.spec), with defaults."""

    name: str
    ensure: str = "present"
    login: bool = False
    superuser: bool = False
    inherit: bool = True
    createdb: bool = False
    createrole: bool = False
    replication: bool = False
    bypassrls: bool = False
    connection_limit: int = -1
    valid_until: str | None = None
    in_roles: tuple[str, ...] = ()
    comment: str | None = None
    password_secret: str | None = None
    disable_password: bool = False


def desired_role(entry: Mapping[str, Any]) -> DesiredRole:
    secret_ref = entry.get("passwordSecret") or {}
    return DesiredRole(
        name=str(entry["name"]),
        ensure=str(entry.get("ensure") or "present"),
        login=bool(entry.get("login", False)),
        superuser=bool(entry.get("superuser", False)),
        inherit=bool(entry.get("inherit", True)),
        createdb=bool(entry.get("createdb", False)),
        createrole=bool(entry.get("createrole", False)),
        replication=bool(entry.get("replication", False)),
        bypassrls=bool(entry.get("bypassrls", False)),
        connection_limit=int(entry.get("connectionLimit", -1)),
        valid_until=entry.get("validUntil") or None,
        in_roles=tuple(entry.get("inRoles") or ()),
        comment=entry.get("comment") or None,
        password_secret=secret_ref.get("name") or None,
        disable_password=bool(entry.get("disablePassword", False)),
    )


@dataclass(frozen=True)
class ActualRole:
    """A role as read from pg_authid. valid_until_epoch: None = NULL, inf = 'infinity'."""

    name: str
    superuser: bool
    inherit: bool
    createrole: bool
    createdb: bool
    login: bool
    replication: bool
    bypassrls: bool
    connection_limit: int
    valid_until_epoch: float | None
    has_password: bool
    comment: str | None
    in_roles: frozenset[str]
    xmin: int


@dataclass(frozen=True)
class PasswordAction:
    kind: Literal["keep", "set", "null"]
    verifier: str = field(default="", repr=False)


KEEP_PASSWORD = PasswordAction("keep")
NULL_PASSWORD = PasswordAction("null")

_FLAG_KEYWORDS: tuple[tuple[str, str, str], ...] = (
    ("bypassrls", "BYPASSRLS", "NOBYPASSRLS"),
    ("createdb", "CREATEDB", "NOCREATEDB"),
    ("createrole", "CREATEROLE", "NOCREATEROLE"),
    ("inherit", "INHERIT", "NOINHERIT"),
    ("login", "LOGIN", "NOLOGIN"),
    ("replication", "REPLICATION", "NOREPLICATION"),
    ("superuser", "SUPERUSER", "NOSUPERUSER"),
)


def parse_timestamp(value: str) -> float:
    """RFC 3339 → epoch seconds (a value without zone is taken as UTC)."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def valid_until_differs(desired: str | None, actual_epoch: float | None) -> bool:
    never = actual_epoch is None or actual_epoch == float("inf")
    if desired is None:
        return not never
    return never or abs(parse_timestamp(desired) - float(actual_epoch or 0)) > 1.0


def attributes_differ(desired: DesiredRole, actual: ActualRole) -> bool:
    flags_differ = any(getattr(desired, attr) != getattr(actual, attr) for attr, _, _ in _FLAG_KEYWORDS)
    return (flags_differ or desired.connection_limit != actual.connection_limit
            or valid_until_differs(desired.valid_until, actual.valid_until_epoch))


def role_options_sql(desired: DesiredRole, password: PasswordAction) -> sql.Composed:
    """The option list shared by CREATE ROLE and ALTER ROLE (every attribute, explicitly)."""
    words: list[sql.Composable] = [sql.SQL(on if getattr(desired, attr) else off)
                                   for attr, on, off in _FLAG_KEYWORDS]
    words.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(desired.connection_limit)))
    if password.kind == "set":
        words.append(sql.SQL("PASSWORD {}").format(sql.Literal(password.verifier)))
    elif password.kind == "null":
        words.append(sql.SQL("PASSWORD NULL"))
    valid_until = desired.valid_until or "infinity"
    words.append(sql.SQL("VALID UNTIL {}").format(sql.Literal(valid_until)))
    return sql.SQL(" ").join(words)


def membership_changes(desired: Iterable[str], actual: Iterable[str]) -> tuple[list[str], list[str]]:
    """(roles to GRANT, roles to REVOKE), sorted."""
    want, have = set(desired), set(actual)
    return sorted(want - have), sorted(have - want)


def plan_role(desired: DesiredRole, actual: ActualRole | None,
              password: PasswordAction) -> list[sql.Composed]:
    """Statements that bring PostgreSQL to `desired` (ensure present). Empty when nothing to do."""
    name = sql.Identifier(desired.name)
    statements: list[sql.Composed] = []
    if actual is None:
        statements.append(sql.SQL("CREATE ROLE {} WITH {}").format(name, role_options_sql(desired, password)))
        grant, revoke = list(dict.fromkeys(desired.in_roles)), list[str]()
    else:
        if attributes_differ(desired, actual) or password.kind != "keep":
            options = role_options_sql(desired, password)
            statements.append(sql.SQL("ALTER ROLE {} WITH {}").format(name, options))
        grant, revoke = membership_changes(desired.in_roles, actual.in_roles)
    statements += [sql.SQL("GRANT {} TO {}").format(sql.Identifier(r), name) for r in grant]
    statements += [sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(r), name) for r in revoke]
    actual_comment = actual.comment if actual is not None else None
    if (desired.comment or "") != (actual_comment or ""):
        comment = sql.Literal(desired.comment) if desired.comment else sql.SQL("NULL")
        statements.append(sql.SQL("COMMENT ON ROLE {} IS {}").format(name, comment))
    return statements


def drop_role_sql(name: str) -> sql.Composed:
    return sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name))


def scram_sha256_verifier(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier, computed here so the clear password never reaches the server."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def password_verifier(password: str) -> str:
    """What goes into PASSWORD '...': pre-hashed values pass through (as in CNPG); non-ASCII is sent
    as is, because PostgreSQL normalises it (SASLprep) before hashing."""
    if password.startswith(("SCRAM-SHA-256$", "md5")) or not password.isascii():
        return password
    return scram_sha256_verifier(password)


def password_action(desired: DesiredRole, actual: ActualRole | None, password: str | None,
                    secret_version: str | None, applied_version: str | None) -> PasswordAction:
    """Set the Secret's password when the role is new or the Secret changed since last applied."""
    if desired.disable_password:
        return NULL_PASSWORD if actual is None or actual.has_password else KEEP_PASSWORD
    if password is None:
        return KEEP_PASSWORD
    if actual is None or not actual.has_password or secret_version != applied_version:
        return PasswordAction("set", password_verifier(password))
    return KEEP_PASSWORD


def api_error_text(exc: ApiException) -> str:
    """Status code, reason and the API's message (not the response headers)."""
    try:
        message = json.loads(exc.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = ""
    return f"{exc.status} {exc.reason}: {message}".strip().rstrip(":")


def is_namespace_terminating(exc: ApiException) -> bool:
    return exc.status == 403 and "NamespaceTerminating" in str(exc.body or "")


def pg_error_text(exc: BaseException) -> str:
    """One line: primary message, detail, SQLSTATE (never the statement, which may hold a password)."""
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        text = exc.diag.message_primary
        if exc.diag.message_detail:
            text += f" ({exc.diag.message_detail.strip()})"
        if exc.sqlstate:
            text += f" (SQLSTATE {exc.sqlstate})"
        return text
    return " ".join(str(exc).split())


# ============================================================================ pure: objects


def owner_reference(obj: Mapping[str, Any]) -> Json:
    meta = obj["metadata"]
    return {"apiVersion": obj.get("apiVersion", API_VERSION), "kind": obj.get("kind", "Cluster"),
            "name": meta["name"], "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}


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
    "rw": ("cnpg.io/instanceRole", "primary"),
    "ro": ("cnpg.io/instanceRole", "replica"),
    "r": ("cnpg.io/podRole", "instance"),
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


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def upsert_condition(conditions: Sequence[Mapping[str, Any]], *, type_: str, status: str, reason: str,
                     message: str, generation: int, now: str) -> list[Json]:
    """Replace the condition of that type (lastTransitionTime kept when the status did not change)."""
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != status
    condition = {"type": type_, "status": status, "reason": reason, "message": message,
                 "observedGeneration": generation,
                 "lastTransitionTime": now if changed or previous is None
                 else previous.get("lastTransitionTime", now)}
    return [dict(c) for c in conditions if c.get("type") != type_] + [condition]


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
    if app_secret_version is not None:
        versions = dict(previous.get("secretsResourceVersion") or {})
        versions["applicationSecretVersion"] = app_secret_version
        status["secretsResourceVersion"] = versions
    return status


def crd_status(generation: int, error: str | None, extra: Mapping[str, Any] | None = None) -> Json:
    """status of a Database/DatabaseRole, CNPG's way: observedGeneration moves only on success."""
    status: Json = {"applied": error is None, "message": error}
    if error is None:
        status["observedGeneration"] = generation
    status.update(extra or {})
    return status


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> Json:
    """RFC 7386 merge patch turning `old` into `new` (keys missing from `new` are removed)."""
    patch: Json = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif value is None:
            if key in old:
                patch[key] = None
        elif before != value:
            patch[key] = value
    return patch


def status_patch(current: Mapping[str, Any], owned: Mapping[str, Any]) -> Json:
    """Merge patch for the keys we own (None = remove); other status keys are left alone."""
    return merge_patch({k: current[k] for k in owned if k in current}, owned)


def finalizers_with(obj: Mapping[str, Any], finalizer: str, present: bool) -> list[str] | None:
    """The new finalizer list, or None when it already is as wanted."""
    current = list(obj["metadata"].get("finalizers") or [])
    if (finalizer in current) == present:
        return None
    return [*current, finalizer] if present else [f for f in current if f != finalizer]


def retry_delay(failures: int) -> float:
    return float(min(RETRY_MAX_S, RETRY_BASE_S * 2 ** max(0, failures - 1)))


# ================================================================================ PostgreSQL


class Postgres:
    """Superuser access to the shared server (one connection, re-opened when it breaks)."""

    def __init__(self, server: PostgresServer) -> None:
        self._server = server
        self._conn: psycopg.Connection[Any] | None = None

    def conn(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self._server.superuser_dsn(), autocommit=True)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def read_role(self, name: str) -> ActualRole | None:
        row = self.conn().execute(
            """SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
                      r.rolreplication, r.rolbypassrls, r.rolconnlimit,
                      extract(epoch FROM r.rolvaliduntil)::float8, r.rolpassword IS NOT NULL,
                      pg_catalog.shobj_description(r.oid, 'pg_authid'), r.xmin::text::bigint,
                      ARRAY(SELECT g.rolname FROM pg_catalog.pg_auth_members m
                            JOIN pg_catalog.pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)
               FROM pg_catalog.pg_authid r WHERE r.rolname = %s""", (name,)).fetchone()
        if row is None:
            return None
        return ActualRole(name=row[0], superuser=row[1], inherit=row[2], createrole=row[3], createdb=row[4],
                          login=row[5], replication=row[6], bypassrls=row[7], connection_limit=row[8],
                          valid_until_epoch=row[9], has_password=row[10], comment=row[11],
                          xmin=row[12], in_roles=frozenset(row[13] or ()))

    def run_in_transaction(self, statements: Sequence[sql.Composed]) -> None:
        conn = self.conn()
        with conn.transaction():
            for statement in statements:
                conn.execute(statement)

    def run(self, statement: sql.Composed, dbname: str = "postgres") -> None:
        if dbname == "postgres":
            self.conn().execute(statement)
            return
        with psycopg.connect(self._server.superuser_dsn(dbname), autocommit=True) as conn:
            conn.execute(statement)

    def query_one(self, query: str, params: Sequence[Any],
                  dbname: str = "postgres") -> tuple[Any, ...] | None:
        if dbname == "postgres":
            row: tuple[Any, ...] | None = self.conn().execute(query, params).fetchone()
            return row
        with psycopg.connect(self._server.superuser_dsn(dbname), autocommit=True) as conn:
            row = conn.execute(query, params).fetchone()
            return row

    def role_exists(self, name: str) -> bool:
        return self.query_one("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (name,)) is not None

    def database(self, name: str) -> tuple[str, bool, bool, int] | None:
        """(owner, is_template, allow_connections, connection_limit) or None."""
        row = self.query_one(
            """SELECT pg_catalog.pg_get_userbyid(datdba), datistemplate, datallowconn, datconnlimit
               FROM pg_catalog.pg_database WHERE datname = %s""", (name,))
        return None if row is None else (row[0], row[1], row[2], row[3])


def apply_role(pg: Postgres, desired: DesiredRole, password: str | None, secret_version: str | None,
               applied_version: str | None) -> int:
    """Creates/alters the role (ensure present); returns the role's xmin afterwards."""
    actual = pg.read_role(desired.name)
    action = password_action(desired, actual, password, secret_version, applied_version)
    statements = plan_role(desired, actual, action)
    if statements:
        pg.run_in_transaction(statements)
        log.info("role %s %s", desired.name, "created" if actual is None else "altered")
    after = pg.read_role(desired.name)
    return after.xmin if after is not None else 0


def drop_role(pg: Postgres, name: str) -> None:
    if pg.role_exists(name):
        pg.run(drop_role_sql(name))
        log.info("role %s dropped", name)


def database_options(spec: Mapping[str, Any]) -> list[sql.Composable]:
    """CREATE DATABASE options other than OWNER, from a CNPG Database spec."""
    options: list[sql.Composable] = []
    for key, keyword in (("template", "TEMPLATE"), ("tablespace", "TABLESPACE")):
        if spec.get(key):
            options.append(sql.SQL(keyword + " {}").format(sql.Identifier(spec[key])))
    for key, keyword in (("encoding", "ENCODING"), ("locale", "LOCALE"), ("localeCollate", "LC_COLLATE"),
                         ("localeCType", "LC_CTYPE"), ("localeProvider", "LOCALE_PROVIDER"),
                         ("icuLocale", "ICU_LOCALE"), ("collationVersion", "COLLATION_VERSION")):
        if spec.get(key):
            options.append(sql.SQL(keyword + " {}").format(sql.Literal(spec[key])))
    if spec.get("isTemplate") is not None:
        options.append(sql.SQL("IS_TEMPLATE {}").format(sql.Literal(bool(spec["isTemplate"]))))
    if spec.get("allowConnections") is not None:
        options.append(sql.SQL("ALLOW_CONNECTIONS {}").format(sql.Literal(bool(spec["allowConnections"]))))
    if spec.get("connectionLimit") is not None:
        options.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(int(spec["connectionLimit"]))))
    return options


def alter_database_sql(spec: Mapping[str, Any], actual: tuple[str, bool, bool, int]) -> list[sql.Composed]:
    name = sql.Identifier(spec["name"])
    owner, is_template, allow_connections, connection_limit = actual
    statements: list[sql.Composed] = []
    if spec["owner"] != owner:
        owner_sql = sql.Identifier(spec["owner"])
        statements.append(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(name, owner_sql))
    wanted = (("isTemplate", "IS_TEMPLATE", is_template), ("allowConnections", "ALLOW_CONNECTIONS",
                                                          allow_connections))
    for key, keyword, have in wanted:
        if spec.get(key) is not None and bool(spec[key]) != have:
            statements.append(sql.SQL("ALTER DATABASE {} WITH " + keyword + " {}").format(
                name, sql.Literal(bool(spec[key]))))
    if spec.get("connectionLimit") is not None and int(spec["connectionLimit"]) != connection_limit:
        statements.append(sql.SQL("ALTER DATABASE {} WITH CONNECTION LIMIT {}").format(
            name, sql.Literal(int(spec["connectionLimit"]))))
    return statements


def create_database_sql(spec: Mapping[str, Any]) -> sql.Composed:
    options = [sql.SQL("OWNER {}").format(sql.Identifier(spec["owner"])), *database_options(spec)]
    return sql.SQL("CREATE DATABASE {} WITH {}").format(sql.Identifier(spec["name"]),
                                                        sql.SQL(" ").join(options))


def drop_database_sql(name: str) -> sql.Composed:
    # WITH (FORCE) terminates the sessions still connected to it (PostgreSQL ≥ 13).
    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))


def schema_sql(schema: Mapping[str, Any]) -> list[sql.Composed]:
    name = sql.Identifier(schema["name"])
    if (schema.get("ensure") or "present") == "absent":
        return [sql.SQL("DROP SCHEMA IF EXISTS {}").format(name)]
    statements = [sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name)]
    if schema.get("owner"):
        owner = sql.Identifier(schema["owner"])
        statements.append(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(name, owner))
    return statements


def extension_sql(extension: Mapping[str, Any], installed: tuple[str, str] | None) -> list[sql.Composed]:
    """installed: (version, schema) of the extension in that database, or None."""
    name = sql.Identifier(extension["name"])
    if (extension.get("ensure") or "present") == "absent":
        return [sql.SQL("DROP EXTENSION IF EXISTS {}").format(name)] if installed else []
    version, schema = extension.get("version"), extension.get("schema")
    if installed is None:
        parts = [sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(name)]
        if schema:
            parts.append(sql.SQL("SCHEMA {}").format(sql.Identifier(schema)))
        if version:
            parts.append(sql.SQL("VERSION {}").format(sql.Literal(version)))
        return [sql.SQL(" ").join(parts)]
    statements = []
    if version and installed[0] != version:
        statements.append(sql.SQL("ALTER EXTENSION {} UPDATE TO {}").format(name, sql.Literal(version)))
    if schema and installed[1] != schema:
        statements.append(sql.SQL("ALTER EXTENSION {} SET SCHEMA {}").format(name, sql.Identifier(schema)))
    return statements


# ================================================================================ Kubernetes


def _to_dict(api_client: Any, obj: Any) -> Json:
    if isinstance(obj, dict):
        return obj
    result: Json = api_client.sanitize_for_serialization(obj)
    return result



class Simulator:
    """Watches → one work queue → one worker that reconciles keys one at a time (no races on PostgreSQL)."""

    def __init__(self, kubeconfig: Path, pg: Postgres, namespaces: Sequence[str] | None) -> None:
        self._kubeconfig = kubeconfig
        self._pg = pg
        self._namespaces = list(namespaces) if namespaces else None
        self._api = self._new_api_client()
        self._queue: queue.Queue[Key] = queue.Queue()
        self._pending: set[Key] = set()
        self._lock = threading.Lock()
        self._retries: list[tuple[float, Key]] = []
        self._retry_due: dict[Key, float] = {}
        self._failures: dict[Key, int] = {}
        self._secret_users: dict[tuple[str, str], set[Key]] = {}
        self._cluster_users: dict[tuple[str, str], set[Key]] = {}
        self._cluster_generations: dict[tuple[str, str], int] = {}
        self.stopping = threading.Event()

    def _new_api_client(self) -> Any:
        return config.new_client_from_config(config_file=str(self._kubeconfig))

    # ----------------------------------------------------------------------------- queue
    def enqueue(self, key: Key) -> None:
        with self._lock:
            if key in self._pending:
                return
            self._pending.add(key)
        self._queue.put(key)

    def _schedule_retry(self, key: Key) -> None:
        """One pending retry per key (the earliest wins); stale heap entries are skipped when popped."""
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        due = time.monotonic() + retry_delay(failures)
        with self._lock:
            if key in self._retry_due and self._retry_due[key] <= due:
                return
            self._retry_due[key] = due
            heapq.heappush(self._retries, (due, key))

    def _next_key(self) -> Key | None:
        with self._lock:
            now = time.monotonic()
            while self._retries and self._retries[0][0] <= now:
                due, key = heapq.heappop(self._retries)
                if self._retry_due.get(key) != due:
                    continue
                del self._retry_due[key]
                if key not in self._pending:
                    self._pending.add(key)
                    self._queue.put(key)
            wait = min(1.0, self._retries[0][0] - now) if self._retries else 1.0
        try:
            key = self._queue.get(timeout=max(0.01, wait))
        except queue.Empty:
            return None
        with self._lock:
            self._pending.discard(key)
        return key

    def work(self) -> None:
        handlers: dict[str, Callable[[str, str], bool]] = {
            "cluster": self.reconcile_cluster, "databaserole": self.reconcile_databaserole,
            "database": self.reconcile_database}
        while not self.stopping.is_set():
            key = self._next_key()
            if key is None:
                continue
            kind, namespace, name = key
            try:
                done = handlers[kind](namespace, name)
            except ApiException as exc:  # transient (409, API restart...): retried with backoff
                log.warning("%s %s/%s: %s", kind, namespace, name, api_error_text(exc))
                done = False
            except psycopg.Error as exc:
                log.warning("%s %s/%s: %s", kind, namespace, name, pg_error_text(exc))
                done = False
            except Exception:  # a bug: keep the worker alive, say where
                log.exception("%s %s/%s: unexpected error", kind, namespace, name)
                done = False
            if done:
                self._failures.pop(key, None)
            else:
                self._schedule_retry(key)

    # ----------------------------------------------------------------------- references
    def _remember(self, index: dict[tuple[str, str], set[Key]], key: Key, refs: Iterable[str]) -> None:
        """Records which Secrets/Clusters `key` depends on, so their events re-enqueue it."""
        with self._lock:
            for users in index.values():
                users.discard(key)
            for ref in refs:
                index.setdefault((key[1], ref), set()).add(key)

    def _users_of(self, index: dict[tuple[str, str], set[Key]], namespace: str, name: str) -> list[Key]:
        with self._lock:
            return list(index.get((namespace, name), ()))

    # --------------------------------------------------------------------------- API I/O
    def _custom(self) -> Any:
        return client.CustomObjectsApi(self._api)

    def _core(self) -> Any:
        return client.CoreV1Api(self._api)

    def _get(self, plural: str, namespace: str, name: str) -> Json | None:
        try:
            obj: Json = self._custom().get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
            return obj
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _read_secret(self, namespace: str, name: str) -> Json | None:
        try:
            return _to_dict(self._api, self._core().read_namespaced_secret(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _secret_password(self, namespace: str, name: str) -> tuple[str, str]:
        """(password, resourceVersion) of a basic-auth Secret; LookupError with a CNPG-like message."""
        secret = self._read_secret(namespace, name)
        if secret is None:
            raise LookupError(f'secrets "{name}" not found')
        encoded = (secret.get("data") or {}).get("password")
        if not encoded:
            raise LookupError(f'secret "{name}" has no "password" key')
        return base64.b64decode(encoded).decode(), str(secret["metadata"]["resourceVersion"])

    def _patch_status(self, plural: str, obj: Json, owned: Json) -> None:
        patch = status_patch(obj.get("status") or {}, owned)
        if not patch:
            return
        meta = obj["metadata"]
        try:
            updated = self._custom().patch_namespaced_custom_object_status(
                GROUP, VERSION, meta["namespace"], plural, meta["name"], {"status": patch},
                _content_type="application/merge-patch+json")
        except ApiException as exc:
            if exc.status != 404:
                raise
            return
        obj["status"] = updated.get("status") or {}

    def _set_finalizer(self, plural: str, obj: Json, finalizer: str, present: bool) -> None:
        """Optimistic (resourceVersion) merge patch of metadata.finalizers; 409 → retried by the caller."""
        wanted = finalizers_with(obj, finalizer, present)
        if wanted is None:
            return
        meta = obj["metadata"]
        body = {"metadata": {"finalizers": wanted, "resourceVersion": meta["resourceVersion"]}}
        try:
            updated: Json = self._custom().patch_namespaced_custom_object(
                GROUP, VERSION, meta["namespace"], plural, meta["name"], body,
                _content_type="application/merge-patch+json")
        except ApiException as exc:
            if exc.status == 404 and not present:
                return
            raise
        obj["metadata"] = updated["metadata"]

    def _create_if_missing(self, create: Callable[[], Any], what: str) -> None:
        try:
            create()
            log.info("created %s", what)
        except ApiException as exc:
            # 409: already there; a terminating namespace accepts nothing new (and needs nothing).
            if exc.status != 409 and not is_namespace_terminating(exc):
                raise

    # ------------------------------------------------------------------------- Cluster
    def reconcile_cluster(self, namespace: str, name: str) -> bool:
        key: Key = ("cluster", namespace, name)
        cluster = self._get("clusters", namespace, name)
        if cluster is None or cluster["metadata"].get("deletionTimestamp"):
            self._remember(self._secret_users, key, [])
            return True  # owned objects go by garbage collection
        status = cluster.get("status") or {}
        if not status.get("phase"):
            self._patch_status("clusters", cluster, cluster_status(
                cluster, roles_status=None, app_secret_version=None, blocked_reason="Creating primary",
                now=now_rfc3339()))
        self._ensure_services(cluster)
        blocked, app_version, app_secret = self._bootstrap(cluster)
        outcomes, role_secrets = self._reconcile_managed_roles(cluster)
        self._remember(self._secret_users, key, [*role_secrets, app_secret])
        self._patch_status("clusters", cluster, cluster_status(
            cluster, roles_status=managed_roles_status(outcomes), app_secret_version=app_version,
            blocked_reason=blocked, now=now_rfc3339()))
        return blocked is None and not any(o.error for o in outcomes)

    def _ensure_services(self, cluster: Json) -> None:
        namespace = cluster["metadata"]["namespace"]
        services = ((cluster.get("spec") or {}).get("managed") or {}).get("services") or {}
        disabled = set(services.get("disabledDefaultServices") or []) - {"rw"}
        core = self._core()
        for suffix in SERVICE_SELECTORS:
            if suffix in disabled:
                continue
            body = service_body(cluster, suffix)
            self._create_if_missing(partial(core.create_namespaced_service, namespace, body),
                                    f"Service {namespace}/{body['metadata']['name']}")

    def _bootstrap(self, cluster: Json) -> tuple[str | None, str | None, str]:
        """App Secret + bootstrap owner and database. → (blocked reason, app Secret version, its name)."""
        namespace = cluster["metadata"]["namespace"]
        secret_name = app_secret_name(cluster)
        target = bootstrap_database(cluster)
        if target is None:
            return None, None, secret_name
        database, owner = target
        default_secret = secret_name == f"{cluster['metadata']['name']}-app"
        if default_secret and self._read_secret(namespace, secret_name) is None:
            body = app_secret_body(cluster, database, owner, generate_password())
            self._create_if_missing(lambda: self._core().create_namespaced_secret(namespace, body),
                                    f"Secret {namespace}/{secret_name}")
        try:
            password, version = self._secret_password(namespace, secret_name)
        except LookupError as exc:
            return str(exc), None, secret_name
        applied = ((cluster.get("status") or {}).get("secretsResourceVersion") or {}).get(
            "applicationSecretVersion")
        try:
            apply_role(self._pg, DesiredRole(name=owner, login=True), password, version, applied)
            if self._pg.database(database) is None:
                self._pg.run(create_database_sql({"name": database, "owner": owner}))
                log.info("database %s created (owner %s)", database, owner)
        except psycopg.Error as exc:
            return f"bootstrap of database {database}: {pg_error_text(exc)}", None, secret_name
        return None, version, secret_name

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
                drop_role(self._pg, desired.name)
                return RoleOutcome(desired.name, "reconciled")
            password, version = None, None
            if desired.password_secret and not desired.disable_password:
                password, version = self._secret_password(namespace, desired.password_secret)
            xmin = apply_role(self._pg, desired, password, version, applied_version)
            return RoleOutcome(desired.name, "reconciled", transaction_id=xmin, secret_version=version)
        except (psycopg.Error, LookupError) as exc:
            message = pg_error_text(exc)
            log.warning("managed role %s cannot be reconciled: %s", desired.name, message)
            return RoleOutcome(desired.name, "pending-reconciliation", error=message)

    def _cluster_event(self, event_type: str, obj: Json) -> None:
        meta = obj["metadata"]
        ref = (meta["namespace"], meta["name"])
        self.enqueue(("cluster", *ref))
        generation = int(meta.get("generation", 0))
        changed = self._cluster_generations.get(ref) != generation
        self._cluster_generations[ref] = generation
        if event_type == "DELETED":
            self._cluster_generations.pop(ref, None)
        if event_type in ("ADDED", "DELETED") or changed:
            for user in self._users_of(self._cluster_users, *ref):
                self.enqueue(user)

    # -------------------------------------------------------------------- DatabaseRole
    def reconcile_databaserole(self, namespace: str, name: str) -> bool:
        key: Key = ("databaserole", namespace, name)
        role = self._get("databaseroles", namespace, name)
        if role is None:
            self._remember(self._secret_users, key, [])
            self._remember(self._cluster_users, key, [])
            return True
        spec = role.get("spec") or {}
        desired = desired_role(spec)
        cluster_name = (spec.get("cluster") or {}).get("name", "")
        self._remember(self._cluster_users, key, [cluster_name])
        self._remember(self._secret_users, key, [desired.password_secret] if desired.password_secret else [])
        cluster = self._get("clusters", namespace, cluster_name)
        if role["metadata"].get("deletionTimestamp"):
            return self._release_databaserole(role, desired, cluster)
        self._set_finalizer("databaseroles", role, ROLE_FINALIZER, present=True)
        generation = int(role["metadata"].get("generation", 1))
        status = role.get("status") or {}
        version: str | None = None
        try:
            if cluster is None:
                raise LookupError(f'cluster "{cluster_name}" not found')
            if desired.ensure == "absent":
                raise LookupError("ensure: absent is not supported for DatabaseRole;"
                                  " delete the resource with databaseRoleReclaimPolicy: delete instead")
            if _managed_inline(cluster, desired.name):
                raise LookupError(ERR_MANAGED_BY_CLUSTER)
            password = None
            if desired.password_secret and not desired.disable_password:
                password, version = self._secret_password(namespace, desired.password_secret)
            apply_role(self._pg, desired, password, version, status.get("secretResourceVersion"))
            error = None
        except (psycopg.Error, LookupError) as exc:
            error = pg_error_text(exc)
            log.warning("DatabaseRole %s/%s: %s", namespace, name, error)
        extra = {"secretResourceVersion": version} if error is None else None
        self._patch_status("databaseroles", role, crd_status(generation, error, extra))
        return error is None

    def _release_databaserole(self, role: Json, desired: DesiredRole, cluster: Json | None) -> bool:
        """Deletion: with reclaim policy delete, DROP ROLE (as CNPG: only a role this object applied,
        not one the Cluster manages inline); then remove our finalizer. A failed DROP keeps it."""
        if ROLE_FINALIZER not in (role["metadata"].get("finalizers") or []):
            return True
        spec = role.get("spec") or {}
        was_applied = int((role.get("status") or {}).get("observedGeneration") or 0) > 0
        inline = cluster is not None and _managed_inline(cluster, desired.name)
        if spec.get("databaseRoleReclaimPolicy") == "delete" and was_applied and not inline:
            try:
                drop_role(self._pg, desired.name)
            except psycopg.Error as exc:
                error = pg_error_text(exc)
                log.warning("DatabaseRole %s/%s: cannot drop role: %s", role["metadata"]["namespace"],
                            role["metadata"]["name"], error)
                self._patch_status("databaseroles", role, {"applied": False, "message": error})
                return False
        self._set_finalizer("databaseroles", role, ROLE_FINALIZER, present=False)
        return True

    # ------------------------------------------------------------------------ Database
    def reconcile_database(self, namespace: str, name: str) -> bool:
        key: Key = ("database", namespace, name)
        database = self._get("databases", namespace, name)
        if database is None:
            self._remember(self._cluster_users, key, [])
            return True
        spec = database.get("spec") or {}
        cluster_name = (spec.get("cluster") or {}).get("name", "")
        self._remember(self._cluster_users, key, [cluster_name])
        if database["metadata"].get("deletionTimestamp"):
            return self._release_database(database)
        self._set_finalizer("databases", database, DATABASE_FINALIZER, present=True)
        generation = int(database["metadata"].get("generation", 1))
        extra: Json = {}
        try:
            if self._get("clusters", namespace, cluster_name) is None:
                raise LookupError(f'cluster "{cluster_name}" not found')
            if (spec.get("ensure") or "present") == "absent":
                self._pg.run(drop_database_sql(spec["name"]))
            else:
                extra = self._apply_database(spec)
            failed = [f"{kind} {o['name']}: {o['message']}" for kind in ("schemas", "extensions")
                      for o in extra.get(kind, []) if not o["applied"]]
            error = "; ".join(failed) or None
        except (psycopg.Error, LookupError) as exc:
            error = pg_error_text(exc)
        if error:
            log.warning("Database %s/%s: %s", namespace, name, error)
        self._patch_status("databases", database, crd_status(generation, error, extra))
        return error is None

    def _apply_database(self, spec: Mapping[str, Any]) -> Json:
        """CREATE or ALTER the database, then its schemas and extensions (status entry per object)."""
        actual = self._pg.database(spec["name"])
        if actual is None:
            self._pg.run(create_database_sql(spec))
            log.info("database %s created (owner %s)", spec["name"], spec["owner"])
        else:
            for statement in alter_database_sql(spec, actual):
                self._pg.run(statement)
        extra: Json = {}
        if spec.get("schemas"):
            extra["schemas"] = [self._apply_object(spec["name"], schema_sql(s), s["name"])
                                for s in spec["schemas"]]
        if spec.get("extensions"):
            extra["extensions"] = [self._apply_extension(spec["name"], e) for e in spec["extensions"]]
        return extra

    def _apply_object(self, dbname: str, statements: Sequence[sql.Composed], name: str) -> Json:
        try:
            for statement in statements:
                self._pg.run(statement, dbname)
        except psycopg.Error as exc:
            return {"name": name, "applied": False, "message": pg_error_text(exc)}
        return {"name": name, "applied": True}

    def _apply_extension(self, dbname: str, extension: Mapping[str, Any]) -> Json:
        try:
            row = self._pg.query_one(
                """SELECT e.extversion, n.nspname FROM pg_catalog.pg_extension e
                   JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = %s""",
                (extension["name"],), dbname)
        except psycopg.Error as exc:
            return {"name": extension["name"], "applied": False, "message": pg_error_text(exc)}
        installed = (str(row[0]), str(row[1])) if row else None
        return self._apply_object(dbname, extension_sql(extension, installed), extension["name"])

    def _release_database(self, database: Json) -> bool:
        if DATABASE_FINALIZER not in (database["metadata"].get("finalizers") or []):
            return True
        spec = database.get("spec") or {}
        if spec.get("databaseReclaimPolicy") == "delete":
            try:
                self._pg.run(drop_database_sql(spec["name"]))
                log.info("database %s dropped", spec["name"])
            except psycopg.Error as exc:
                error = pg_error_text(exc)
                log.warning("Database %s: cannot drop: %s", spec["name"], error)
                self._patch_status("databases", database, {"applied": False, "message": error})
                return False
        self._set_finalizer("databases", database, DATABASE_FINALIZER, present=False)
        return True

    # ------------------------------------------------------------------------- watches
    def _secret_event(self, event_type: str, obj: Json) -> None:
        if event_type == "DELETED":
            return
        meta = obj["metadata"]
        for user in self._users_of(self._secret_users, meta["namespace"], meta["name"]):
            self.enqueue(user)

    def _simple_event(self, kind: str) -> Callable[[str, Json], None]:
        def handle(_event_type: str, obj: Json) -> None:
            self.enqueue((kind, obj["metadata"]["namespace"], obj["metadata"]["name"]))
        return handle

    def watch_specs(self) -> list[WatchSpec]:
        """(name, factory of (list function, kwargs) for an ApiClient, event handler, replay the list?)."""
        def custom(plural: str) -> ListFactory:
            def factory(api: Any) -> tuple[Callable[..., Any], Json]:
                return client.CustomObjectsApi(api).list_cluster_custom_object, {
                    "group": GROUP, "version": VERSION, "plural": plural}
            return factory

        def secrets_factory(api: Any) -> tuple[Callable[..., Any], Json]:
            return (client.CoreV1Api(api).list_secret_for_all_namespaces,
                    {"label_selector": f"{RELOAD_LABEL}=true"})

        return [
            ("clusters", custom("clusters"), self._cluster_event, True),
            ("databaseroles", custom("databaseroles"), self._simple_event("databaserole"), True),
            ("databases", custom("databases"), self._simple_event("database"), True),
            ("secrets", secrets_factory, self._secret_event, False),
        ]

    def watch(self, name: str, factory: ListFactory, handle: Callable[[str, Json], None], replay: bool,
              ready: threading.Event) -> None:
        """List, then watch from the list's resourceVersion; relist on 410/errors. Never returns early."""
        api = self._new_api_client()
        list_fn, kwargs = factory(api)
        failures = 0
        while not self.stopping.is_set():
            try:
                listing = _to_dict(api, list_fn(**kwargs))
                version = listing["metadata"]["resourceVersion"]
                for item in listing.get("items") or []:
                    if replay and self._wanted(item):
                        handle("ADDED", _to_dict(api, item))
                ready.set()
                while not self.stopping.is_set():
                    stream = watch.Watch().stream(
                        list_fn, resource_version=version, timeout_seconds=WATCH_TIMEOUT_S,
                        allow_watch_bookmarks=True, deserialize=False,
                        _request_timeout=(10, WATCH_TIMEOUT_S + 30), **kwargs)
                    for event in stream:
                        obj = event.get("object") or {}
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if event["type"] in ("ADDED", "MODIFIED", "DELETED") and self._wanted(obj):
                            handle(event["type"], obj)
                    failures = 0
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("watch %s: %s", name, api_error_text(exc))
                    failures += 1
            except Exception as exc:  # a watch must survive connection errors
                log.warning("watch %s: %s", name, " ".join(str(exc).split())[:300])
                failures += 1
            if failures:
                self.stopping.wait(retry_delay(failures))

    def _wanted(self, obj: Mapping[str, Any]) -> bool:
        return self._namespaces is None or (obj.get("metadata") or {}).get("namespace") in self._namespaces

    def run(self) -> None:
        readies: list[threading.Event] = []
        for name, factory, handle, replay in self.watch_specs():
            ready = threading.Event()
            readies.append(ready)
            threading.Thread(target=self.watch, args=(name, factory, handle, replay, ready),
                             name=f"watch-{name}", daemon=True).start()
        for ready in readies:
            while not ready.wait(0.5):
                if self.stopping.is_set():
                    return
        worker = threading.Thread(target=self.work, name="worker", daemon=True)
        worker.start()
        print(READY_LINE, flush=True)
        log.info("all watches established")
        self.stopping.wait()
        log.info("stopping")
        worker.join(timeout=10)
        log.info("stopped")


def _managed_inline(cluster: Mapping[str, Any], role: str) -> bool:
    entries = ((cluster.get("spec") or {}).get("managed") or {}).get("roles") or []
    return any(entry.get("name") == role for entry in entries)


# ================================================================================== process


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devcluster.cnpg_simulator",
        description="SIMULATED CloudNativePG operator (tests and dev sandbox only)")
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--postgres-json", type=Path, required=True,
                        help="coordinates of the shared PostgreSQL (PostgresServer.write_json)")
    parser.add_argument("--namespace", action="append", default=[],
                        help="only this namespace (repeatable); default: all namespaces")
    parser.add_argument("--namespace-all", action="store_true", help="all namespaces (the default)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s cnpg-simulator %(levelname)s %(message)s")
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.ERROR)

    from devcluster.postgres import PostgresServer  # noqa: PLC0415

    pg = Postgres(PostgresServer.read_json(args.postgres_json))
    pg.conn()  # fail now, clearly, if PostgreSQL is not reachable
    simulator = Simulator(args.kubeconfig, pg, None if args.namespace_all else args.namespace or None)

    def stop(_signum: int, _frame: Any) -> None:
        simulator.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        simulator.run()
    finally:
        pg.close()
    return 0


def _die_with_parent() -> None:
    import ctypes  # noqa: PLC0415

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def launch_simulator(kubeconfig: Path, postgres: PostgresServer, log_path: Path, *,
                     timeout: float = 60.0, detach: bool = False) -> subprocess.Popen[bytes]:
    """Starts the simulator as a subprocess; returns once it printed its ready line.

    stdout and stderr go to log_path. With detach=False it dies with the calling process.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    postgres_json = log_path.with_name("postgres.json")
    postgres.write_json(postgres_json)
    repo_root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    log_file = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", "devcluster.cnpg_simulator", "--kubeconfig", str(kubeconfig),
         "--postgres-json", str(postgres_json)],
        stdout=subprocess.PIPE, stderr=log_file, stdin=subprocess.DEVNULL, env=env,
        start_new_session=True, preexec_fn=None if detach else _die_with_parent)  # noqa: PLW1509
    log_file.close()
    assert process.stdout is not None
    if not _wait_for_ready_line(process, timeout):
        stop_simulator(process)
        raise RuntimeError(f"the CNPG simulator did not become ready; log tail:\n{_tail(log_path)}")
    threading.Thread(target=_drain, args=(process.stdout, log_path), daemon=True).start()
    return process


def _wait_for_ready_line(process: subprocess.Popen[bytes], timeout: float) -> bool:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.5):
                if process.poll() is not None:
                    return False
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                return False
            buffer += chunk
            if READY_LINE.encode() in buffer:
                return True
    return False


def _drain(stream: Any, log_path: Path) -> None:
    """Keeps the stdout pipe from filling up once the ready line was read."""
    with contextlib.suppress(OSError, ValueError), log_path.open("ab") as out:
        for line in iter(stream.readline, b""):
            out.write(line)
            out.flush()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_simulator(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        with contextlib.suppress(OSError):
            process.stdout.close()


if __name__ == "__main__":
    raise SystemExit(main())
