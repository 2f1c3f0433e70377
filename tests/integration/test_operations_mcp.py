"""The operations toolset through a real MCP client session: each tool writes a PgOperationRequest, waits with
progress notifications and reports the phase and CNPG's evidence; refusals come back coded, before anything
is written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client
from mcp import Client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import error, gateway_server, ok, text
from tests.integration.test_operations_intents import HOLD, cluster, healthy, pods, ready, three
from tests.integration.test_operator_roles import wait_until

pytestmark = pytest.mark.anyio
KIND = constants.OPERATION_REQUEST_KIND
__all__ = ["three"]  # the three-instance cluster fixture, shared with test_operations_intents


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gateway(control_plane: ControlPlane, operator: OperatorProcess) -> Any:
    return gateway_server(control_plane)


def requests(intents: Intents, namespace: str) -> list[dict[str, Any]]:
    return intents.list_all(KIND, namespace)


async def test_switchover_without_a_target_names_the_replica_it_promotes(
        gateway: Any, k8s: Any, namespace: str, intents: Intents, three: str) -> None:
    updates: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append(message)

    async with Client(gateway) as mcp:
        done = ok(await mcp.call_tool("switchover_postgres_cluster", {"name": three, "namespace": namespace},
                                      progress_callback=on_progress))
    assert done["phase"] == "Succeeded" and done["instance"] == f"{three}-2"
    assert done["evidence"]["currentPrimary"] == f"{three}-2"
    assert cluster(k8s, namespace, three)["status"]["currentPrimary"] == f"{three}-2"
    assert updates and any("Succeeded" in (m or "") for m in updates)  # progress until the end
    [request] = requests(intents, namespace)
    assert request["spec"] == {"type": "switchover", "cluster": three, "instance": f"{three}-2",
                               "timeoutSeconds": 120, "ttlSecondsAfterFinished": 86400}
    assert request["metadata"]["annotations"][constants.REQUESTED_BY_ANNOTATION].startswith("local:")


async def test_refusals_are_coded_and_write_nothing(gateway: Any, k8s: Any, namespace: str, intents: Intents,
                                                   three: str) -> None:
    async with Client(gateway) as mcp:
        missing = error(await mcp.call_tool("switchover_postgres_cluster", {
            "name": three, "target_instance": f"{three}-7", "namespace": namespace}), "NOT_FOUND")
        assert "does not exist" in missing
        same = error(await mcp.call_tool("switchover_postgres_cluster", {
            "name": three, "target_instance": f"{three}-1", "namespace": namespace}), "CONFLICT")
        assert "already the primary" in same
        primary = error(await mcp.call_tool("rebuild_postgres_replica", {
            "name": three, "instance": f"{three}-1", "namespace": namespace}), "CONFLICT")
        assert "current or target primary" in primary
        error(await mcp.call_tool("reload_postgres_cluster", {"name": "nope", "namespace": namespace}), "NOT_FOUND")
        awake = error(await mcp.call_tool("hibernate_postgres_cluster", {
            "name": three, "state": "off", "namespace": namespace}), "CONFLICT")
        assert "not hibernated" in awake
        preview = ok(await mcp.call_tool("restart_postgres_cluster", {"name": three, "namespace": namespace,
                                                                      "dry_run": True}))
        assert preview["dry_run"] is True and preview["phase"] is None
    assert requests(intents, namespace) == []
    assert cluster(k8s, namespace, three)["status"]["currentPrimary"] == f"{three}-1"


async def test_a_second_operation_while_one_runs_is_refused(gateway: Any, k8s: Any, namespace: str,
                                                            intents: Intents, three: str) -> None:
    core = client.CoreV1Api(k8s)
    replica = f"{three}-3"
    core.patch_namespaced_pod(replica, namespace, {"metadata": {"finalizers": [HOLD]}})
    async with Client(gateway) as mcp:
        try:
            started = ok(await mcp.call_tool("restart_postgres_cluster", {
                "name": three, "instance": replica, "wait": False, "namespace": namespace}))
            assert started["phase"] == "Running"
            refused = error(await mcp.call_tool("reload_postgres_cluster", {"name": three, "namespace": namespace}),
                            "CONFLICT")
            assert started["request"].split("/")[1] in refused and "still running" in refused
        finally:
            core.patch_namespaced_pod(replica, namespace, {"metadata": {"finalizers": None}})
        name = started["request"].split("/")[1]
        intents.wait_for(KIND, namespace, name, lambda o: o["status"]["phase"] == "Succeeded", "Succeeded")
        reloaded = ok(await mcp.call_tool("reload_postgres_cluster", {"name": three, "namespace": namespace}))
        assert reloaded["phase"] == "Succeeded" and reloaded["evidence"]["reloadedAt"]


async def test_restart_hibernate_fence_and_rebuild_report_cnpg_evidence(
        gateway: Any, k8s: Any, namespace: str, intents: Intents, three: str) -> None:
    async with Client(gateway) as mcp:
        rolled = ok(await mcp.call_tool("restart_postgres_cluster", {"name": three, "namespace": namespace}))
        value = rolled["evidence"][constants.CNPG_RESTARTED_AT_ANNOTATION]
        assert all(p.metadata.annotations[constants.CNPG_RESTARTED_AT_ANNOTATION] == value
                   for p in pods(k8s, namespace, three).values())

        fenced = ok(await mcp.call_tool("fence_postgres_instance", {"name": three, "instance": f"{three}-2",
                                                                    "namespace": namespace}))
        assert fenced["phase"] == "Succeeded" and json.loads(fenced["evidence"]["fencedInstances"]) == [f"{three}-2"]
        assert not ready(pods(k8s, namespace, three)[f"{three}-2"])
        unfenced = ok(await mcp.call_tool("fence_postgres_instance", {
            "name": three, "instance": f"{three}-2", "action": "unfence", "namespace": namespace}))
        assert unfenced["phase"] == "Succeeded"
        wait_until(lambda: healthy(k8s, namespace, three, 3), "ready again")

        uid = pods(k8s, namespace, three)[f"{three}-3"].metadata.uid
        rebuilt = ok(await mcp.call_tool("rebuild_postgres_replica", {"name": three, "instance": f"{three}-3",
                                                                      "namespace": namespace}))
        assert rebuilt["phase"] == "Succeeded"
        assert pods(k8s, namespace, three)[f"{three}-3"].metadata.uid != uid

        asleep = await mcp.call_tool("hibernate_postgres_cluster", {"name": three, "namespace": namespace})
        assert ok(asleep)["evidence"]["hibernation"] == "True/Hibernated"
        assert "succeeded" in text(asleep) and pods(k8s, namespace, three) == {}
        error(await mcp.call_tool("restart_postgres_cluster", {"name": three, "namespace": namespace}), "CONFLICT")
        awake = ok(await mcp.call_tool("hibernate_postgres_cluster", {"name": three, "state": "off",
                                                                      "namespace": namespace}))
        assert awake["operation"] == "resume" and awake["phase"] == "Succeeded"
    assert healthy(k8s, namespace, three, 3)
    assert {r["spec"]["type"] for r in requests(intents, namespace)} == {
        "restart", "fence", "unfence", "rebuildReplica", "hibernate", "resume"}
