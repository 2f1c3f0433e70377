"""deploy/ against the real API server: it applies, and its RBAC grants exactly what each part needs.

The operator and the gateway run here AS their ServiceAccounts (tokens from the TokenRequest API), and
the create-role and create-database flows work end to end; what they must not do is denied by RBAC.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from mcp import Client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane, write_kubeconfig
from devcluster.postgres import PostgresServer
from mcp_gateway.config import GatewayConfig
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import (
    database_owner,
    error,
    gateway_server,
    ok,
    secret_password,
    unique,
)

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "cnpg-mcp"
PEERING = "cnpg-mcp-operator"  # the peering object deploy/ makes the operator replicas share


def kubectl(control_plane: ControlPlane, *args: str) -> str:
    done = subprocess.run([control_plane.kubectl, "--kubeconfig", str(control_plane.kubeconfig), *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def deployed(control_plane: ControlPlane) -> str:
    """deploy/ applied: first as a server-side dry run, then for real (Deployments are stored; no pods run).

    A server-side dry run cannot create the namespace its objects go to, so that one comes first.
    """
    apply = ("apply", "--server-side", "--force-conflicts")
    kubectl(control_plane, *apply, "-f", str(REPO / "deploy" / "namespace.yaml"))
    kubectl(control_plane, *apply, "--dry-run=server", "-k", str(REPO / "deploy"))
    return kubectl(control_plane, *apply, "-k", str(REPO / "deploy"))


def token_kubeconfig(control_plane: ControlPlane, k8s: Any, namespace: str, account: str, path: Path) -> Path:
    token = client.CoreV1Api(k8s).create_namespaced_service_account_token(
        account, namespace, {"spec": {"expirationSeconds": 3600}}).status.token
    write_kubeconfig(path, control_plane.server, control_plane.ca_file, token)
    return path


def api_as(kubeconfig: Path) -> Any:
    from kubernetes import config  # noqa: PLC0415

    return config.new_client_from_config(config_file=str(kubeconfig))


def rbac_denials(log: str) -> list[str]:
    """Log lines where the API server refused the operator for lack of a right. A namespace being deleted
    by another test also answers 403 ("unable to create new content … being terminated"): not RBAC."""
    return [line for line in log.splitlines()
            if "forbidden" in line.lower() and "because it is being terminated" not in line]


def denied(call: Any) -> None:
    with pytest.raises(ApiException) as excinfo:
        call()
    assert excinfo.value.status == 403, excinfo.value


def test_deploy_applies_with_least_privilege_and_hardened_pods(deployed: str, k8s: Any) -> None:
    assert "deployment.apps/cnpg-mcp-operator serverside-applied" in deployed
    apps = client.AppsV1Api(k8s)
    operator = apps.read_namespaced_deployment("cnpg-mcp-operator", NAMESPACE)
    # Two replicas: Kopf peering keeps one active and the other on standby (test_operator_peering.py).
    assert operator.spec.replicas == 2
    assert f"--peering={PEERING}" in operator.spec.template.spec.containers[0].args
    assert operator.spec.strategy.rolling_update.max_unavailable == 0  # the standby is there before one leaves
    for name in ("cnpg-mcp-operator", "cnpg-mcp-gateway"):
        pod = apps.read_namespaced_deployment(name, NAMESPACE).spec.template.spec
        assert pod.security_context.run_as_non_root is True
        container = pod.containers[0].security_context
        assert container.read_only_root_filesystem is True
        assert container.allow_privilege_escalation is False
        assert container.capabilities.drop == ["ALL"]
        assert pod.containers[0].liveness_probe is not None


def test_gateway_identity_is_denied_what_it_must_not_do(
    deployed: str, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path
) -> None:
    client.CoreV1Api(k8s).create_namespaced_secret(namespace, {"metadata": {"name": "s"}, "stringData": {"k": "v"}})
    gateway = api_as(token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-gateway", tmp_path / "gw"))
    custom = client.CustomObjectsApi(gateway)
    denied(lambda: client.CoreV1Api(gateway).read_namespaced_secret("s", namespace))
    denied(lambda: client.CoreV1Api(gateway).list_namespaced_secret(namespace))
    denied(lambda: custom.create_namespaced_custom_object(
        constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS,
        {"apiVersion": constants.CNPG_API_VERSION, "kind": "Cluster", "metadata": {"name": "direct"},
         "spec": {"instances": 1, "storage": {"size": "1Gi"}}}))
    denied(lambda: custom.delete_namespaced_custom_object(
        constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_DATABASE_ROLES, "any"))
    # get_cluster_logs lists instance Pods and reads their logs; nothing else of a Pod
    # (backups are read by the backups toolset: test_gateway_backup_rbac.py; poolers may be read, not written).
    core = client.CoreV1Api(gateway)
    core.list_namespaced_pod(namespace)
    with pytest.raises(ApiException) as missing:  # allowed: only the Pod is missing
        core.read_namespaced_pod_log("any-1", namespace)
    assert missing.value.status == 404, missing.value
    denied(lambda: core.read_namespaced_pod("any-1", namespace))
    denied(lambda: core.delete_namespaced_pod("any-1", namespace))
    # Poolers (toolset poolers) are read, never written: the operator produces them from PgPoolerRequests.
    denied(lambda: custom.create_namespaced_custom_object(
        constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_POOLERS,
        {"apiVersion": constants.CNPG_API_VERSION, "kind": "Pooler", "metadata": {"name": "direct"},
         "spec": {"cluster": {"name": "c"}, "pgbouncer": {}}}, dry_run="All"))
    denied(lambda: custom.delete_namespaced_custom_object(
        constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_POOLERS, "any"))
    # ... while reading CNPG objects and writing intents is allowed.
    for plural in (constants.CNPG_CLUSTERS, constants.CNPG_POOLERS):
        custom.list_namespaced_custom_object(constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, plural)
    custom.create_namespaced_custom_object(constants.GROUP, constants.VERSION, namespace,
                                           constants.POOLER_REQUEST_PLURAL,
                                           {"apiVersion": constants.API_VERSION, "kind": "PgPoolerRequest",
                                            "metadata": {"name": "c-pooler"}, "spec": {"cluster": "c"}},
                                           dry_run="All")
    custom.create_namespaced_custom_object(constants.GROUP, constants.VERSION, namespace,
                                           constants.ROLE_REQUEST_PLURAL,
                                           {"apiVersion": constants.API_VERSION, "kind": "PgRoleRequest",
                                            "metadata": {"name": "c-r"}, "spec": {"cluster": "c", "roleName": "r"}},
                                           dry_run="All")


def owned_secret(namespace: str, owner_kind: str) -> dict[str, Any]:
    """A Secret owned by an intent with blockOwnerDeletion, as the operator writes them."""
    return {"metadata": {"name": f"owned-by-{owner_kind.lower()}", "ownerReferences": [{
        "apiVersion": constants.API_VERSION, "kind": owner_kind, "name": "owner",
        "uid": "00000000-0000-0000-0000-000000000001", "controller": True, "blockOwnerDeletion": True}]},
        "stringData": {"k": "v"}}


def test_operator_may_block_owner_deletion_where_the_plugin_enforces_it(
    deployed: str, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path
) -> None:
    """OwnerReferencesPermissionEnforcement is on: blockOwnerDeletion needs update on <owner>/finalizers."""
    core = client.CoreV1Api(k8s)
    rbac = client.RbacAuthorizationV1Api(k8s)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "secret-writer"}})
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "secret-writer"}, "rules": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "secret-writer"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "secret-writer"},
        "subjects": [{"kind": "ServiceAccount", "name": "secret-writer", "namespace": namespace}]})
    writer = client.CoreV1Api(api_as(token_kubeconfig(control_plane, k8s, namespace, "secret-writer",
                                                      tmp_path / "writer")))
    operator = client.CoreV1Api(api_as(token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-operator",
                                                        tmp_path / "op")))
    for owner_kind in ("PgRoleRequest", "PgDatabaseRequest"):  # the kinds whose products the operator owns by ref
        with pytest.raises(ApiException) as excinfo:
            writer.create_namespaced_secret(namespace, owned_secret(namespace, owner_kind), dry_run="All")
        assert excinfo.value.status == 403 and "blockOwnerDeletion" in str(excinfo.value.body), excinfo.value
        operator.create_namespaced_secret(namespace, owned_secret(namespace, owner_kind), dry_run="All")


@pytest.fixture
def read_only_account(control_plane: ControlPlane, k8s: Any, tmp_path: Path) -> Iterator[Path]:
    """The read-only overlay's ClusterRole, bound (under test names) to a fresh ServiceAccount."""
    rendered = list(yaml.safe_load_all(kubectl(control_plane, "kustomize",
                                               str(REPO / "deploy" / "overlays" / "read-only-gateway"))))
    role = next(o for o in rendered if o["kind"] == "ClusterRole")
    role["metadata"]["name"] = "test-read-only-gateway"
    rbac = client.RbacAuthorizationV1Api(k8s)
    rbac.create_cluster_role(role)
    client.CoreV1Api(k8s).create_namespaced_service_account(NAMESPACE, {"metadata": {"name": "test-read-only"}})
    rbac.create_cluster_role_binding({
        "metadata": {"name": "test-read-only-gateway"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "test-read-only-gateway"},
        "subjects": [{"kind": "ServiceAccount", "name": "test-read-only", "namespace": NAMESPACE}]})
    deployment = next(o for o in rendered if o["kind"] == "Deployment")
    assert "--read-only" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    yield token_kubeconfig(control_plane, k8s, NAMESPACE, "test-read-only", tmp_path / "ro")
    rbac.delete_cluster_role_binding("test-read-only-gateway")
    rbac.delete_cluster_role("test-read-only-gateway")
    client.CoreV1Api(k8s).delete_namespaced_service_account("test-read-only", NAMESPACE)


def test_read_only_variant_cannot_create_intents(deployed: str, read_only_account: Path, namespace: str) -> None:
    custom = client.CustomObjectsApi(api_as(read_only_account))
    custom.list_namespaced_custom_object(constants.GROUP, constants.VERSION, namespace, constants.ROLE_REQUEST_PLURAL)
    denied(lambda: custom.create_namespaced_custom_object(
        constants.GROUP, constants.VERSION, namespace, constants.ROLE_REQUEST_PLURAL,
        {"apiVersion": constants.API_VERSION, "kind": "PgRoleRequest", "metadata": {"name": "c-r"},
         "spec": {"cluster": "c", "roleName": "r"}}))


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_operator_and_gateway_run_as_their_service_accounts(
    deployed: str, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path,
    operator: OperatorProcess, postgres: PostgresServer, intents: Intents, anyio_backend: str,
) -> None:
    operator_config = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-operator", tmp_path / "op")
    gateway_config = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-gateway", tmp_path / "gw")
    operator.stop()  # one operator at a time: ours runs as the ServiceAccount, with deploy/'s peering
    least = OperatorProcess(operator_config, tmp_path / "operator-sa.log", ["--all-namespaces", f"--peering={PEERING}"])
    try:
        least.start()
        role, database = unique("sa_user"), unique("sa_data")
        gateway = gateway_server(control_plane, kubeconfig=str(gateway_config), watch_cache=True)
        async with Client(gateway) as mcp:
            ok(await mcp.call_tool("create_postgres_cluster", {
                "name": "sa-db", "instances": 1, "namespace": namespace}))
            intents.wait_ready("PgClusterRequest", namespace, "sa-db")
            # Every read the tools make (events too, in the detailed status) is within the gateway's rights.
            ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace, "format": "json"}))
            ok(await mcp.call_tool("get_cluster_status", {"name": "sa-db", "namespace": namespace,
                                                          "detail_level": "detailed", "format": "json"}))
            ok(await mcp.call_tool("get_cluster_logs", {"name": "sa-db", "namespace": namespace}))  # pods, pods/log
            ok(await mcp.call_tool("get_connection_info", {"name": "sa-db", "namespace": namespace}))
            created = ok(await mcp.call_tool("create_postgres_role", {
                "cluster_name": "sa-db", "role_name": role, "namespace": namespace}))
            intents.wait_ready("PgRoleRequest", namespace, created["request"].split("/")[1])
            assert postgres.can_login(role, secret_password(k8s, namespace, created["password_secret"]))
            db = ok(await mcp.call_tool("create_postgres_database", {
                "cluster_name": "sa-db", "database_name": database, "owner": role, "namespace": namespace}))
            intents.wait_ready("PgDatabaseRequest", namespace, db["request"].split("/")[1])
            assert database_owner(postgres, database) == role
            ok(await mcp.call_tool("list_postgres_roles", {"cluster_name": "sa-db", "namespace": namespace}))
            ok(await mcp.call_tool("list_postgres_databases", {"cluster_name": "sa-db", "namespace": namespace}))
        log = least.log_since_start()
        assert not rbac_denials(log)  # the operator never hit a missing right
    finally:
        least.stop()
        operator.start()


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_impersonating_gateway_acts_as_the_user(
    deployed: str, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path, intents: Intents,
    operator: OperatorProcess, anyio_backend: str,
) -> None:
    """The gateway ServiceAccount with the impersonation component: RBAC is the user's, the intent says who.

    The operator runs: create_postgres_cluster waits for the Cluster it asked for, as it does for any user."""
    from devcluster.controlplane import free_port  # noqa: PLC0415
    from tests.integration.test_gateway_http import serve, session  # noqa: PLC0415

    kubectl(control_plane, "apply", "--server-side", "-k", str(REPO / "deploy" / "overlays" / "impersonating-gateway"))
    rbac = client.RbacAuthorizationV1Api(k8s)
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "alice-edits-intents"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cnpg-mcp-gateway"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "token:alice"}]})
    tokens = tmp_path / "tokens"
    tokens.write_text("alice-token,alice\nbob-token,bob\n")
    gateway_identity = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-gateway", tmp_path / "gw")
    config = GatewayConfig(transport="http", port=free_port(), token_file=tokens, impersonate=True,
                           kubeconfig=str(gateway_identity))
    async for url in serve(config, control_plane):
        async with session(url, "bob-token") as mcp:
            message = error(await mcp.call_tool("create_postgres_role", {
                "cluster_name": "any", "role_name": "r", "namespace": namespace}), "FORBIDDEN")
            assert "bob" in message
        async with session(url, "alice-token") as mcp:
            ok(await mcp.call_tool("create_postgres_cluster", {"name": "alice-db", "instances": 1,
                                                               "namespace": namespace, "dry_run": False}))
    created = intents.get("PgClusterRequest", namespace, "alice-db")
    assert created is not None
    assert created["metadata"]["annotations"][constants.REQUESTED_BY_ANNOTATION] == "token:alice"


IMPERSONATE_ON = "impersonate-on:user-info:"


def cluster_role(path: Path, name: str) -> dict[str, Any]:
    return next(o for o in yaml.safe_load_all(path.read_text())
                if o and o["kind"] == "ClusterRole" and o["metadata"]["name"] == name)


def grants(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) a list of RBAC rules grants."""
    return {(group, resource, verb) for rule in rules for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def test_impersonation_reaches_exactly_the_gateways_own_rights() -> None:
    """While impersonating, the gateway may make exactly the requests its own ClusterRole allows: no more
    (a right it dropped must not linger there), no less (a tool would fail for every impersonated user)."""
    gateway = cluster_role(REPO / "deploy" / "gateway" / "rbac.yaml", "cnpg-mcp-gateway")
    impersonator = cluster_role(REPO / "deploy" / "components" / "impersonation" / "rbac.yaml",
                                "cnpg-mcp-gateway-impersonator")
    impersonate_on = {(group, resource, verb.removeprefix(IMPERSONATE_ON))
                      for group, resource, verb in grants(impersonator["rules"]) if verb.startswith(IMPERSONATE_ON)}
    assert impersonate_on == grants(gateway["rules"])


def rendered(control_plane: ControlPlane, overlay: str) -> list[dict[str, Any]]:
    text = kubectl(control_plane, "kustomize", str(REPO / "deploy" / "overlays" / overlay))
    return [o for o in yaml.safe_load_all(text) if o]


@pytest.fixture
def namespaced_account(control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path) -> Iterator[Path]:
    """The namespaced-gateway overlay's RoleBinding, moved into the test namespace for a fresh ServiceAccount."""
    objects = rendered(control_plane, "namespaced-gateway")
    kinds = [o["kind"] for o in objects]
    assert "ClusterRoleBinding" not in kinds  # nothing cluster-wide: no list across namespaces
    bindings = [o for o in objects if o["kind"] == "RoleBinding"]
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    # The tools are limited to exactly the namespaces the gateway is bound in.
    assert sorted(a.split("=", 1)[1] for a in args if a.startswith("--namespace-allow=")) == \
        sorted(b["metadata"]["namespace"] for b in bindings)
    binding = bindings[0]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "cnpg-mcp-gateway"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cnpg-mcp-gateway", "namespace": NAMESPACE}]
    core = client.CoreV1Api(k8s)
    core.create_namespaced_service_account(NAMESPACE, {"metadata": {"name": "test-namespaced"}})
    binding["metadata"]["namespace"] = namespace
    binding["subjects"][0]["name"] = "test-namespaced"
    client.RbacAuthorizationV1Api(k8s).create_namespaced_role_binding(namespace, binding)
    yield token_kubeconfig(control_plane, k8s, NAMESPACE, "test-namespaced", tmp_path / "ns")
    core.delete_namespaced_service_account("test-namespaced", NAMESPACE)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_namespaced_gateway_works_in_its_namespace_only(
    deployed: str, control_plane: ControlPlane, k8s: Any, namespace: str, namespaced_account: Path,
    anyio_backend: str,
) -> None:
    other = f"{namespace}-other"
    client.CoreV1Api(k8s).create_namespace({"metadata": {"name": other, "labels": {"cnpg-mcp.io/test": "true"}}})
    try:
        gateway = gateway_server(control_plane, kubeconfig=str(namespaced_account), watch_cache=True)
        async with Client(gateway) as mcp:
            ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}))
            ok(await mcp.call_tool("create_postgres_cluster", {"name": "ns-db", "instances": 1,
                                                               "namespace": namespace, "dry_run": True}))
            error(await mcp.call_tool("list_postgres_clusters", {"namespace": other}), "FORBIDDEN")
            error(await mcp.call_tool("create_postgres_cluster", {"name": "ns-db", "instances": 1,
                                                                  "namespace": other, "dry_run": True}), "FORBIDDEN")
        custom = client.CustomObjectsApi(api_as(namespaced_account))
        denied(lambda: custom.list_cluster_custom_object(constants.CNPG_GROUP, constants.CNPG_VERSION,
                                                         constants.CNPG_CLUSTERS))
        denied(lambda: custom.list_namespaced_custom_object(constants.GROUP, constants.VERSION, other,
                                                            constants.CLUSTER_REQUEST_PLURAL))
    finally:
        client.CoreV1Api(k8s).delete_namespace(other)
