"""Trust in what a role or database request owns and releases (issue #8, items 1, 5 and 6).

- A request owns only what it produced (by UID): deleting a refused duplicate drops nothing.
- A deletion blocked in PostgreSQL can be released by switching the request to retain.
- A deleted role Secret is noticed and reported, and a rotation issues a working one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from kubernetes import client

from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_operator_databases import pg_database
from tests.integration.test_operator_roles import (
    ROLE,
    make_cluster,
    read_password,
    request_name,
    secret_exists,
    unique,
    wait_until,
)

DB = "PgDatabaseRequest"
BACKENDS = ["databaserole", "managed-roles"]


def role_oid(postgres: Any, role: str) -> int | None:
    with psycopg.connect(postgres.superuser_dsn()) as conn:
        row = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    return None if row is None else int(row[0])


def superuser_sql(postgres: Any, *statements: str) -> None:
    with psycopg.connect(postgres.superuser_dsn(), autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.mark.parametrize("backend", BACKENDS)
def test_deleting_a_refused_duplicate_keeps_the_other_requests_role(
        operator_factory: Callable[..., OperatorProcess], backend: str, cnpg_simulator: Any, k8s: Any,
        postgres: Any, namespace: str, intents: Intents) -> None:
    operator_factory("--all-namespaces", "--role-backend", backend)
    cluster = make_cluster(intents, namespace)
    role = unique("shared_")
    intents.create(ROLE, namespace, "first", {"cluster": cluster, "roleName": role})
    secret_name = intents.wait_ready(ROLE, namespace, "first")["status"]["secretName"]
    password = read_password(k8s, namespace, secret_name)
    assert postgres.can_login(role, password)
    oid = role_oid(postgres, role)

    intents.create(ROLE, namespace, "second", {"cluster": cluster, "roleName": role})
    intents.wait_reason(ROLE, namespace, "second", "Conflict")
    intents.delete(ROLE, namespace, "second")
    intents.wait_gone(ROLE, namespace, "second")

    time.sleep(2)  # CNPG would act on a wrongly written `ensure: absent` within this time
    assert role_oid(postgres, role) == oid, "the role of `first` was dropped (and re-created)"
    assert postgres.can_login(role, password)
    assert read_password(k8s, namespace, secret_name) == password
    first = intents.wait_ready(ROLE, namespace, "first")
    assert first["status"]["secretName"] == secret_name
    if backend == "managed-roles":
        live = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
            "postgresql.cnpg.io", "v1", namespace, "clusters", cluster)
        entry = next(r for r in live["spec"]["managed"]["roles"] if r["name"] == role)
        assert entry["ensure"] == "present"

    # the owner's own deletion still drops the role and its Secret; a waiting duplicate then takes over
    intents.create(ROLE, namespace, "third", {"cluster": cluster, "roleName": role})
    intents.wait_reason(ROLE, namespace, "third", "Conflict")
    intents.delete(ROLE, namespace, "first")
    intents.wait_gone(ROLE, namespace, "first")
    assert not postgres.can_login(role, password)
    third = intents.wait_ready(ROLE, namespace, "third")
    assert third["status"]["secretName"] == secret_name
    assert postgres.can_login(role, read_password(k8s, namespace, secret_name))
    assert role_oid(postgres, role) != oid


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_blocked_role_deletion_is_released_by_switching_to_retain(
        operator_factory: Callable[..., OperatorProcess], backend: str, cnpg_simulator: Any, k8s: Any,
        postgres: Any, namespace: str, intents: Intents) -> None:
    operator_factory("--all-namespaces", "--role-backend", backend)
    cluster = make_cluster(intents, namespace)
    role = unique("stuck_")
    name = request_name(cluster, role)
    intents.create(ROLE, namespace, name, {"cluster": cluster, "roleName": role})
    secret_name = intents.wait_ready(ROLE, namespace, name)["status"]["secretName"]
    table = f"t_{role}"
    superuser_sql(postgres, f'CREATE TABLE "{table}" (id int)', f'ALTER TABLE "{table}" OWNER TO "{role}"')

    intents.delete(ROLE, namespace, name)
    blocked = intents.wait_reason(ROLE, namespace, name, "Blocked")
    assert "depend" in blocked["status"]["message"], blocked["status"]["message"]
    assert (intents.ready(blocked) or {})["status"] == "False"

    intents.patch_spec(ROLE, namespace, name, {"reclaimPolicy": "retain"})  # the way out
    intents.wait_gone(ROLE, namespace, name, timeout=60)
    assert role_oid(postgres, role) is not None, "a released role stays in PostgreSQL"
    assert not secret_exists(k8s, namespace, secret_name)
    superuser_sql(postgres, f'DROP TABLE "{table}"', f'DROP ROLE "{role}"')


def test_a_blocked_database_deletion_is_released_by_switching_to_retain(
        operator: OperatorProcess, cnpg_simulator: Any, k8s: Any, postgres: Any, namespace: str,
        intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    owner = unique("dbo_")
    intents.create(ROLE, namespace, request_name(cluster, owner), {"cluster": cluster, "roleName": owner})
    intents.wait_ready(ROLE, namespace, request_name(cluster, owner))
    database = unique("pinned_")
    name = request_name(cluster, database)
    intents.create(DB, namespace, name, {"cluster": cluster, "name": database, "owner": owner,
                                         "databaseReclaimPolicy": "delete"})
    intents.wait_ready(DB, namespace, name)
    superuser_sql(postgres, f'ALTER DATABASE "{database}" IS_TEMPLATE true')  # DROP DATABASE now fails

    intents.delete(DB, namespace, name)
    blocked = intents.wait_reason(DB, namespace, name, "Blocked")
    assert "template" in blocked["status"]["message"], blocked["status"]["message"]

    intents.patch_spec(DB, namespace, name, {"databaseReclaimPolicy": "retain"})
    intents.wait_gone(DB, namespace, name, timeout=60)
    assert pg_database(postgres, database) == owner, "a released database stays in PostgreSQL"
    superuser_sql(postgres, f'ALTER DATABASE "{database}" IS_TEMPLATE false', f'DROP DATABASE "{database}"')


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_deleted_role_secret_is_reported_and_a_rotation_issues_a_new_one(
        operator_factory: Callable[..., OperatorProcess], backend: str, cnpg_simulator: Any, k8s: Any,
        postgres: Any, namespace: str, intents: Intents) -> None:
    operator_factory("--all-namespaces", "--role-backend", backend)
    cluster = make_cluster(intents, namespace)
    role = unique("lost_")
    name = request_name(cluster, role)
    intents.create(ROLE, namespace, name, {"cluster": cluster, "roleName": role})
    secret_name = intents.wait_ready(ROLE, namespace, name)["status"]["secretName"]
    old_password = read_password(k8s, namespace, secret_name)

    client.CoreV1Api(k8s).delete_namespaced_secret(secret_name, namespace)
    missing = intents.wait_reason(ROLE, namespace, name, "SecretMissing")
    message = missing["status"]["message"]
    assert secret_name in message and "spec.password.rotation" in message, message
    assert (intents.ready(missing) or {})["status"] == "False"
    assert any(e.reason == "SecretMissing" and e.type == "Warning" for e in intents.events_for(namespace, name))
    time.sleep(2)
    assert not secret_exists(k8s, namespace, secret_name), "no password is invented behind the user's back"
    assert postgres.can_login(role, old_password), "the role itself is untouched"
    assert intents.ready(intents.get(ROLE, namespace, name))["reason"] == "SecretMissing"  # type: ignore[index]

    intents.patch_spec(ROLE, namespace, name, {"password": {"rotation": "after-secret-loss"}})
    intents.wait_ready(ROLE, namespace, name)
    new_password = read_password(k8s, namespace, secret_name)
    assert new_password != old_password
    wait_until(lambda: postgres.can_login(role, new_password), "the role logs in with the new Secret")
    assert not postgres.can_login(role, old_password)


def test_a_secret_deleted_while_the_operator_is_down_is_reported_after_restart(
        operator_factory: Callable[..., OperatorProcess], cnpg_simulator: Any, k8s: Any, postgres: Any,
        namespace: str, intents: Intents) -> None:
    extra = operator_factory("--all-namespaces")
    cluster = make_cluster(intents, namespace)
    role = unique("down_")
    name = request_name(cluster, role)
    intents.create(ROLE, namespace, name, {"cluster": cluster, "roleName": role})
    secret_name = intents.wait_ready(ROLE, namespace, name)["status"]["secretName"]
    old_password = read_password(k8s, namespace, secret_name)

    extra.kill()  # no watch is running while the Secret goes away
    client.CoreV1Api(k8s).delete_namespaced_secret(secret_name, namespace)
    extra.start()
    intents.wait_reason(ROLE, namespace, name, "SecretMissing")
    assert not secret_exists(k8s, namespace, secret_name)
    assert postgres.can_login(role, old_password)
