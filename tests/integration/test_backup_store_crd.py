"""The Barman Cloud plugin's ObjectStore CRD is served by the local control plane, with its own rules."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cnpg_mcp_api import constants


def test_object_store_crd_is_established(k8s: Any) -> None:
    crd = client.ApiextensionsV1Api(k8s).read_custom_resource_definition(
        f"{constants.BARMAN_OBJECT_STORES}.{constants.BARMAN_GROUP}")
    conditions = {c.type: c.status for c in crd.status.conditions}
    assert conditions["Established"] == "True"
    assert crd.spec.names.kind == "ObjectStore"
    assert constants.BARMAN_VERSION in [v.name for v in crd.spec.versions if v.served]


def test_object_store_crd_forbids_server_name_in_the_store(k8s: Any, namespace: str) -> None:
    """The plugin's own CEL rule: serverName belongs to the Cluster's plugin parameters."""
    custom = client.CustomObjectsApi(k8s)
    configuration: dict[str, Any] = {"destinationPath": "s3://bucket/x", "serverName": "pg"}
    body = {"apiVersion": constants.BARMAN_API_VERSION, "kind": "ObjectStore",
            "metadata": {"name": "store"}, "spec": {"configuration": configuration}}
    with pytest.raises(ApiException) as excinfo:
        custom.create_namespaced_custom_object(
            constants.BARMAN_GROUP, constants.BARMAN_VERSION, namespace, constants.BARMAN_OBJECT_STORES, body)
    assert excinfo.value.status == 422
    assert "serverName" in str(excinfo.value.body)
    del configuration["serverName"]
    custom.create_namespaced_custom_object(
        constants.BARMAN_GROUP, constants.BARMAN_VERSION, namespace, constants.BARMAN_OBJECT_STORES, body)
