"""Connection poolers (issue #12): PgPoolerRequest → CNPG Pooler → its Deployment and Service, through a real
MCP client and through kubectl-applied intents, against the real control plane, CNPG's CRDs and webhooks,
the operator and the CNPG simulator."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from mcp import Client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import error, gateway_server, ok, text

POOLER = "PgPoolerRequest"
CLUSTER = "PgClusterRequest"
CNPG = (constants.CNPG_GROUP, constants.CNPG_VERSION)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gateway(control_plane: ControlPlane, operator: OperatorProcess) -> Any:
    return gateway_server(control_plane)


def make_cluster(intents: Intents, namespace: str, name: str) -> None:
    intents.create(CLUSTER, namespace, name, {"instances": 1, "storage": {"size": "1Gi"}})
    intents.wait_ready(CLUSTER, namespace, name)


def live_pooler(k8s: Any, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        found: dict[str, Any] = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
            *CNPG, namespace, constants.CNPG_POOLERS, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found


def read_or_none(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not {what} after {timeout}s"
        time.sleep(0.3)


def deployment(k8s: Any, namespace: str, name: str) -> Any:
    return read_or_none(lambda: client.AppsV1Api(k8s).read_namespaced_deployment(name, namespace))


def service(k8s: Any, namespace: str, name: str) -> Any:
    return read_or_none(lambda: client.CoreV1Api(k8s).read_namespaced_service(name, namespace))


@pytest.mark.anyio
async def test_pooler_lifecycle_through_mcp(gateway: Any, k8s: Any, namespace: str, intents: Intents) -> None:
    make_cluster(intents, namespace, "shop")
    async with Client(gateway) as mcp:
        created = ok(await mcp.call_tool("create_postgres_pooler", {
            "name": "shop-pooler-rw", "cluster_name": "shop", "namespace": namespace, "instances": 1,
            "pool_mode": "transaction", "parameters": {"default_pool_size": "20"}}))
        assert created["pooler_created"] is True, created
        request = intents.wait_ready(POOLER, namespace, "shop-pooler-rw")
        pooler = live_pooler(k8s, namespace, "shop-pooler-rw")
        assert pooler is not None
        assert [ref["uid"] for ref in pooler["metadata"]["ownerReferences"]] == [request["metadata"]["uid"]]
        assert pooler["spec"]["pgbouncer"] == {"poolMode": "transaction", "parameters": {"default_pool_size": "20"},
                                               "paused": False}
        # CNPG's part: a Deployment and a Service named like the Pooler.
        deploy = wait_until(lambda: deployment(k8s, namespace, "shop-pooler-rw"), "a Deployment")
        assert deploy.spec.replicas == 1
        assert deploy.metadata.labels["cnpg.io/poolerName"] == "shop-pooler-rw"
        svc = service(k8s, namespace, "shop-pooler-rw")
        assert svc is not None and [(p.name, p.port) for p in svc.spec.ports] == [("pgbouncer", 5432)]
        assert svc.spec.selector == {"cnpg.io/poolerName": "shop-pooler-rw"}
        assert request["status"]["phase"] == "active" and request["status"]["instances"] == 1

        listed = ok(await mcp.call_tool("list_postgres_poolers", {"namespace": namespace, "cluster_name": "shop"}))
        assert [(p["name"], p["type"], p["ready_instances"], p["managed"]) for p in listed["poolers"]] == [
            ("shop-pooler-rw", "rw", 1, True)]
        assert listed["poolers"][0]["service"] == f"shop-pooler-rw.{namespace}:5432"

        # update: more instances, one parameter more, paused
        preview = ok(await mcp.call_tool("update_postgres_pooler", {
            "name": "shop-pooler-rw", "namespace": namespace, "instances": 2, "dry_run": True}))
        assert preview["changes"] == {"instances": {"old": 1, "new": 2}} and preview["changed"] is False
        assert intents.get(POOLER, namespace, "shop-pooler-rw")["spec"]["instances"] == 1  # type: ignore[index]
        updated = ok(await mcp.call_tool("update_postgres_pooler", {
            "name": "shop-pooler-rw", "namespace": namespace, "instances": 2, "paused": True,
            "parameters": {"max_client_conn": "500"}}))
        assert set(updated["changes"]) == {"instances", "paused", "parameters.max_client_conn"}
        wait_until(lambda: (deployment(k8s, namespace, "shop-pooler-rw").spec.replicas == 2), "scaled to 2")
        paused = intents.wait_for(POOLER, namespace, "shop-pooler-rw",
                                  lambda r: (r.get("status") or {}).get("phase") == "paused"
                                  and (r.get("status") or {}).get("instances") == 2, "paused with 2 instances")
        assert intents.ready(paused)["status"] == "True"  # type: ignore[index]
        assert live_pooler(k8s, namespace, "shop-pooler-rw")["spec"]["pgbouncer"]["parameters"] == {  # type: ignore[index]
            "default_pool_size": "20", "max_client_conn": "500"}
        ok(await mcp.call_tool("update_postgres_pooler", {
            "name": "shop-pooler-rw", "namespace": namespace, "remove_parameters": ["default_pool_size"]}))
        wait_until(lambda: live_pooler(k8s, namespace, "shop-pooler-rw")["spec"]["pgbouncer"]["parameters"]  # type: ignore[index]
                   == {"max_client_conn": "500"}, "parameter removed")

        refused = await mcp.call_tool("update_postgres_pooler", {
            "name": "shop-pooler-rw", "namespace": namespace, "parameters": {"listen_port": "6000"}})
        assert "listen_port" in error(refused, "INVALID_ARGUMENT")

        # delete: nothing without confirmation, then the Pooler, Deployment and Service go
        unconfirmed = ok(await mcp.call_tool("delete_postgres_pooler", {"name": "shop-pooler-rw",
                                                                        "namespace": namespace}))
        assert unconfirmed["deleted"] is False and "NOTHING was deleted" in text(
            await mcp.call_tool("delete_postgres_pooler", {"name": "shop-pooler-rw", "namespace": namespace}))
        assert live_pooler(k8s, namespace, "shop-pooler-rw") is not None
        deleted = ok(await mcp.call_tool("delete_postgres_pooler", {
            "name": "shop-pooler-rw", "namespace": namespace, "confirm_deletion": True}))
        assert deleted["deleted"] is True
    assert live_pooler(k8s, namespace, "shop-pooler-rw") is None
    wait_until(lambda: deployment(k8s, namespace, "shop-pooler-rw") is None
               and service(k8s, namespace, "shop-pooler-rw") is None, "Deployment and Service gone")
    intents.wait_gone(POOLER, namespace, "shop-pooler-rw")


@pytest.mark.anyio
async def test_pooler_named_like_a_cluster_is_refused(gateway: Any, k8s: Any, namespace: str,
                                                      intents: Intents) -> None:
    make_cluster(intents, namespace, "alpha")
    make_cluster(intents, namespace, "beta")
    async with Client(gateway) as mcp:
        answer = await mcp.call_tool("create_postgres_pooler", {"name": "beta", "cluster_name": "alpha",
                                                                "namespace": namespace})
    assert "Cluster of that name exists" in error(answer, "INVALID_ARGUMENT")
    assert intents.get(POOLER, namespace, "beta") is None
    # kubectl: the name of its own cluster is refused by the API server (CEL), another Cluster's by the operator
    with pytest.raises(ApiException) as own:
        intents.create(POOLER, namespace, "alpha", {"cluster": "alpha"})
    assert own.value.status == 422 and "cannot have the name of a Cluster" in str(own.value.body)
    intents.create(POOLER, namespace, "beta", {"cluster": "alpha"})
    refused = intents.wait_reason(POOLER, namespace, "beta", "Conflict")
    assert "Cluster named 'beta' exists" in refused["status"]["message"]
    assert live_pooler(k8s, namespace, "beta") is None


def test_pooler_through_kubectl_applied_intent(operator: OperatorProcess, k8s: Any, namespace: str,
                                               intents: Intents) -> None:
    make_cluster(intents, namespace, "ledger")
    with pytest.raises(ApiException) as outside:  # CNPG's allow-list, enforced by the CRD
        intents.create(POOLER, namespace, "ledger-ro", {"cluster": "ledger", "pgbouncer": {
            "parameters": {"unix_socket_dir": "/tmp"}}})
    assert outside.value.status == 422 and "allow-list" in str(outside.value.body)
    intents.create(POOLER, namespace, "ledger-ro", {"cluster": "ledger", "type": "ro", "instances": 2})
    request = intents.wait_ready(POOLER, namespace, "ledger-ro")
    assert request["status"]["pooler"] == "ledger-ro" and request["status"]["service"] == f"ledger-ro.{namespace}:5432"
    pooler = live_pooler(k8s, namespace, "ledger-ro")
    assert pooler is not None and pooler["spec"]["type"] == "ro" and pooler["spec"]["instances"] == 2
    assert request["status"]["poolerUID"] == pooler["metadata"]["uid"]
    reasons = [e.reason for e in intents.events_for(namespace, "ledger-ro")]
    assert reasons, "the operator posts Events on the request's transitions"
    # A pooler for a cluster that does not exist waits, saying so.
    intents.create(POOLER, namespace, "nowhere-rw", {"cluster": "nowhere"})
    assert "not found" in intents.wait_reason(POOLER, namespace, "nowhere-rw", "ClusterNotFound")["status"]["message"]
    intents.delete(POOLER, namespace, "ledger-ro")
    intents.wait_gone(POOLER, namespace, "ledger-ro")
    wait_until(lambda: live_pooler(k8s, namespace, "ledger-ro") is None
               and deployment(k8s, namespace, "ledger-ro") is None, "Pooler and Deployment gone")
