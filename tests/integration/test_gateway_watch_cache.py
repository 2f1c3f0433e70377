"""--watch-cache: reads come from watch-backed mirrors, stay current, and never bypass the user's RBAC."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from kubernetes import client
from mcp import Client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import gateway_server, ok

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def eventually(check: Any, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "the mirror did not catch up"
        await anyio.sleep(0.1)


async def test_mirrors_follow_changes_and_reads_see_own_writes(
    control_plane: ControlPlane, operator: OperatorProcess, k8s: Any, namespace: str, intents: Intents
) -> None:
    server = gateway_server(control_plane, watch_cache=True)
    async with Client(server) as mcp:
        assert ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}))["count"] == 0
        ok(await mcp.call_tool("create_postgres_cluster", {"name": "cached", "instances": 1, "namespace": namespace}))
        # Our own write is visible at once, before any watch event could matter.
        first = ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}))
        assert [c["name"] for c in first["clusters"]] == ["cached"]

        intents.wait_ready("PgClusterRequest", namespace, "cached")

        async def healthy() -> bool:
            status = ok(await mcp.call_tool("get_cluster_status", {"name": "cached", "namespace": namespace}))
            return bool(status["phase"] == "Cluster in healthy state" and status["request"]["ready"])

        await eventually(healthy)
        # A change made by someone else reaches the mirror through the watch.
        client.CustomObjectsApi(k8s).delete_namespaced_custom_object(
            constants.GROUP, constants.VERSION, namespace, constants.CLUSTER_REQUEST_PLURAL, "cached")

        async def request_gone() -> bool:
            status = ok(await mcp.call_tool("get_cluster_status", {"name": "cached", "namespace": namespace}))
            return status["request"] is None

        await eventually(request_gone)
