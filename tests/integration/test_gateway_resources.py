"""Resources, prompts and completions through a real MCP client, against the control plane and the CNPG
simulator: a cluster's digest and logs as resources, completion of its name, prompts that name the tools."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp import Client
from mcp.types import PromptReference, ResourceTemplateReference

from devcluster.controlplane import ControlPlane
from tests.integration.gateway_helpers import gateway_server
from tests.integration.test_cnpg_simulator import create_cluster, unique, wait_healthy
from tests.integration.test_simulator_pods_logs import wait_pods

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("cnpg_simulator")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_cluster_resources_completions_and_prompts(control_plane: ControlPlane, k8s: Any,
                                                         namespace: str) -> None:
    for name in ("orders-a", "orders-b", "billing"):
        create_cluster(k8s, namespace, name, instances=1, database=unique(name.replace("-", "_")))
    wait_healthy(k8s, namespace, "orders-a")
    wait_pods(k8s, namespace, "orders-a", {"orders-a-1"})
    async with Client(gateway_server(control_plane)) as mcp:
        templates = {t.uri_template for t in (await mcp.list_resource_templates()).resource_templates}
        assert templates == {"cnpg://{namespace}/{cluster}/status", "cnpg://{namespace}/{cluster}/logs"}

        status = (await mcp.read_resource(f"cnpg://{namespace}/orders-a/status")).contents[0]
        digest = json.loads(getattr(status, "text", ""))
        assert digest["name"] == "orders-a" and digest["verdict"].startswith("healthy: 1/1 instances ready")
        logs = getattr((await mcp.read_resource(f"cnpg://{namespace}/orders-a/logs")).contents[0], "text", "")
        assert logs.startswith(f"Logs of cluster {namespace}/orders-a — instances: orders-a-1 (primary)")
        assert "database system is ready to accept connections" in logs

        completed = await mcp.complete(ResourceTemplateReference(type="ref/resource",
                                                                 uri="cnpg://{namespace}/{cluster}/status"),
                                       {"name": "cluster", "value": "ord"}, {"namespace": namespace})
        assert completed.completion.values == ["orders-a", "orders-b"]
        prompt_names = await mcp.complete(PromptReference(type="ref/prompt", name="diagnose_cluster"),
                                          {"name": "cluster", "value": "b"}, {"namespace": namespace})
        assert prompt_names.completion.values == ["billing"]

        assert {p.name for p in (await mcp.list_prompts()).prompts} == {
            "diagnose_cluster", "prepare_major_upgrade", "plan_pitr"}
        prompt = await mcp.get_prompt("diagnose_cluster", {"cluster": "orders-a", "namespace": namespace})
        said = getattr(prompt.messages[0].content, "text", "")
        assert f'get_cluster_status(name="orders-a", namespace="{namespace}")' in said
        assert "get_cluster_logs(" in said
        upgrade = await mcp.get_prompt("prepare_major_upgrade", {"cluster": "orders-a", "target_version": "17"})
        assert "PostgreSQL 17" in getattr(upgrade.messages[0].content, "text", "")
        pitr = await mcp.get_prompt("plan_pitr", {"cluster": "orders-a", "target_time": "2026-01-01T00:00:00Z"})
        assert "NEW cluster" in getattr(pitr.messages[0].content, "text", "")

    async with Client(gateway_server(control_plane, toolsets=("clusters",))) as narrow:
        templates = {t.uri_template for t in (await narrow.list_resource_templates()).resource_templates}
        assert templates == {"cnpg://{namespace}/{cluster}/status"}  # no logs without the diagnostics toolset
