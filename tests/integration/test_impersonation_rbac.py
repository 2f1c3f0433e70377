"""deploy/components/impersonation against the real API server: the gateway's impersonation right cannot
reach system:masters, ServiceAccounts or anything beyond the gateway's own rights (constrained impersonation)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from tests.integration.test_deploy_rbac import NAMESPACE, REPO, api_as, deployed, kubectl, token_kubeconfig

__all__ = ["deployed"]  # the module fixture that applies deploy/


@pytest.fixture
def impersonating_gateway(deployed: str, control_plane: ControlPlane, k8s: Any, tmp_path: Path) -> Any:
    """An API client authenticated as the gateway ServiceAccount, with the impersonation component applied."""
    kubectl(control_plane, "apply", "--server-side", "-k", str(REPO / "deploy" / "overlays" / "impersonating-gateway"))
    return api_as(token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-gateway", tmp_path / "gw"))


def as_(user: str, *groups: str) -> dict[str, Any]:
    headers: dict[str, Any] = {"Impersonate-User": user}
    if groups:
        headers["Impersonate-Group"] = groups[0]  # one group is enough here
    return {"_headers": headers}


def denied(call: Callable[[], Any]) -> str:
    with pytest.raises(ApiException) as excinfo:
        call()
    assert excinfo.value.status == 403, excinfo.value
    return str(excinfo.value.body)


def test_the_gateway_cannot_impersonate_built_in_identities(impersonating_gateway: Any, namespace: str) -> None:
    custom = client.CustomObjectsApi(impersonating_gateway)

    def list_requests(**headers: Any) -> Any:
        return custom.list_namespaced_custom_object(constants.GROUP, constants.VERSION, namespace,
                                                    constants.CLUSTER_REQUEST_PLURAL, **headers)

    assert "system:masters" in denied(lambda: list_requests(**as_("token:mallory", "system:masters")))
    denied(lambda: list_requests(**as_("system:serviceaccount:kube-system:default")))
    denied(lambda: list_requests(**as_("system:serviceaccount:cnpg-mcp:cnpg-mcp-operator")))


def test_impersonation_never_exceeds_the_gateways_own_rights(
    impersonating_gateway: Any, k8s: Any, namespace: str
) -> None:
    """Even a user who may do everything in the namespace gets, through the gateway, only the gateway's rights."""
    client.RbacAuthorizationV1Api(k8s).create_namespaced_role_binding(namespace, {
        "metadata": {"name": "root-is-admin"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "token:root"}]})
    client.CoreV1Api(k8s).create_namespaced_secret(namespace, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    core, custom = client.CoreV1Api(impersonating_gateway), client.CustomObjectsApi(impersonating_gateway)
    denied(lambda: core.read_namespaced_secret("s", namespace, **as_("token:root")))
    denied(lambda: custom.create_namespaced_custom_object(
        constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS,
        {"apiVersion": constants.CNPG_API_VERSION, "kind": "Cluster", "metadata": {"name": "direct"},
         "spec": {"instances": 1, "storage": {"size": "1Gi"}}}, **as_("token:root")))
    # ... while what the gateway itself may do works as the user.
    custom.create_namespaced_custom_object(
        constants.GROUP, constants.VERSION, namespace, constants.ROLE_REQUEST_PLURAL,
        {"apiVersion": constants.API_VERSION, "kind": "PgRoleRequest", "metadata": {"name": "c-r"},
         "spec": {"cluster": "c", "roleName": "r"}}, dry_run="All", **as_("token:root"))
    custom.list_namespaced_custom_object(constants.CNPG_GROUP, constants.CNPG_VERSION, namespace,
                                         constants.CNPG_CLUSTERS, **as_("token:root"))
