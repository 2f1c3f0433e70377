"""The gateway as a real stdio subprocess, the way Claude Desktop or VS Code start it."""

from __future__ import annotations

import os
import sys
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from devcluster.controlplane import ControlPlane
from mcp_gateway.registry import offered
from mcp_gateway.tools.catalog import TOOLS
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import ok, unique

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def stdio_server(control_plane: ControlPlane, *flags: str) -> StdioServerParameters:
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}
    return StdioServerParameters(command=sys.executable, args=["-m", "mcp_gateway", *flags], env=env)


async def test_stdio_session_creates_a_role(control_plane: ControlPlane, operator: OperatorProcess,
                                            namespace: str, intents: Intents) -> None:
    role = unique("stdio_user")
    async with Client(stdio_server(control_plane)) as mcp:
        assert len((await mcp.list_tools()).tools) == len(offered(TOOLS))  # default: all but the opt-in toolsets
        ok(await mcp.call_tool("create_postgres_cluster", {"name": "stdio-db", "instances": 1,
                                                           "namespace": namespace}))
        intents.wait_ready("PgClusterRequest", namespace, "stdio-db")
        created = ok(await mcp.call_tool("create_postgres_role", {"cluster_name": "stdio-db", "role_name": role,
                                                                  "namespace": namespace}))
        intents.wait_ready("PgRoleRequest", namespace, created["request"].split("/")[1])
        listed = ok(await mcp.call_tool("list_postgres_roles", {"cluster_name": "stdio-db", "namespace": namespace}))
        assert [r["name"] for r in listed["roles"]] == [role]


async def test_stdio_read_only_offers_only_reads(control_plane: ControlPlane, namespace: str) -> None:
    async with Client(stdio_server(control_plane, "--read-only")) as mcp:
        names: Any = {t.name for t in (await mcp.list_tools()).tools}
        assert names == {"list_postgres_clusters", "get_cluster_status", "list_postgres_roles",
                         "list_postgres_databases", "get_cluster_logs", "get_connection_info",
                         "list_postgres_backups", "run_diagnostic_query", "list_postgres_poolers"}
        result = await mcp.call_tool("create_postgres_cluster", {"name": "nope", "namespace": namespace})
        assert result.is_error
