"""PgRoleRequest end to end: real operator process, real API server, CNPG simulator, real PostgreSQL."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.integration.conftest import Intents, OperatorProcess

CLUSTER, ROLE, DB = "PgClusterRequest", "PgRoleRequest", "PgDatabaseRequest"


def unique(prefix: str) -> str:
    return f"{prefix}{secrets.token_hex(3)}"


def request_name(cluster: str, role: str) -> str:
    return f"{cluster}-{role.replace('_', '-')}"


def make_cluster(intents: Intents, namespace: str, name: str | None = None, **spec: Any) -> str:
    name = name or unique("pg")
    intents.create(CLUSTER, namespace, name, {"instances": 1, **spec})
    intents.wait_ready(CLUSTER, namespace, name)
    return name


def read_password(k8s: Any, namespace: str, secret_name: str) -> str:
    secret = client.CoreV1Api(k8s).read_namespaced_secret(secret_name, namespace)
    return base64.b64decode(secret.data["password"]).decode()


def pg_role(postgres: Any, role: str) -> dict[str, Any] | None:
    with psycopg.connect(postgres.superuser_dsn()) as conn:
        row = conn.execute("SELECT rolname, rolsuper, rolcanlogin, rolconnlimit, rolcreatedb FROM pg_roles"
                           " WHERE rolname = %s", (role,)).fetchone()
    if row is None:
        return None
    return dict(zip(("name", "superuser", "login", "connlimit", "createdb"), row, strict=True))


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


def secret_exists(k8s: Any, namespace: str, name: str) -> bool:
    try:
        client.CoreV1Api(k8s).read_namespaced_secret(name, namespace)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def test_role_lifecycle_with_database_role(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
                                           postgres: Any, namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    role = unique("app_user_")
    name = request_name(cluster, role)
    intents.create(ROLE, namespace, name, {"cluster": cluster, "roleName": role, "login": True})

    ready = intents.wait_ready(ROLE, namespace, name)
    status = ready["status"]
    assert status["backend"] == "DatabaseRole"
    assert status["databaseRole"] == name
    secret = client.CoreV1Api(k8s).read_namespaced_secret(status["secretName"], namespace)
    assert secret.type == "kubernetes.io/basic-auth"
    assert base64.b64decode(secret.data["username"]).decode() == role
    assert secret.metadata.labels["cnpg.io/reload"] == "true"
    assert secret.metadata.owner_references[0].uid == ready["metadata"]["uid"]
    password = read_password(k8s, namespace, status["secretName"])
    assert postgres.can_login(role, password)
    assert password not in str(ready)  # never in the status

    # update: CNPG applies the new attribute, the password stays
    intents.patch_spec(ROLE, namespace, name, {"connectionLimit": 7, "createdb": True})
    intents.wait_ready(ROLE, namespace, name)
    wait_until(lambda: (pg_role(postgres, role) or {}).get("connlimit") == 7, "connection limit 7 applied")
    assert (pg_role(postgres, role) or {})["createdb"] is True
    assert read_password(k8s, namespace, status["secretName"]) == password
    assert postgres.can_login(role, password)

    # explicit rotation: a new password that works, the old one does not
    intents.patch_spec(ROLE, namespace, name, {"password": {"rotation": "2026-01-01T00:00:00Z"}})
    wait_until(lambda: read_password(k8s, namespace, status["secretName"]) != password, "password rotated")
    rotated = read_password(k8s, namespace, status["secretName"])
    wait_until(lambda: postgres.can_login(role, rotated), "the rotated password works")
    assert not postgres.can_login(role, password)

    # deletion drops the role and removes what was produced
    intents.delete(ROLE, namespace, name)
    intents.wait_gone(ROLE, namespace, name)
    assert pg_role(postgres, role) is None
    assert not postgres.can_login(role, rotated)
    assert not secret_exists(k8s, namespace, status["secretName"])
    with pytest.raises(ApiException) as gone:
        client.CustomObjectsApi(k8s).get_namespaced_custom_object(
            "postgresql.cnpg.io", "v1", namespace, "databaseroles", name)
    assert gone.value.status == 404


def test_blocked_drop_is_reported_then_completes(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
                                                 postgres: Any, namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    role = unique("owner_")
    name = request_name(cluster, role)
    intents.create(ROLE, namespace, name, {"cluster": cluster, "roleName": role})
    intents.wait_ready(ROLE, namespace, name)
    table = f"t_{role}"
    with psycopg.connect(postgres.superuser_dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE TABLE "{table}" (id int)')
        conn.execute(f'ALTER TABLE "{table}" OWNER TO "{role}"')

    intents.delete(ROLE, namespace, name)
    blocked = intents.wait_reason(ROLE, namespace, name, "Blocked")
    assert "depend" in blocked["status"]["message"], blocked["status"]["message"]
    assert pg_role(postgres, role) is not None
    assert any(e.reason == "Blocked" and e.type == "Warning" for e in intents.events_for(namespace, name))

    with psycopg.connect(postgres.superuser_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP TABLE "{table}"')
    # CNPG retries the drop on its own schedule; nudging the DatabaseRole is what a user would do
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        "postgresql.cnpg.io", "v1", namespace, "databaseroles", name,
        {"metadata": {"annotations": {"example.com/retry": "1"}}})
    intents.wait_gone(ROLE, namespace, name, timeout=90)
    assert pg_role(postgres, role) is None


def test_role_waits_for_its_cluster(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any, postgres: Any,
                                    namespace: str, intents: Intents) -> None:
    cluster = unique("late")
    role = unique("late_user_")
    name = request_name(cluster, role)
    intents.create(ROLE, namespace, name, {"cluster": cluster, "roleName": role})
    intents.wait_reason(ROLE, namespace, name, "ClusterNotFound")

    make_cluster(intents, namespace, cluster)
    ready = intents.wait_ready(ROLE, namespace, name)
    assert postgres.can_login(role, read_password(k8s, namespace, ready["status"]["secretName"]))


def test_policy_refusals_show_as_conditions_and_events(operator: OperatorProcess, cnpg_simulator: Any,
                                                       k8s: Any, postgres: Any, namespace: str,
                                                       intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    superuser = unique("boss_")
    name = request_name(cluster, superuser)
    intents.create(ROLE, namespace, name, {"cluster": cluster, "roleName": superuser, "superuser": True,
                                           "privileged": True})
    denied = intents.wait_reason(ROLE, namespace, name, "PolicyDenied")
    assert "superuser" in denied["status"]["message"]
    assert (intents.ready(denied) or {})["status"] == "False"
    wait_until(lambda: any(e.reason == "PolicyDenied" and e.type == "Warning"
                           for e in intents.events_for(namespace, name)), "a PolicyDenied Warning event")
    assert pg_role(postgres, superuser) is None
    assert not secret_exists(k8s, namespace, f"cnpg-{cluster}-user-{superuser.replace('_', '-')}")

    # the bootstrap owner of the cluster (CNPG default "app") is reserved
    owner_request = request_name(cluster, "app")
    intents.create(ROLE, namespace, owner_request, {"cluster": cluster, "roleName": "app"})
    refused = intents.wait_reason(ROLE, namespace, owner_request, "PolicyDenied")
    assert "app" in refused["status"]["message"]

    # refused requests delete cleanly and touch nothing
    intents.delete(ROLE, namespace, owner_request)
    intents.wait_gone(ROLE, namespace, owner_request)
    assert pg_role(postgres, "app") is not None


def test_admin_policy_allows_privileged_roles(operator_factory: Callable[..., OperatorProcess],
                                              cnpg_simulator: Any, k8s: Any, postgres: Any, namespace: str,
                                              intents: Intents) -> None:
    operator_factory("--all-namespaces", "--allow-privileged-namespace", namespace)
    cluster = make_cluster(intents, namespace)
    role = unique("admin_")
    name = request_name(cluster, role)
    intents.create(ROLE, namespace, name, {"cluster": cluster, "roleName": role, "superuser": True,
                                           "privileged": True})
    intents.wait_ready(ROLE, namespace, name)
    assert (pg_role(postgres, role) or {}).get("superuser") is True
    intents.delete(ROLE, namespace, name)
    intents.wait_gone(ROLE, namespace, name)
    assert pg_role(postgres, role) is None


def test_fifty_concurrent_requests_on_managed_roles(operator_factory: Callable[..., OperatorProcess],
                                                    cnpg_simulator: Any, k8s: Any, postgres: Any,
                                                    namespace: str, intents: Intents) -> None:
    extra = operator_factory("--all-namespaces", "--role-backend", "managed-roles")
    cluster = make_cluster(intents, namespace)
    roles = [unique(f"m{i:02d}_") for i in range(50)]

    def create(role: str) -> None:
        intents.create(ROLE, namespace, request_name(cluster, role), {"cluster": cluster, "roleName": role})

    with ThreadPoolExecutor(max_workers=25) as pool:
        list(pool.map(create, roles))
    for role in roles:
        ready = intents.wait_ready(ROLE, namespace, request_name(cluster, role), timeout=120)
        assert ready["status"]["backend"] == "ManagedRoles"

    cnpg = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        "postgresql.cnpg.io", "v1", namespace, "clusters", cluster)
    entries = [e["name"] for e in cnpg["spec"]["managed"]["roles"]]
    assert sorted(entries) == sorted(roles), "entries were lost or duplicated"
    for role in roles[:10]:
        secret_name = f"cnpg-{cluster}-user-{role.replace('_', '-')}"
        assert postgres.can_login(role, read_password(k8s, namespace, secret_name))
    writes = extra.probe().get("writes") or {}
    assert writes.get("patch Cluster", 0) < 50, f"managed.roles writes were not batched: {writes}"

    def delete(role: str) -> None:
        intents.delete(ROLE, namespace, request_name(cluster, role))

    with ThreadPoolExecutor(max_workers=25) as pool:
        list(pool.map(delete, roles))
    for role in roles:
        intents.wait_gone(ROLE, namespace, request_name(cluster, role), timeout=120)
    cnpg = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        "postgresql.cnpg.io", "v1", namespace, "clusters", cluster)
    assert not ((cnpg["spec"].get("managed") or {}).get("roles") or [])
    assert all(pg_role(postgres, role) is None for role in roles)


@pytest.mark.parametrize("backend", ["databaserole", "managed-roles"])
def test_cleanup_completes_when_the_cluster_is_gone(operator_factory: Callable[..., OperatorProcess], backend: str,
                                                    cnpg_simulator: Any, k8s: Any, postgres: Any, namespace: str,
                                                    intents: Intents) -> None:
    operator_factory("--all-namespaces", "--role-backend", backend)
    cluster = make_cluster(intents, namespace, deletionPolicy="Delete")
    role = unique("orphan_")
    name = request_name(cluster, role)
    intents.create(ROLE, namespace, name, {"cluster": cluster, "roleName": role})
    secret_name = intents.wait_ready(ROLE, namespace, name)["status"]["secretName"]
    assert postgres.can_login(role, read_password(k8s, namespace, secret_name))

    intents.delete(CLUSTER, namespace, cluster)  # the Cluster (and its PostgreSQL) is deleted first
    wait_until(lambda: intents.get(CLUSTER, namespace, cluster) is None, "cluster request gone")
    intents.delete(ROLE, namespace, name)
    intents.wait_gone(ROLE, namespace, name, timeout=60)
    assert not secret_exists(k8s, namespace, secret_name)


def test_managed_roles_lifecycle_logs_in_then_cannot(operator_factory: Callable[..., OperatorProcess],
                                                     cnpg_simulator: Any, k8s: Any, postgres: Any, namespace: str,
                                                     intents: Intents) -> None:
    operator_factory("--all-namespaces", "--role-backend", "managed-roles")
    cluster = make_cluster(intents, namespace)
    role = unique("inline_")
    name = request_name(cluster, role)
    intents.create(ROLE, namespace, name, {"cluster": cluster, "roleName": role, "createdb": True})
    status = intents.wait_ready(ROLE, namespace, name)["status"]
    assert status["backend"] == "ManagedRoles"
    password = read_password(k8s, namespace, status["secretName"])
    assert postgres.can_login(role, password)
    assert (pg_role(postgres, role) or {})["createdb"] is True

    intents.delete(ROLE, namespace, name)
    intents.wait_gone(ROLE, namespace, name)
    assert pg_role(postgres, role) is None
    assert not postgres.can_login(role, password)
    live = client.CustomObjectsApi(k8s).get_namespaced_custom_object("postgresql.cnpg.io", "v1", namespace,
                                                                     "clusters", cluster)
    assert role not in [r["name"] for r in (live["spec"].get("managed") or {}).get("roles") or []]
