"""Continuity: the operator killed mid-batch and restarted; a converged state re-reconciled writes nothing."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client

from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_operator_roles import (
    ROLE,
    make_cluster,
    read_password,
    request_name,
    unique,
    wait_until,
)

SETTLE_S = 6.0  # after the restart: resume handlers and watch events for every object have run


def _our_secrets(k8s: Any, namespace: str) -> list[Any]:
    listing = client.CoreV1Api(k8s).list_namespaced_secret(
        namespace, label_selector="app.kubernetes.io/managed-by=cnpg-mcp")
    return list(listing.items)


def _database_roles(k8s: Any, namespace: str) -> list[dict[str, Any]]:
    listing = client.CustomObjectsApi(k8s).list_namespaced_custom_object(
        "postgresql.cnpg.io", "v1", namespace, "databaseroles")
    return list(listing.get("items") or [])


def test_kill_in_the_middle_of_a_batch(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
                                       postgres: Any, namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    roles = [unique(f"k{i:02d}_") for i in range(30)]
    names = [request_name(cluster, role) for role in roles]

    def create(pair: tuple[str, str]) -> None:
        intents.create(ROLE, namespace, pair[1], {"cluster": cluster, "roleName": pair[0]})

    with ThreadPoolExecutor(max_workers=15) as pool:
        list(pool.map(create, zip(roles, names, strict=True)))
    wait_until(lambda: len(_our_secrets(k8s, namespace)) >= 5, "the operator is busy with the batch")
    operator.kill()

    passwords_before = {s.metadata.name: s.data["password"] for s in _our_secrets(k8s, namespace)}
    assert len(passwords_before) > 0, "nothing was produced before the kill"
    operator.start()

    for name in names:
        intents.wait_ready(ROLE, namespace, name, timeout=120)
    secrets_after = _our_secrets(k8s, namespace)
    uids = {r["metadata"]["uid"] for r in intents.list_all(ROLE, namespace)}
    assert len(secrets_after) == len(roles), "duplicate or missing Secrets"
    assert all(s.metadata.owner_references and s.metadata.owner_references[0].uid in uids
               for s in secrets_after), "orphan Secret"
    for secret in secrets_after:
        if secret.metadata.name in passwords_before:
            assert secret.data["password"] == passwords_before[secret.metadata.name], "a password changed"
    assert len(_database_roles(k8s, namespace)) == len(roles)
    for role, name in list(zip(roles, names, strict=True))[:5]:
        secret_name = intents.get(ROLE, namespace, name)["status"]["secretName"]  # type: ignore[index]
        assert postgres.can_login(role, read_password(k8s, namespace, secret_name))


def _versions(k8s: Any, intents: Intents, namespace: str, cluster: str) -> dict[str, str]:
    versions: dict[str, str] = {}
    for kind in ("PgClusterRequest", "PgRoleRequest", "PgDatabaseRequest"):
        for obj in intents.list_all(kind, namespace):
            versions[f"{kind}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
    for secret in _our_secrets(k8s, namespace):
        versions[f"Secret/{secret.metadata.name}"] = secret.metadata.resource_version
    for role in _database_roles(k8s, namespace):
        versions[f"DatabaseRole/{role['metadata']['name']}"] = role["metadata"]["resourceVersion"]
    custom = client.CustomObjectsApi(k8s)
    for plural in ("databases", "clusters"):
        listing = custom.list_namespaced_custom_object("postgresql.cnpg.io", "v1", namespace, plural)
        for obj in listing["items"]:
            versions[f"{plural}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
    return versions


def test_converged_state_survives_a_restart_without_a_write(
        operator: OperatorProcess, cnpg_simulator: Any, k8s: Any, postgres: Any, namespace: str,
        intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    names = []
    for i in range(5):
        role = unique(f"calm{i}_")
        names.append(request_name(cluster, role))
        intents.create(ROLE, namespace, names[-1], {"cluster": cluster, "roleName": role})
    owner = unique("dbowner_")
    intents.create(ROLE, namespace, request_name(cluster, owner), {"cluster": cluster, "roleName": owner})
    intents.wait_ready(ROLE, namespace, request_name(cluster, owner))
    database = unique("calmdb_")
    intents.create("PgDatabaseRequest", namespace, request_name(cluster, database),
                   {"cluster": cluster, "name": database, "owner": owner})
    for name in names:
        intents.wait_ready(ROLE, namespace, name)
    intents.wait_ready("PgDatabaseRequest", namespace, request_name(cluster, database))
    time.sleep(2.0)  # let trailing CNPG status updates land
    before = _versions(k8s, intents, namespace, cluster)

    operator.stop()
    operator.start()
    time.sleep(SETTLE_S)

    # Kopf's diff base lives in the operator's memory (cnpg_mcp_operator/diffbase.py): after a restart
    # Kopf handles each existing intent as created (the same reconcile resume ran), so that is its line.
    assert "Creation is processed" in operator.log_since_start(), "the restarted operator did not resume"
    assert _versions(k8s, intents, namespace, cluster) == before
