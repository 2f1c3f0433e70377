"""The tools/list of each configuration is part of the public contract: compared with checked-in snapshots
(one file per configuration, and one per tool in tests/snapshots/tools/<name>.json).

Regenerate after an intended change:
    CNPG_MCP_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/unit/test_gateway_tools_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio
import pytest
from kubernetes import client
from mcp import Client

from mcp_gateway.config import GatewayConfig
from mcp_gateway.k8s import Kube
from mcp_gateway.registry import TOOLSETS
from mcp_gateway.server import build_server

SNAPSHOTS = Path(__file__).resolve().parent.parent / "snapshots"
ORIGINAL_TOOLS = {
    "list_postgres_clusters", "get_cluster_status", "create_postgres_cluster", "scale_postgres_cluster",
    "delete_postgres_cluster", "list_postgres_roles", "create_postgres_role", "update_postgres_role",
    "delete_postgres_role", "list_postgres_databases", "create_postgres_database", "delete_postgres_database",
}
DIAGNOSIS_TOOLS = {"get_cluster_logs", "get_connection_info", "run_diagnostic_query"}  # issue #13: read-only
SQL_TOOLS = {"run_readonly_query"}  # issue #13: offered only with --toolsets sql
BACKUP_TOOLS = {"configure_postgres_backups", "create_postgres_backup", "list_postgres_backups",  # issue #11
                "schedule_postgres_backup", "delete_postgres_backup_schedule", "restore_postgres_cluster"}
POOLER_TOOLS = {"list_postgres_poolers", "create_postgres_pooler", "update_postgres_pooler", "delete_postgres_pooler"}
CONFIGURATION_TOOLS = {"update_postgres_cluster"}  # issue #12: destructive (restarts, major upgrades)
OPERATION_TOOLS = {"switchover_postgres_cluster", "restart_postgres_cluster", "reload_postgres_cluster",
                   "hibernate_postgres_cluster", "fence_postgres_instance", "rebuild_postgres_replica"}  # issue #12
ALL_TOOLS = ORIGINAL_TOOLS | DIAGNOSIS_TOOLS | BACKUP_TOOLS | POOLER_TOOLS | CONFIGURATION_TOOLS | OPERATION_TOOLS
EVERY_TOOLSET = GatewayConfig(toolsets=TOOLSETS)


def tools_list(config: GatewayConfig) -> list[dict[str, Any]]:
    server = build_server(config, Kube(client.ApiClient()))  # no API call is made to list tools

    async def run() -> list[dict[str, Any]]:
        async with Client(server) as mcp:
            listed = await mcp.list_tools()
        return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in listed.tools]

    return sorted(anyio.run(run), key=lambda t: str(t["name"]))


@pytest.mark.parametrize(("snapshot", "config"), [
    ("tools_list_default.json", GatewayConfig()),
    ("tools_list_read_only.json", GatewayConfig(read_only=True)),
])
def test_tools_list_matches_snapshot(snapshot: str, config: GatewayConfig) -> None:
    current = tools_list(config)
    path = SNAPSHOTS / snapshot
    if os.environ.get("CNPG_MCP_UPDATE_SNAPSHOTS"):
        path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(path.read_text()), f"tools/list changed; see the docstring to regenerate {path}"


@pytest.mark.parametrize("name", sorted(ALL_TOOLS | SQL_TOOLS))
def test_tool_entry_matches_its_snapshot(name: str) -> None:
    current = {t["name"]: t for t in tools_list(EVERY_TOOLSET)}[name]
    path = SNAPSHOTS / "tools" / f"{name}.json"
    if os.environ.get("CNPG_MCP_UPDATE_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(path.read_text()), f"{name} changed; see the docstring to regenerate {path}"


def test_every_original_tool_with_explicit_annotations() -> None:
    assert {t["name"] for t in tools_list(GatewayConfig())} == ALL_TOOLS
    tools = {t["name"]: t for t in tools_list(EVERY_TOOLSET)}
    assert set(tools) == ALL_TOOLS | SQL_TOOLS
    for tool in tools.values():
        hints = tool["annotations"]
        assert {"readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint"} <= set(hints), tool["name"]
        assert hints["readOnlyHint"] == tool["name"].startswith(("list_", "get_", "run_"))
        # Only the SQL tools reach outside Kubernetes objects (PostgreSQL's data): open world.
        assert hints["openWorldHint"] == tool["name"].startswith("run_")
    assert tools["delete_postgres_cluster"]["annotations"]["destructiveHint"] is True


def test_read_only_and_no_destructive_configurations() -> None:
    assert {t["name"] for t in tools_list(GatewayConfig(read_only=True))} == {
        "list_postgres_clusters", "get_cluster_status", "list_postgres_roles", "list_postgres_databases",
        *DIAGNOSIS_TOOLS, "list_postgres_backups", "list_postgres_poolers"}
    names = {t["name"] for t in tools_list(GatewayConfig(disable_destructive=True))}
    assert not any(name.startswith("delete_") for name in names)
    assert "create_postgres_role" in names
    # Scaling (down removes instances) and role updates (revoking, rotating) are annotated destructive.
    assert not names & {"scale_postgres_cluster", "update_postgres_role"}
    # Turning WAL archiving off (configure_postgres_backups archiving=false) ends point-in-time recovery.
    assert "configure_postgres_backups" not in names and "restore_postgres_cluster" in names
    # Pooler updates (pause holds every client; fewer instances cut connections) are destructive too.
    assert "create_postgres_pooler" in names and "update_postgres_pooler" not in names
    assert "update_postgres_cluster" not in names


def test_original_parameter_names_and_defaults() -> None:
    tools = {t["name"]: t["inputSchema"]["properties"] for t in tools_list(GatewayConfig())}
    create = tools["create_postgres_cluster"]
    assert {k: create[k].get("default") for k in ("instances", "storage_size", "postgres_version", "wait",
                                                  "dry_run")} == {
        "instances": 3, "storage_size": "10Gi", "postgres_version": "16", "wait": False, "dry_run": False}
    assert create["instances"]["maximum"] == 10 and create["instances"]["minimum"] == 1
    assert tools["delete_postgres_cluster"]["confirm_deletion"]["default"] is False
    assert tools["create_postgres_database"]["reclaim_policy"]["default"] == "retain"
    assert tools["list_postgres_clusters"]["format"]["default"] == "text"
    assert tools["get_cluster_status"]["detail_level"]["default"] == "concise"
    assert "ctx" not in create
