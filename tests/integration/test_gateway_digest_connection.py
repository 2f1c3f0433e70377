"""The digest and the connection details through a real MCP client: the backups' recoverability window
read from the Barman Cloud ObjectStore (the operator and the simulator play the plugin and CNPG), CNPG
Poolers created directly (as a user would, not through cnpg-mcp), namespace completions, and deploy/'s
gateway rights for all of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from kubernetes import client
from mcp import Client
from mcp.client.subscriptions import ResourceUpdated
from mcp.types import PromptReference, ResourceTemplateReference

from devcluster.controlplane import ControlPlane
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import gateway_server, ok, text
from tests.integration.test_cnpg_simulator import create_cluster, create_cnpg, patch_cnpg
from tests.integration.test_deploy_rbac import NAMESPACE, deployed, token_kubeconfig  # noqa: F401 (a fixture)
from tests.integration.test_operator_backups import BACKUP_KIND, CNPG, STORE_KIND, get
from tests.integration.test_simulator_backups import backed_up_cluster

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_digest_has_every_field_and_the_recoverability_window(
        operator: OperatorProcess, cnpg_simulator: Any, k8s: Any, postgres: Any, namespace: str,
        intents: Intents, control_plane: ControlPlane) -> None:
    cluster, _, store = backed_up_cluster(intents, postgres, namespace)
    arguments = {"name": cluster, "namespace": namespace}
    async with Client(gateway_server(control_plane)) as mcp:
        before = ok(await mcp.call_tool("get_cluster_status", arguments))
    assert before["recoverability"] == {
        "source": f"ObjectStore {store} status.serverRecoveryWindow", "store": store, "server_name": cluster,
        "first_recoverability_point": None, "last_successful_backup": None, "last_failed_backup": None,
        "note": "no completed backup in the store yet"}
    assert before["verdict"] == ("attention: no recoverability point: no completed backup in the store yet "
                                 "(point-in-time recovery is not possible yet)")

    intents.create(BACKUP_KIND, namespace, "first", {"cluster": cluster})
    intents.wait_ready(BACKUP_KIND, namespace, "first")
    intents.wait_for(STORE_KIND, namespace, store,
                     lambda o: bool((o.get("status") or {}).get("firstRecoverabilityPoint")), "window")
    stopped = ((get(k8s, CNPG, namespace, "backups", "first") or {}).get("status") or {})["stoppedAt"]
    async with Client(gateway_server(control_plane)) as mcp:
        after = ok(await mcp.call_tool("get_cluster_status", arguments))
        shown = text(await mcp.call_tool("get_cluster_status", arguments))
    assert after["verdict"] == f"healthy: 1/1 instances ready, primary {cluster}-1" and after["next_check"] is None
    window = after["recoverability"]
    assert window["first_recoverability_point"] == stopped and window["last_successful_backup"] == stopped
    assert window["note"] is None
    assert f"- Recoverable since: {stopped} (last backup {stopped})" in shown
    # Every digest field a user reads, as CNPG (played by the simulator) reports it.
    assert after["instances_status"] == [{"name": f"{cluster}-1", "role": "primary", "status": "healthy",
                                          "ready": True, "timeline": after["timeline"]}]
    assert after["current_primary"] == after["target_primary"] == f"{cluster}-1"
    assert after["key_conditions"]["Ready"].startswith("True")
    assert after["key_conditions"]["ContinuousArchiving"].startswith("True")
    assert after["key_conditions"]["LastBackupSucceeded"].startswith("True")
    assert {"phase_reason", "managed_roles_summary", "certificates", "events", "problems"} <= set(after)
    assert after["events"], "the newest Events of the cluster and its request"


async def test_connection_info_lists_a_pooler_created_directly(control_plane: ControlPlane, k8s: Any,
                                                                namespace: str) -> None:
    create_cluster(k8s, namespace, "pg-pooled", instances=1)
    create_cluster(k8s, namespace, "pg-other", instances=1)
    for name, target, kind, mode in (("pg-pooled-rw", "pg-pooled", "rw", "transaction"),
                                     ("pg-other-ro", "pg-other", "ro", "session")):
        create_cnpg(k8s, namespace, "poolers", "Pooler", name,
                    {"cluster": {"name": target}, "instances": 1, "type": kind, "pgbouncer": {"poolMode": mode}})
    async with Client(gateway_server(control_plane)) as mcp:
        info = ok(await mcp.call_tool("get_connection_info", {"name": "pg-pooled", "namespace": namespace}))
        shown = text(await mcp.call_tool("get_connection_info", {"name": "pg-pooled", "namespace": namespace}))
    assert info["poolers"] == [{
        "name": "pg-pooled-rw", "type": "rw", "target": "the primary", "pool_mode": "transaction", "instances": 1,
        "host": f"pg-pooled-rw.{namespace}.svc", "port": 5432,
        "uri": f"postgresql://app@pg-pooled-rw.{namespace}.svc:5432/app?sslmode=verify-full"
               "&sslrootcert=pg-pooled-ca.crt"}]
    assert info["poolers_unreadable"] is None
    assert f"- pg-pooled-rw.{namespace}.svc — pooler pg-pooled-rw, type rw (the primary), pool mode transaction" \
        in shown
    assert "pg-other-ro" not in shown  # another cluster's pooler
    assert info["sslmode"] == "verify-full" and info["ca_secret"] == "pg-pooled-ca"
    assert info["ca_command"].endswith("-o jsonpath='{.data.ca\\.crt}' | base64 -d > pg-pooled-ca.crt")
    assert ":" not in info["uri"].split("@")[0].removeprefix("postgresql://")  # no password in the URI


async def test_namespaces_and_clusters_complete(control_plane: ControlPlane, k8s: Any, namespace: str) -> None:
    create_cluster(k8s, namespace, "alpha-db", instances=1)
    client.CoreV1Api(k8s).read_namespace(namespace)
    async with Client(gateway_server(control_plane)) as mcp:
        namespaces = await mcp.complete(PromptReference(type="ref/prompt", name="plan_pitr"),
                                        {"name": "namespace", "value": namespace[:-2]})
        assert namespaces.completion.values == [namespace]
        clusters = await mcp.complete(ResourceTemplateReference(type="ref/resource",
                                                                uri="cnpg://{namespace}/{cluster}/status"),
                                      {"name": "cluster", "value": "al"}, {"namespace": namespace})
        assert clusters.completion.values == ["alpha-db"]
    async with Client(gateway_server(control_plane, namespace_allow=(namespace, "other-team"))) as narrow:
        allowed = await narrow.complete(PromptReference(type="ref/prompt", name="diagnose_cluster"),
                                        {"name": "namespace", "value": ""})
        assert allowed.completion.values == sorted([namespace, "other-team"])


@pytest.mark.usefixtures("deployed")
async def test_the_gateway_service_account_reads_poolers_stores_and_watches_clusters(
        control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path) -> None:
    """deploy/'s gateway rights cover what these features read: Poolers, ObjectStores, Cluster watches."""
    as_gateway = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-gateway", tmp_path / "gw")
    create_cnpg(k8s, namespace, "clusters", "Cluster", "pg-sa", {
        "instances": 1, "storage": {"size": "1Gi"},
        "plugins": [{"name": "barman-cloud.cloudnative-pg.io", "isWALArchiver": True,
                     "parameters": {"barmanObjectName": "absent-store"}}]})
    create_cnpg(k8s, namespace, "poolers", "Pooler", "pg-sa-pooler",
                {"cluster": {"name": "pg-sa"}, "instances": 1, "pgbouncer": {"poolMode": "session"}})
    uri = f"cnpg://{namespace}/pg-sa/status"
    async with Client(gateway_server(control_plane, kubeconfig=str(as_gateway), watch_cache=True)) as mcp:
        info = ok(await mcp.call_tool("get_connection_info", {"name": "pg-sa", "namespace": namespace}))
        assert [p["name"] for p in info["poolers"]] == ["pg-sa-pooler"] and info["poolers_unreadable"] is None
        status = ok(await mcp.call_tool("get_cluster_status", {"name": "pg-sa", "namespace": namespace}))
        assert status["recoverability"]["note"] == "ObjectStore absent-store not found"  # read, not refused
        async with mcp.listen(resource_subscriptions=[uri]) as subscription:
            await anyio.sleep(1.0)
            patch_cnpg(k8s, namespace, "clusters", "pg-sa", {"metadata": {"annotations": {"touched": "yes"}}})
            with anyio.fail_after(15):
                async for event in subscription:
                    if isinstance(event, ResourceUpdated) and event.uri == uri:
                        break
