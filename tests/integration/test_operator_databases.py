"""PgDatabaseRequest end to end: a CNPG Database owned by the request, mirrored status, real database."""

from __future__ import annotations

from typing import Any

import psycopg
from kubernetes import client

from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_operator_roles import ROLE, make_cluster, request_name, unique, wait_until

DB = "PgDatabaseRequest"


def pg_database(postgres: Any, name: str) -> str | None:
    """The owner of the database, or None when it does not exist."""
    with psycopg.connect(postgres.superuser_dsn()) as conn:
        row = conn.execute("SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s",
                           (name,)).fetchone()
    return None if row is None else str(row[0])


def pg_schema_owner(postgres: Any, database: str, schema: str) -> str | None:
    with psycopg.connect(postgres.superuser_dsn(database)) as conn:
        row = conn.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s",
                           (schema,)).fetchone()
    return None if row is None else str(row[0])


def _owner_role(intents: Intents, namespace: str, cluster: str) -> str:
    owner = unique("dbo_")
    intents.create(ROLE, namespace, request_name(cluster, owner), {"cluster": cluster, "roleName": owner})
    intents.wait_ready(ROLE, namespace, request_name(cluster, owner))
    return owner


def test_database_lifecycle(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any, postgres: Any,
                            namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    owner = _owner_role(intents, namespace, cluster)
    database = unique("shop_")
    name = request_name(cluster, database)
    intents.create(DB, namespace, name, {"cluster": cluster, "name": database, "owner": owner,
                                         "databaseReclaimPolicy": "delete"})
    ready = intents.wait_ready(DB, namespace, name)
    assert ready["status"]["database"] == name
    assert ready["status"]["applied"] is True
    assert pg_database(postgres, database) == owner
    cnpg = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        "postgresql.cnpg.io", "v1", namespace, "databases", name)
    assert cnpg["metadata"]["ownerReferences"][0]["uid"] == ready["metadata"]["uid"]

    schema = {"name": "sales", "owner": owner, "ensure": "present"}
    intents.patch_spec(DB, namespace, name, {"schemas": [schema]})
    intents.wait_ready(DB, namespace, name)
    wait_until(lambda: pg_schema_owner(postgres, database, "sales") == owner, "schema sales exists")

    intents.delete(DB, namespace, name)
    intents.wait_gone(DB, namespace, name)
    assert pg_database(postgres, database) is None


def test_retained_database_survives_its_request(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
                                                postgres: Any, namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    owner = _owner_role(intents, namespace, cluster)
    database = unique("keep_")
    name = request_name(cluster, database)
    intents.create(DB, namespace, name, {"cluster": cluster, "name": database, "owner": owner})
    intents.wait_ready(DB, namespace, name)
    intents.delete(DB, namespace, name)
    intents.wait_gone(DB, namespace, name)
    assert pg_database(postgres, database) == owner
    with psycopg.connect(postgres.superuser_dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE "{database}"')


def test_database_status_mirrors_a_cnpg_failure(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
                                                postgres: Any, namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    database = unique("orphan_")
    name = request_name(cluster, database)
    intents.create(DB, namespace, name, {"cluster": cluster, "name": database, "owner": unique("nobody_")})
    blocked = intents.wait_reason(DB, namespace, name, "Blocked")
    assert blocked["status"]["applied"] is False
    assert "does not exist" in blocked["status"]["message"]
    assert pg_database(postgres, database) is None
