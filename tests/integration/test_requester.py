"""Who asked, decided by the API server (deploy/admission), on the real control plane.

A MutatingAdmissionPolicy stamps `cnpg-mcp.io/requester` and `cnpg-mcp.io/requester-groups` from the
request's user on every new intent, whatever the client sent; a ValidatingAdmissionPolicy keeps them
(and the gateway's `cnpg-mcp.io/requested-by`) from ever changing, and keeps intent status the operator's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_deploy_rbac import NAMESPACE, api_as, deployed, kubectl, token_kubeconfig
from tests.integration.test_standard_rbac import account_with_role, role_request

__all__ = ["deployed"]  # fixture shared with test_deploy_rbac
GROUP, VERSION, ROLES = constants.GROUP, constants.VERSION, constants.ROLE_REQUEST_PLURAL


def refused(call: Any, *words: str) -> str:
    """The call is refused by admission (403) with a message naming each of `words`."""
    with pytest.raises(ApiException) as excinfo:
        call()
    assert excinfo.value.status == 403, excinfo.value
    body = str(excinfo.value.body)
    for word in words:
        assert word in body, body
    return body


def table_column(table: str, name: str) -> list[str]:
    """One column of kubectl's table output (cut at the header's positions: empty cells have no text)."""
    header, *rows = table.splitlines()
    start = header.index(name)
    # The next column starts where a header word follows a space.
    end = next((i for i in range(start + len(name), len(header)) if header[i] != " " and header[i - 1] == " "),
               None)
    return [row[start:end].strip() for row in rows]


def annotate(api: Any, namespace: str, name: str, annotations: dict[str, str | None]) -> dict[str, Any]:
    return dict(client.CustomObjectsApi(api).patch_namespaced_custom_object(
        GROUP, VERSION, namespace, ROLES, name, {"metadata": {"annotations": annotations}}))


def service_account_groups(namespace: str) -> set[str]:
    return {"system:serviceaccounts", f"system:serviceaccounts:{namespace}", "system:authenticated"}


def test_requester_is_the_api_servers_view_not_the_clients(
    control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path
) -> None:
    deployer = api_as(account_with_role(control_plane, k8s, namespace, "deployer", "edit", tmp_path))
    forged = {constants.REQUESTER_ANNOTATION: "ceo", constants.REQUESTER_GROUPS_ANNOTATION: "system:masters",
              "team": "payments"}
    created = client.CustomObjectsApi(deployer).create_namespaced_custom_object(
        GROUP, VERSION, namespace, ROLES, role_request("app-user", forged))
    annotations = created["metadata"]["annotations"]
    assert annotations[constants.REQUESTER_ANNOTATION] == f"system:serviceaccount:{namespace}:deployer"
    assert set(annotations[constants.REQUESTER_GROUPS_ANNOTATION].split(",")) == service_account_groups(namespace)
    assert annotations["team"] == "payments"  # other annotations are the client's, untouched
    # `kubectl get` shows who asked.
    table = kubectl(control_plane, "get", "pgrr", "app-user", "-n", namespace)
    assert table_column(table, "REQUESTER") == [f"system:serviceaccount:{namespace}:deployer"]


def test_who_asked_can_never_be_changed(control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path,
                                        intents: Intents) -> None:
    """Not by the requester, not by a cluster admin: changed, removed or added, always refused."""
    intents.create(constants.ROLE_REQUEST_KIND, namespace, "app-user", {"cluster": "main", "roleName": "app_user"},
                   annotations={constants.REQUESTED_BY_ANNOTATION: "token:alice"})
    deployer = api_as(account_with_role(control_plane, k8s, namespace, "deployer", "edit", tmp_path))
    for who in (deployer, k8s):
        for key in (constants.REQUESTER_ANNOTATION, constants.REQUESTER_GROUPS_ANNOTATION,
                    constants.REQUESTED_BY_ANNOTATION):
            refused(lambda who=who, key=key: annotate(who, namespace, "app-user", {key: "mallory"}),
                    "cannot be changed or removed")
            refused(lambda who=who, key=key: annotate(who, namespace, "app-user", {key: None}),
                    "cannot be changed or removed")
    kept = intents.get(constants.ROLE_REQUEST_KIND, namespace, "app-user")
    assert kept is not None
    assert kept["metadata"]["annotations"][constants.REQUESTER_ANNOTATION] == "admin"
    assert kept["metadata"]["annotations"][constants.REQUESTED_BY_ANNOTATION] == "token:alice"
    # Everything else stays editable: the spec, and other annotations.
    annotate(deployer, namespace, "app-user", {"team": "payments"})
    intents.patch_spec(constants.ROLE_REQUEST_KIND, namespace, "app-user", {"createdb": True})


def test_intent_status_is_written_by_the_operator_only(
    deployed: str, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path, intents: Intents
) -> None:
    """Even an identity whose RBAC allows everything on the intents (status included) cannot write a status."""
    intents.create(constants.ROLE_REQUEST_KIND, namespace, "app-user", {"cluster": "main", "roleName": "app_user"})
    client.RbacAuthorizationV1Api(k8s).create_namespaced_role(namespace, {
        "metadata": {"name": "intents-everything"},
        "rules": [{"apiGroups": [GROUP], "resources": ["*"], "verbs": ["*"]}]})
    wide = api_as(account_with_role(control_plane, k8s, namespace, "wide", "intents-everything", tmp_path,
                                    role_kind="Role"))
    status = {"status": {"message": "all good"}}
    refused(lambda: client.CustomObjectsApi(wide).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, ROLES, "app-user", status),
        "written by the cnpg-mcp operator only", f"system:serviceaccount:{namespace}:wide")
    operator = api_as(token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-operator", tmp_path / "op"))
    client.CustomObjectsApi(operator).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, ROLES, "app-user", status, dry_run="All")


def test_the_first_event_names_who_asked(
    control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path, operator: OperatorProcess,
    intents: Intents,
) -> None:
    deployer = api_as(account_with_role(control_plane, k8s, namespace, "deployer", "edit", tmp_path))
    client.CustomObjectsApi(deployer).create_namespaced_custom_object(
        GROUP, VERSION, namespace, constants.CLUSTER_REQUEST_PLURAL,
        {"apiVersion": constants.API_VERSION, "kind": constants.CLUSTER_REQUEST_KIND, "metadata": {"name": "ev-db"},
         "spec": {"instances": 1}})
    intents.wait_ready(constants.CLUSTER_REQUEST_KIND, namespace, "ev-db")
    messages = [e.message for e in intents.events_for(namespace, "ev-db")]
    assert any(m.endswith(f"(requested by system:serviceaccount:{namespace}:deployer)") for m in messages), messages
