"""Which gateway acted, decided by the API server, on the real control plane.

Behind the impersonating gateway admission sees the human; the gateway names itself in the impersonated
user extra `cnpg-mcp.io/via`, which its RBAC allows for its own username only, and admission stamps it as
`cnpg-mcp.io/requested-via`. Nobody else can send that extra (RBAC) or write the annotation (admission).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

from kubernetes import client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane, free_port
from mcp_gateway.config import GatewayConfig
from mcp_gateway.k8s import VIA_HEADER
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import ok
from tests.integration.test_deploy_rbac import NAMESPACE, REPO, api_as, deployed, kubectl, token_kubeconfig
from tests.integration.test_impersonation_rbac import denied
from tests.integration.test_requester import annotate, refused
from tests.integration.test_standard_rbac import account_with_role, role_request

__all__ = ["deployed"]  # fixture shared with test_deploy_rbac
GROUP, VERSION, ROLES = constants.GROUP, constants.VERSION, constants.ROLE_REQUEST_PLURAL
GATEWAY_USER = f"system:serviceaccount:{NAMESPACE}:cnpg-mcp-gateway"


def impersonating_gateway_applied(control_plane: ControlPlane, k8s: Any, namespace: str) -> None:
    """The impersonation component, and token:alice allowed to edit intents in `namespace`."""
    kubectl(control_plane, "apply", "--server-side", "-k", str(REPO / "deploy" / "overlays" / "impersonating-gateway"))
    client.RbacAuthorizationV1Api(k8s).create_namespaced_role_binding(namespace, {
        "metadata": {"name": "alice-edits-intents"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cnpg-mcp-gateway"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "token:alice"}]})


def create_as(api: Any, namespace: str, name: str, headers: dict[str, str],
              annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return dict(client.CustomObjectsApi(api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, ROLES, role_request(name, annotations), _headers=headers))


async def test_intent_through_the_impersonating_gateway_names_the_gateway(
    deployed: str, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path, intents: Intents,
    operator: OperatorProcess, anyio_backend: str,
) -> None:
    from tests.integration.test_gateway_http import serve, session  # noqa: PLC0415

    impersonating_gateway_applied(control_plane, k8s, namespace)
    tokens = tmp_path / "tokens"
    tokens.write_text("alice-token,alice\n")
    gateway_identity = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-gateway", tmp_path / "gw")
    config = GatewayConfig(transport="http", port=free_port(), token_file=tokens, impersonate=True,
                           kubeconfig=str(gateway_identity))
    async for url in serve(config, control_plane):
        async with session(url, "alice-token") as mcp:
            ok(await mcp.call_tool("create_postgres_cluster", {"name": "via-db", "instances": 1,
                                                               "namespace": namespace}))
    created = intents.get(constants.CLUSTER_REQUEST_KIND, namespace, "via-db")
    assert created is not None
    annotations = created["metadata"]["annotations"]
    assert annotations[constants.REQUESTER_ANNOTATION] == "token:alice"
    assert annotations[constants.REQUESTED_VIA_ANNOTATION] == GATEWAY_USER
    assert annotations[constants.REQUESTED_BY_ANNOTATION] == "token:alice"


def test_only_the_gateway_can_name_itself_and_only_itself(
    deployed: str, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path
) -> None:
    """RBAC: the gateway may send its own name as the extra, no other name and no other key; a user who may
    not impersonate cannot send it at all."""
    impersonating_gateway_applied(control_plane, k8s, namespace)
    gateway = api_as(token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-gateway", tmp_path / "gw"))
    alice = {"Impersonate-User": "token:alice"}
    created = create_as(gateway, namespace, "through-gateway", {**alice, VIA_HEADER: GATEWAY_USER})
    assert created["metadata"]["annotations"][constants.REQUESTED_VIA_ANNOTATION] == GATEWAY_USER
    forgeries: list[dict[str, str]] = [{VIA_HEADER: f"system:serviceaccount:{NAMESPACE}:cnpg-mcp-operator"},
                                       {VIA_HEADER: "token:mallory"},
                                       {"Impersonate-Extra-cnpg-mcp.io%2Fother": GATEWAY_USER}]
    for forged in forgeries:
        body = denied(partial(create_as, gateway, namespace, "forged", {**alice, **forged}))
        assert "userextras" in body, body
    deployer = api_as(account_with_role(control_plane, k8s, namespace, "deployer", "edit", tmp_path))
    denied(lambda: create_as(deployer, namespace, "forged", {**alice, VIA_HEADER: GATEWAY_USER}))
    stored = client.CustomObjectsApi(k8s).list_namespaced_custom_object(GROUP, VERSION, namespace, ROLES)
    assert [item["metadata"]["name"] for item in stored["items"]] == ["through-gateway"]


def test_requested_via_cannot_be_written_by_a_client(
    deployed: str, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path
) -> None:
    """Admission: without the extra, a client-written value is refused at creation and at any update;
    a cluster admin cannot write it either."""
    deployer = api_as(account_with_role(control_plane, k8s, namespace, "deployer", "edit", tmp_path))
    forged = {constants.REQUESTED_VIA_ANNOTATION: GATEWAY_USER}
    refused(lambda: create_as(deployer, namespace, "forged", {}, forged), "requested-via", "cannot be chosen")
    refused(lambda: create_as(k8s, namespace, "forged", {}, forged), "requested-via", "cannot be chosen")
    created = create_as(deployer, namespace, "plain", {})
    assert constants.REQUESTED_VIA_ANNOTATION not in created["metadata"]["annotations"]
    for who in (deployer, k8s):
        refused(lambda who=who: annotate(who, namespace, "plain", {constants.REQUESTED_VIA_ANNOTATION: GATEWAY_USER}),
                "cannot be changed or removed")
