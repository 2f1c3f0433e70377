"""The intent kinds in Kubernetes' standard roles (view, edit, admin), on the real API server.

deploy/user-roles aggregates them into the bootstrap roles through kube-controller-manager's
clusterrole-aggregation controller. People and jobs get the usual namespace roles with a RoleBinding and
act through TokenRequest tokens of their own ServiceAccounts here (as a CI job or a GitOps controller
would); nothing is granted to them directly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import KINDS
from devcluster.controlplane import ControlPlane
from tests.integration.test_deploy_rbac import api_as, denied, kubectl, token_kubeconfig

REPO = Path(__file__).resolve().parents[2]
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
INTENT_PLURALS = tuple(kind.plural for kind in KINDS)


def account_with_role(control_plane: ControlPlane, k8s: Any, namespace: str, account: str, role: str,
                      folder: Path, *, role_kind: str = "ClusterRole") -> Path:
    """A ServiceAccount bound to `role` in its own namespace only (RoleBinding); its kubeconfig."""
    client.CoreV1Api(k8s).create_namespaced_service_account(namespace, {"metadata": {"name": account}})
    client.RbacAuthorizationV1Api(k8s).create_namespaced_role_binding(namespace, {
        "metadata": {"name": f"{account}-{role}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]})
    return token_kubeconfig(control_plane, k8s, namespace, account, folder / account)


def role_request(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, **({"annotations": annotations} if annotations else {})}
    return {"apiVersion": constants.API_VERSION, "kind": constants.ROLE_REQUEST_KIND, "metadata": metadata,
            "spec": {"cluster": "main", "roleName": name.replace("-", "_")}}


def create_role_request(api: Any, namespace: str, name: str, **kwargs: Any) -> dict[str, Any]:
    return dict(client.CustomObjectsApi(api).create_namespaced_custom_object(
        constants.GROUP, constants.VERSION, namespace, constants.ROLE_REQUEST_PLURAL, role_request(name),
        **kwargs))


def wait_aggregated(k8s: Any, role: str, verb: str, timeout: float = 30.0) -> None:
    """Until the standard role grants `verb` on every intent kind (the controller copies rules in)."""
    rbac = client.RbacAuthorizationV1Api(k8s)
    deadline = time.monotonic() + timeout
    while True:
        granted = {resource for rule in rbac.read_cluster_role(role).rules or []
                   if constants.GROUP in (rule.api_groups or []) and verb in rule.verbs
                   for resource in rule.resources or []}
        if set(INTENT_PLURALS) <= granted:
            return
        assert time.monotonic() < deadline, f"ClusterRole {role} never got {verb} on the intents: {granted}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def aggregated(k8s: Any) -> None:
    """The local control plane applies deploy/user-roles at start; the controller aggregates them."""
    for role, verb in (("view", "get"), ("edit", "create"), ("admin", "create"), ("edit", "get"),
                       ("admin", "delete")):
        wait_aggregated(k8s, role, verb)


@pytest.fixture
def other_namespace(k8s: Any, namespace: str) -> Iterator[str]:
    core = client.CoreV1Api(k8s)
    name = f"{namespace[:55]}-b"
    core.create_namespace({"metadata": {"name": name, "labels": {"cnpg-mcp.io/test": "true"}}})
    yield name
    core.delete_namespace(name)


def test_standard_roles_aggregate_exactly_the_intent_kinds(aggregated: None, control_plane: ControlPlane) -> None:
    """Our ClusterRoles name only the intents: no status, no CNPG object, no Secret, and every label set."""
    shipped = [o for o in yaml.safe_load_all(kubectl(control_plane, "kustomize", str(REPO / "deploy" / "user-roles")))
               if o]
    assert {o["kind"] for o in shipped} == {"ClusterRole"}
    reaches = {name: {label.removeprefix(AGGREGATE) for label in o["metadata"]["labels"] if label.startswith(AGGREGATE)}
               for o in shipped for name in [o["metadata"]["name"]]}
    assert reaches == {"cnpg-mcp-intents-view": {"view", "edit", "admin"}, "cnpg-mcp-intents-edit": {"edit", "admin"}}
    for role in shipped:
        for rule in role["rules"]:
            assert rule["apiGroups"] == [constants.GROUP]
            assert sorted(rule["resources"]) == sorted(INTENT_PLURALS)  # no "/status", nothing else
            assert "*" not in rule["verbs"] and "impersonate" not in rule["verbs"]


def test_edit_creates_intents_in_its_own_namespace_only(
    aggregated: None, control_plane: ControlPlane, k8s: Any, namespace: str, other_namespace: str, tmp_path: Path
) -> None:
    person = api_as(account_with_role(control_plane, k8s, namespace, "person", "edit", tmp_path))
    custom = client.CustomObjectsApi(person)
    create_role_request(person, namespace, "app-user")
    custom.patch_namespaced_custom_object(constants.GROUP, constants.VERSION, namespace,
                                          constants.ROLE_REQUEST_PLURAL, "app-user", {"spec": {"createdb": True}})
    for plural in INTENT_PLURALS:
        custom.list_namespaced_custom_object(constants.GROUP, constants.VERSION, namespace, plural)
    denied(lambda: create_role_request(person, other_namespace, "app-user"))
    denied(lambda: custom.list_namespaced_custom_object(constants.GROUP, constants.VERSION, other_namespace,
                                                        constants.ROLE_REQUEST_PLURAL))
    # The status is the operator's report: no standard role writes it.
    denied(lambda: custom.patch_namespaced_custom_object_status(
        constants.GROUP, constants.VERSION, namespace, constants.ROLE_REQUEST_PLURAL, "app-user",
        {"status": {"message": "all good"}}))
    custom.delete_namespaced_custom_object(constants.GROUP, constants.VERSION, namespace,
                                           constants.ROLE_REQUEST_PLURAL, "app-user")


def test_view_reads_intents_and_cannot_write_them(
    aggregated: None, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path
) -> None:
    create_role_request(k8s, namespace, "existing")
    reader = api_as(account_with_role(control_plane, k8s, namespace, "reader", "view", tmp_path))
    custom = client.CustomObjectsApi(reader)
    seen = custom.get_namespaced_custom_object(constants.GROUP, constants.VERSION, namespace,
                                               constants.ROLE_REQUEST_PLURAL, "existing")
    assert seen["spec"]["roleName"] == "existing"
    denied(lambda: create_role_request(reader, namespace, "new-one"))
    denied(lambda: custom.patch_namespaced_custom_object(constants.GROUP, constants.VERSION, namespace,
                                                         constants.ROLE_REQUEST_PLURAL, "existing",
                                                         {"spec": {"createdb": True}}))
    denied(lambda: custom.delete_namespaced_custom_object(constants.GROUP, constants.VERSION, namespace,
                                                          constants.ROLE_REQUEST_PLURAL, "existing"))


def cnpg_cluster(name: str) -> dict[str, Any]:
    return {"apiVersion": constants.CNPG_API_VERSION, "kind": "Cluster", "metadata": {"name": name},
            "spec": {"instances": 1, "storage": {"size": "1Gi"}}}


def test_no_standard_role_writes_cnpg_objects_or_secrets_through_us(
    aggregated: None, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path
) -> None:
    """Our roles alone give nothing but intents; with admin (the widest standard role) CNPG and status stay closed."""
    client.CoreV1Api(k8s).create_namespaced_secret(namespace, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    create_role_request(k8s, namespace, "existing")
    for ours in ("cnpg-mcp-intents-edit", "cnpg-mcp-intents-view"):
        api = api_as(account_with_role(control_plane, k8s, namespace, ours, ours, tmp_path))
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        denied(lambda core=core: core.read_namespaced_secret("s", namespace))
        denied(lambda core=core: core.list_namespaced_secret(namespace))
        denied(lambda core=core: core.create_namespaced_secret(namespace, {"metadata": {"name": "t"}}))
        denied(lambda custom=custom: custom.list_namespaced_custom_object(
            constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS))
    admin_api = api_as(account_with_role(control_plane, k8s, namespace, "ns-admin", "admin", tmp_path))
    admin = client.CustomObjectsApi(admin_api)
    create_role_request(admin_api, namespace, "admins-role")
    denied(lambda: admin.create_namespaced_custom_object(constants.CNPG_GROUP, constants.CNPG_VERSION, namespace,
                                                         constants.CNPG_CLUSTERS, cnpg_cluster("direct")))
    for plural in (constants.CNPG_DATABASES, constants.CNPG_DATABASE_ROLES):
        denied(lambda plural=plural: admin.delete_namespaced_custom_object(
            constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, plural, "any"))
    denied(lambda: admin.patch_namespaced_custom_object_status(
        constants.GROUP, constants.VERSION, namespace, constants.ROLE_REQUEST_PLURAL, "existing",
        {"status": {"message": "all good"}}))
