"""PgClusterRequest end to end: the Cluster is created, scaled without clobbering, retained or deleted."""

from __future__ import annotations

import copy
from typing import Any

from kubernetes import client

from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_operator_roles import CLUSTER, unique, wait_until

CNPG = ("postgresql.cnpg.io", "v1")


def get_cluster(k8s: Any, namespace: str, name: str) -> dict[str, Any] | None:
    custom = client.CustomObjectsApi(k8s)
    items = custom.list_namespaced_custom_object(*CNPG, namespace, "clusters")["items"]
    return next((dict(c) for c in items if c["metadata"]["name"] == name), None)


def test_cluster_lifecycle_scales_without_clobbering(operator: OperatorProcess, cnpg_simulator: Any,
                                                     k8s: Any, namespace: str, intents: Intents) -> None:
    name = unique("pg")
    intents.create(CLUSTER, namespace, name, {"instances": 1, "parameters": {"max_connections": "50"}})
    ready = intents.wait_ready(CLUSTER, namespace, name)
    assert ready["status"]["phase"] == "Cluster in healthy state"
    assert ready["status"]["readyInstances"] == 1
    assert ready["status"]["cluster"] == name
    cluster = get_cluster(k8s, namespace, name)
    assert cluster is not None
    assert cluster["metadata"]["labels"]["cnpg-mcp.io/request"] == name
    assert not cluster["metadata"].get("ownerReferences"), "GC must never delete the database"
    assert cluster["spec"]["postgresql"]["parameters"]["max_connections"] == "50"

    # someone else owns other fields: they must survive our reconciliation
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        *CNPG, namespace, "clusters", name,
        {"metadata": {"annotations": {"example.com/owner": "dba"}},
         "spec": {"description": "edited by hand", "postgresql": {"parameters": {"work_mem": "8MB"}}}})
    before = get_cluster(k8s, namespace, name)
    assert before is not None

    intents.patch_spec(CLUSTER, namespace, name, {"instances": 3})
    scaled = intents.wait_ready(CLUSTER, namespace, name)
    assert scaled["status"]["readyInstances"] == 3
    assert scaled["status"]["instances"] == 3
    after = get_cluster(k8s, namespace, name)
    assert after is not None
    assert after["spec"]["instances"] == 3
    expected = copy.deepcopy(before["spec"])
    expected["instances"] = 3
    assert after["spec"] == expected, "fields other than instances changed"
    assert after["metadata"]["annotations"]["example.com/owner"] == "dba"

    # default deletionPolicy Retain: the Cluster stays, released from our management
    intents.delete(CLUSTER, namespace, name)
    intents.wait_gone(CLUSTER, namespace, name)
    kept = get_cluster(k8s, namespace, name)
    assert kept is not None
    assert "cnpg-mcp.io/request" not in (kept["metadata"].get("labels") or {})
    assert kept["spec"]["instances"] == 3


def test_delete_policy_deletes_the_cluster(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
                                           namespace: str, intents: Intents) -> None:
    name = unique("pg")
    intents.create(CLUSTER, namespace, name, {"instances": 1, "deletionPolicy": "Delete"})
    intents.wait_ready(CLUSTER, namespace, name)
    intents.delete(CLUSTER, namespace, name)
    intents.wait_gone(CLUSTER, namespace, name)
    wait_until(lambda: get_cluster(k8s, namespace, name) is None, "the Cluster is deleted")


def test_existing_cluster_conflicts_until_adopted(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
                                                  namespace: str, intents: Intents) -> None:
    name = unique("pg")
    original = client.CustomObjectsApi(k8s).create_namespaced_custom_object(*CNPG, namespace, "clusters", {
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "metadata": {"name": name},
        "spec": {"instances": 1, "storage": {"size": "1Gi"}, "description": "pre-existing"}})
    intents.create(CLUSTER, namespace, name, {"instances": 2})
    conflict = intents.wait_reason(CLUSTER, namespace, name, "Conflict")
    assert "adoptExisting" in conflict["status"]["message"]
    assert (get_cluster(k8s, namespace, name) or {})["spec"]["instances"] == 1

    intents.patch_spec(CLUSTER, namespace, name, {"adoptExisting": True})
    adopted = intents.wait_ready(CLUSTER, namespace, name)
    assert adopted["status"]["readyInstances"] == 2
    cluster = get_cluster(k8s, namespace, name)
    assert cluster is not None
    assert cluster["metadata"]["labels"]["cnpg-mcp.io/request"] == name
    assert cluster["spec"]["description"] == "pre-existing"
    assert cluster["metadata"]["uid"] == original["metadata"]["uid"], "adoption must never recreate"
