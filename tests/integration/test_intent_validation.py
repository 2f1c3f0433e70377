"""The API server itself refuses invalid intents (CRD schema + CEL), with a message that says why."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import KINDS

PLURAL = {kind.kind: kind.plural for kind in KINDS}


def create(k8s: Any, namespace: str, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": constants.API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
    created: dict[str, Any] = client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        constants.GROUP, constants.VERSION, namespace, PLURAL[kind], body)
    return created


def refused(k8s: Any, namespace: str, kind: str, name: str, spec: dict[str, Any]) -> str:
    with pytest.raises(ApiException) as excinfo:
        create(k8s, namespace, kind, name, spec)
    assert excinfo.value.status == 422, excinfo.value.body
    return str(excinfo.value.body)


ROLE = {"cluster": "main-db", "roleName": "app_user"}


@pytest.mark.parametrize(("kind", "name", "spec", "expected"), [
    ("PgClusterRequest", "c", {"instances": 11}, "should be less than or equal to 10"),
    ("PgClusterRequest", "c", {"instances": 0}, "should be greater than or equal to 1"),
    ("PgClusterRequest", "c", {"postgresVersion": "16", "imageName": "x/y:1"},
     "set either postgresVersion or imageName, not both"),
    ("PgClusterRequest", "c", {"storage": {"size": "lots"}}, "spec.storage.size"),
    ("PgClusterRequest", "c", {"deletionPolicy": "Shred"}, "supported values"),
    ("PgRoleRequest", "r", {"cluster": "main-db", "roleName": "App User"}, "spec.roleName"),
    ("PgRoleRequest", "r", {"cluster": "main-db", "roleName": "x" * 64}, "spec.roleName"),
    ("PgRoleRequest", "r", {"cluster": "main-db", "roleName": "PG_evil"}, "roleName is reserved"),
    ("PgRoleRequest", "r", {**ROLE, "createrole": True}, "need privileged: true"),
    ("PgRoleRequest", "r", {"cluster": "main-db", "roleName": "postgres"}, "roleName is reserved"),
    ("PgRoleRequest", "r", {"cluster": "main-db", "roleName": "pg_evil"}, "roleName is reserved"),
    ("PgRoleRequest", "r", {**ROLE, "superuser": True}, "need privileged: true"),
    ("PgRoleRequest", "r", {**ROLE, "inRoles": ["pg_read_server_files"]}, "needs privileged: true"),
    ("PgRoleRequest", "r", {"roleName": "app_user"}, "spec.cluster: Required value"),
    ("PgDatabaseRequest", "d", {"cluster": "main-db", "name": "template1", "owner": "app"}, "name is reserved"),
    ("PgDatabaseRequest", "d", {"cluster": "main-db", "name": "app data", "owner": "app"}, "spec.name"),
])
def test_invalid_intents_are_refused_by_the_api_server(
    k8s: Any, namespace: str, kind: str, name: str, spec: dict[str, Any], expected: str
) -> None:
    assert expected in refused(k8s, namespace, kind, name, spec)


def test_cluster_request_name_must_be_a_valid_cluster_name(k8s: Any, namespace: str) -> None:
    assert "metadata.name becomes the Cluster name" in refused(
        k8s, namespace, "PgClusterRequest", "x" * 51, {})


def test_valid_intents_are_accepted_with_defaults(k8s: Any, namespace: str) -> None:
    role = create(k8s, namespace, "PgRoleRequest", "main-db-app-user", dict(ROLE))
    assert role["spec"]["login"] is True and role["spec"]["reclaimPolicy"] == "delete"
    privileged = create(k8s, namespace, "PgRoleRequest", "main-db-admin",
                        {"cluster": "main-db", "roleName": "admin", "superuser": True, "privileged": True})
    assert privileged["spec"]["superuser"] is True
    cluster = create(k8s, namespace, "PgClusterRequest", "main-db", {"instances": 1})
    assert cluster["spec"]["deletionPolicy"] == "Retain"


def test_identity_fields_are_immutable(k8s: Any, namespace: str) -> None:
    create(k8s, namespace, "PgRoleRequest", "main-db-app-user", dict(ROLE))
    custom = client.CustomObjectsApi(k8s)
    for field, value, message in (("cluster", "other-db", "spec.cluster is immutable"),
                                  ("roleName", "someone_else", "spec.roleName is immutable")):
        with pytest.raises(ApiException) as excinfo:
            custom.patch_namespaced_custom_object(constants.GROUP, constants.VERSION, namespace,
                                                  constants.ROLE_REQUEST_PLURAL, "main-db-app-user",
                                                  {"spec": {field: value}})
        assert excinfo.value.status == 422
        assert message in str(excinfo.value.body)
