"""The CNPG simulator against the real API server and the real PostgreSQL.

What a user of the simulator notices: Cluster status, the objects CNPG would create, and roles and
databases that really exist (or really stop existing) in PostgreSQL.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster.postgres import PostgresServer

pytestmark = pytest.mark.usefixtures("cnpg_simulator")

GROUP, VERSION = "postgresql.cnpg.io", "v1"
T = TypeVar("T")


# ------------------------------------------------------------------------------- helpers


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
    """Polls probe() until it returns something truthy; fails with `what` and the last value."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last seen: {last!r}")


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def k8s_name(pg_name: str) -> str:
    return pg_name.replace("_", "-")


def custom(k8s: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(k8s)


def get_cnpg(k8s: Any, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    try:
        obj: dict[str, Any] = custom(k8s).get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name)
        return obj
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def create_cnpg(k8s: Any, namespace: str, plural: str, kind: str, name: str, spec: dict[str, Any]) -> None:
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind, "metadata": {"name": name}, "spec": spec}
    custom(k8s).create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def patch_cnpg(k8s: Any, namespace: str, plural: str, name: str, body: dict[str, Any]) -> None:
    custom(k8s).patch_namespaced_custom_object(GROUP, VERSION, namespace, plural, name, body,
                                               _content_type="application/merge-patch+json")


def delete_cnpg(k8s: Any, namespace: str, plural: str, name: str) -> None:
    custom(k8s).delete_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)


def create_password_secret(k8s: Any, namespace: str, name: str, username: str, password: str) -> None:
    client.CoreV1Api(k8s).create_namespaced_secret(namespace, {
        "metadata": {"name": name, "labels": {"cnpg.io/reload": "true"}},
        "type": "kubernetes.io/basic-auth",
        "stringData": {"username": username, "password": password},
    })


def create_cluster(k8s: Any, namespace: str, name: str, *, instances: int = 1,
                   roles: list[dict[str, Any]] | None = None, database: str | None = None) -> None:
    spec: dict[str, Any] = {"instances": instances, "storage": {"size": "1Gi"}}
    if database:
        spec["bootstrap"] = {"initdb": {"database": database, "owner": database}}
    if roles is not None:
        spec["managed"] = {"roles": roles}
    create_cnpg(k8s, namespace, "clusters", "Cluster", name, spec)


def wait_healthy(k8s: Any, namespace: str, name: str) -> dict[str, Any]:
    def healthy() -> dict[str, Any] | None:
        cluster = get_cnpg(k8s, namespace, "clusters", name)
        status = (cluster or {}).get("status") or {}
        return cluster if status.get("phase") == "Cluster in healthy state" else None
    return wait_for(healthy, f"Cluster {name} healthy")


def superuser_query(postgres: PostgresServer, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(postgres.superuser_dsn(), autocommit=True) as conn:
        cursor = conn.execute(query, params)
        return cursor.fetchall() if cursor.description else []


def role_exists(postgres: PostgresServer, role: str) -> bool:
    return bool(superuser_query(postgres, "SELECT 1 FROM pg_roles WHERE rolname = %s", role))


def database_owner(postgres: PostgresServer, database: str) -> str | None:
    rows = superuser_query(
        postgres, "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s", database)
    return str(rows[0][0]) if rows else None


def managed_roles_status(k8s: Any, namespace: str, cluster: str) -> dict[str, Any]:
    obj = get_cnpg(k8s, namespace, "clusters", cluster) or {}
    status: dict[str, Any] = (obj.get("status") or {}).get("managedRolesStatus") or {}
    return status


# --------------------------------------------------------------------------------- tests


def test_cluster_becomes_healthy_with_app_secret_and_services(
        k8s: Any, namespace: str, postgres: PostgresServer) -> None:
    appdb = unique("app")
    create_cluster(k8s, namespace, "pg-main", instances=3, database=appdb)

    cluster = wait_healthy(k8s, namespace, "pg-main")
    status = cluster["status"]
    assert status["readyInstances"] == 3
    assert status["instances"] == 3
    assert status["currentPrimary"] == "pg-main-1"
    assert status["targetPrimary"] == "pg-main-1"
    ready = [c for c in status["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True" and ready[0]["reason"] == "ClusterIsReady"

    core = client.CoreV1Api(k8s)
    secret = core.read_namespaced_secret("pg-main-app", namespace)
    assert secret.type == "kubernetes.io/basic-auth"
    assert secret.metadata.labels["cnpg.io/cluster"] == "pg-main"
    assert secret.metadata.labels["cnpg.io/userType"] == "app"
    assert secret.metadata.labels["cnpg.io/reload"] == "true"
    assert secret.metadata.owner_references[0].uid == cluster["metadata"]["uid"]
    data = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
    assert {"username", "user", "password", "dbname", "host", "port", "uri", "jdbc-uri", "pgpass",
            "fqdn-uri", "fqdn-jdbc-uri"} <= set(data)
    assert data["username"] == appdb and data["dbname"] == appdb and data["host"] == "pg-main-rw"

    for suffix in ("rw", "ro", "r"):
        service = core.read_namespaced_service(f"pg-main-{suffix}", namespace)
        assert service.spec.type == "ClusterIP"
        assert service.spec.selector["cnpg.io/cluster"] == "pg-main"
        assert service.metadata.owner_references[0].uid == cluster["metadata"]["uid"]

    # The bootstrap database and its owner really exist, with the Secret's password.
    assert database_owner(postgres, appdb) == appdb
    assert postgres.can_login(appdb, data["password"], appdb)
    assert not postgres.can_login(appdb, "not-the-password", appdb)


def test_switchover_completes_when_target_primary_changes(k8s: Any, namespace: str) -> None:
    create_cluster(k8s, namespace, "pg-sw", instances=2, database=unique("sw"))
    wait_healthy(k8s, namespace, "pg-sw")
    custom(k8s).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "clusters", "pg-sw",
        {"status": {"targetPrimary": "pg-sw-2", "phase": "Switchover in progress"}},
        _content_type="application/merge-patch+json")

    def switched() -> bool:
        status = (get_cnpg(k8s, namespace, "clusters", "pg-sw") or {}).get("status") or {}
        return status.get("currentPrimary") == "pg-sw-2" and status.get("phase") == "Cluster in healthy state"
    wait_for(switched, "currentPrimary pg-sw-2")


def test_managed_role_logs_in_with_secret_password_and_goes_when_absent(
        k8s: Any, namespace: str, postgres: PostgresServer) -> None:
    role = unique("alice")
    create_password_secret(k8s, namespace, "alice-pw", role, "first-password")
    entry = {"name": role, "ensure": "present", "login": True, "comment": "managed by test",
             "passwordSecret": {"name": "alice-pw"}}
    create_cluster(k8s, namespace, "pg-roles", roles=[entry], database=unique("app"))
    wait_healthy(k8s, namespace, "pg-roles")

    wait_for(lambda: role in managed_roles_status(k8s, namespace, "pg-roles").get("byStatus", {})
             .get("reconciled", []), f"{role} reconciled")
    assert postgres.can_login(role, "first-password")
    assert not postgres.can_login(role, "wrong-password")
    assert not postgres.can_login(role, None)
    password_status = managed_roles_status(k8s, namespace, "pg-roles")["passwordStatus"][role]
    assert password_status["resourceVersion"]

    # A change of the (cnpg.io/reload labelled) Secret is applied.
    client.CoreV1Api(k8s).patch_namespaced_secret(
        "alice-pw", namespace, {"stringData": {"password": "second-password"}})
    wait_for(lambda: postgres.can_login(role, "second-password"), "the rotated password to work")
    assert not postgres.can_login(role, "first-password")

    # ensure: absent really drops the role.
    cluster = get_cnpg(k8s, namespace, "clusters", "pg-roles") or {}
    roles = cluster["spec"]["managed"]["roles"]
    roles[0]["ensure"] = "absent"
    patch_cnpg(k8s, namespace, "clusters", "pg-roles", {"spec": {"managed": {"roles": roles}}})
    wait_for(lambda: not role_exists(postgres, role), f"role {role} dropped")
    assert not postgres.can_login(role, "second-password")


def test_role_owning_a_database_cannot_be_dropped_and_status_says_why(
        k8s: Any, namespace: str, postgres: PostgresServer) -> None:
    role, dbname = unique("owner"), unique("owned")
    create_cluster(k8s, namespace, "pg-own", roles=[{"name": role, "login": True}], database=unique("app"))
    wait_healthy(k8s, namespace, "pg-own")
    wait_for(lambda: role_exists(postgres, role), f"role {role}")
    create_cnpg(k8s, namespace, "databases", "Database", "owned-db", {
        "cluster": {"name": "pg-own"}, "name": dbname, "owner": role, "databaseReclaimPolicy": "delete"})
    wait_for(lambda: database_owner(postgres, dbname) == role, f"database {dbname} owned by {role}")

    patch_cnpg(k8s, namespace, "clusters", "pg-own",
               {"spec": {"managed": {"roles": [{"name": role, "login": True, "ensure": "absent"}]}}})
    errors = wait_for(lambda: managed_roles_status(k8s, namespace, "pg-own").get("cannotReconcile", {})
                      .get(role), f"cannotReconcile for {role}")
    assert "cannot be dropped" in errors[0] and dbname in errors[0]
    assert role in managed_roles_status(k8s, namespace, "pg-own")["byStatus"]["pending-reconciliation"]
    assert role_exists(postgres, role)

    # Once the database is gone (reclaim policy delete), the retried DROP ROLE succeeds.
    delete_cnpg(k8s, namespace, "databases", "owned-db")
    wait_for(lambda: database_owner(postgres, dbname) is None, f"database {dbname} dropped")
    wait_for(lambda: not role_exists(postgres, role), f"role {role} dropped after its database")
    wait_for(lambda: "cannotReconcile" not in managed_roles_status(k8s, namespace, "pg-own"),
             "cannotReconcile cleared")


def test_databaserole_with_reclaim_delete_is_dropped_on_deletion(
        k8s: Any, namespace: str, postgres: PostgresServer) -> None:
    role = unique("bob")
    create_cluster(k8s, namespace, "pg-dr", database=unique("app"))
    wait_healthy(k8s, namespace, "pg-dr")
    create_password_secret(k8s, namespace, "bob-pw", role, "bob-password")
    create_cnpg(k8s, namespace, "databaseroles", "DatabaseRole", k8s_name(role), {
        "cluster": {"name": "pg-dr"}, "name": role, "login": True, "createdb": True,
        "passwordSecret": {"name": "bob-pw"}, "databaseRoleReclaimPolicy": "delete"})

    def applied() -> dict[str, Any] | None:
        obj = get_cnpg(k8s, namespace, "databaseroles", k8s_name(role)) or {}
        return obj if (obj.get("status") or {}).get("applied") is True else None
    obj = wait_for(applied, "DatabaseRole applied")
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert "cnpg.io/deleteRole" in obj["metadata"]["finalizers"]
    assert postgres.can_login(role, "bob-password")
    assert superuser_query(postgres, "SELECT rolcreatedb FROM pg_roles WHERE rolname = %s", role) == [(True,)]

    delete_cnpg(k8s, namespace, "databaseroles", k8s_name(role))
    wait_for(lambda: get_cnpg(k8s, namespace, "databaseroles", k8s_name(role)) is None,
             "DatabaseRole gone (finalizer released)")
    assert not role_exists(postgres, role)
    assert not postgres.can_login(role, "bob-password")


def test_databaserole_drop_failure_keeps_finalizer_until_it_can_drop(
        k8s: Any, namespace: str, postgres: PostgresServer) -> None:
    role, dbname = unique("carol"), unique("carol_db")
    create_cluster(k8s, namespace, "pg-keep", database=unique("app"))
    wait_healthy(k8s, namespace, "pg-keep")
    create_cnpg(k8s, namespace, "databaseroles", "DatabaseRole", "carol", {
        "cluster": {"name": "pg-keep"}, "name": role, "login": True, "databaseRoleReclaimPolicy": "delete"})
    wait_for(lambda: ((get_cnpg(k8s, namespace, "databaseroles", "carol") or {}).get("status") or {})
             .get("applied"), "DatabaseRole applied")
    superuser_query(postgres, f'CREATE DATABASE "{dbname}" OWNER "{role}"')

    delete_cnpg(k8s, namespace, "databaseroles", "carol")

    def blocked() -> dict[str, Any] | None:
        obj = get_cnpg(k8s, namespace, "databaseroles", "carol") or {}
        status = obj.get("status") or {}
        return obj if status.get("applied") is False and status.get("message") else None
    obj = wait_for(blocked, "DatabaseRole reporting the failed DROP")
    assert "cannot be dropped" in obj["status"]["message"]
    assert "cnpg.io/deleteRole" in obj["metadata"]["finalizers"]
    assert role_exists(postgres, role)

    superuser_query(postgres, f'DROP DATABASE "{dbname}"')
    wait_for(lambda: get_cnpg(k8s, namespace, "databaseroles", "carol") is None,
             "DatabaseRole released after a retried DROP ROLE")
    assert not role_exists(postgres, role)


def test_databaserole_for_a_missing_cluster_is_not_applied(k8s: Any, namespace: str) -> None:
    create_cnpg(k8s, namespace, "databaseroles", "DatabaseRole", "orphan", {
        "cluster": {"name": "no-such-cluster"}, "name": unique("orphan"), "login": True})

    def failed() -> dict[str, Any] | None:
        status = (get_cnpg(k8s, namespace, "databaseroles", "orphan") or {}).get("status") or {}
        return status if status.get("applied") is False else None
    status = wait_for(failed, "applied=false")
    assert "no-such-cluster" in status["message"] and "not found" in status["message"]


def test_database_is_created_with_owner_and_dropped_on_deletion(
        k8s: Any, namespace: str, postgres: PostgresServer) -> None:
    owner, dbname, kept = unique("dbowner"), unique("shop"), unique("kept")
    create_cluster(k8s, namespace, "pg-db", roles=[{"name": owner, "login": True}], database=unique("app"))
    wait_healthy(k8s, namespace, "pg-db")
    create_cnpg(k8s, namespace, "databases", "Database", "shop", {
        "cluster": {"name": "pg-db"}, "name": dbname, "owner": owner, "databaseReclaimPolicy": "delete",
        "schemas": [{"name": "sales", "owner": owner, "ensure": "present"}],
        "extensions": [{"name": "hstore", "ensure": "present"}]})
    create_cnpg(k8s, namespace, "databases", "Database", "kept", {
        "cluster": {"name": "pg-db"}, "name": kept, "owner": owner})

    def applied(name: str) -> dict[str, Any] | None:
        obj = get_cnpg(k8s, namespace, "databases", name) or {}
        return obj if (obj.get("status") or {}).get("applied") is True else None
    shop = wait_for(lambda: applied("shop"), "Database shop applied")
    wait_for(lambda: applied("kept"), "Database kept applied")
    assert "cnpg.io/deleteDatabase" in shop["metadata"]["finalizers"]
    assert shop["status"]["observedGeneration"] == shop["metadata"]["generation"]
    assert database_owner(postgres, dbname) == owner
    assert database_owner(postgres, kept) == owner
    with psycopg.connect(postgres.superuser_dsn(dbname)) as conn:
        assert conn.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'sales'"
                            ).fetchall() == [(owner,)]
        assert conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'hstore'").fetchall() == [(1,)]

    # A session still connected does not stop the drop.
    holder = psycopg.connect(postgres.superuser_dsn(dbname))
    try:
        delete_cnpg(k8s, namespace, "databases", "shop")
        delete_cnpg(k8s, namespace, "databases", "kept")
        wait_for(lambda: get_cnpg(k8s, namespace, "databases", "shop") is None, "Database shop gone")
        wait_for(lambda: get_cnpg(k8s, namespace, "databases", "kept") is None, "Database kept gone")
    finally:
        holder.close()
    assert database_owner(postgres, dbname) is None  # reclaim policy delete
    assert database_owner(postgres, kept) == owner  # default retain
    superuser_query(postgres, f'DROP DATABASE "{kept}"')
