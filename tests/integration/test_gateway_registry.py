"""The registry through real MCP clients: every tool's structuredContent validates against the outputSchema it
publishes, and --toolsets / --read-only / --disable-destructive decide what a client is offered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from mcp import Client

from devcluster.controlplane import ControlPlane
from devcluster.postgres import PostgresServer
from mcp_gateway.registry import TOOLSETS
from mcp_gateway.tools.catalog import TOOLS
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import error, gateway_server, ok, secret_password, unique
from tests.integration.test_gateway_stdio import stdio_server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Checked:
    """Calls tools and validates each structured result against the tool's published outputSchema."""

    def __init__(self, mcp: Client, schemas: dict[str, dict[str, Any]]) -> None:
        self.mcp, self.schemas, self.called = mcp, schemas, set[str]()

    async def __call__(self, tool: str, **arguments: Any) -> dict[str, Any]:
        data = ok(await self.mcp.call_tool(tool, arguments))
        jsonschema.validate(data, self.schemas[tool])
        self.called.add(tool)
        return data


async def test_every_tool_output_validates_against_its_output_schema(
    control_plane: ControlPlane, operator: OperatorProcess, namespace: str, intents: Intents, k8s: Any,
    postgres: PostgresServer, tmp_path: Path,
) -> None:
    role, database, ns = unique("schema_user"), unique("schema_data"), {"namespace": namespace}
    async with Client(gateway_server(control_plane, toolsets=TOOLSETS, sql_credentials_dir=tmp_path)) as mcp:
        listed = (await mcp.list_tools()).tools
        assert all(t.title and t.output_schema and t.annotations for t in listed)
        call = Checked(mcp, {t.name: t.output_schema or {} for t in listed})

        await call("list_postgres_clusters", **ns)
        await call("create_postgres_cluster", name="schema-db", instances=1, dry_run=True, **ns)
        assert (await call("create_postgres_cluster", name="schema-db", instances=1, wait=True, timeout=60,
                           **ns))["ready"] is True
        await call("create_postgres_cluster", name="schema-pending", instances=1, **ns)
        for detail_level in ("concise", "detailed"):
            await call("list_postgres_clusters", detail_level=detail_level, format="json", **ns)
            await call("get_cluster_status", name="schema-db", detail_level=detail_level, **ns)
        await call("scale_postgres_cluster", name="schema-db", instances=2, dry_run=True, **ns)
        await call("scale_postgres_cluster", name="schema-db", instances=2, **ns)
        await call("get_cluster_logs", name="schema-db", **ns)
        await call("get_cluster_logs", name="schema-db", level="error", contains="x", tail_lines=5, format="json", **ns)

        await call("create_postgres_role", cluster_name="schema-db", role_name=role, dry_run=True, **ns)
        created = await call("create_postgres_role", cluster_name="schema-db", role_name=role, **ns)
        intents.wait_ready("PgRoleRequest", namespace, created["request"].split("/")[1])
        await call("list_postgres_roles", cluster_name="schema-db", **ns)
        login = await call("get_connection_info", name="schema-db", role=role, **ns)
        # Read-only SQL, here as the role just created (the operator's read-only role is tested elsewhere).
        (tmp_path / f"{namespace}.schema-db.json").write_text(json.dumps({
            "host": postgres.host, "port": postgres.port, "dbname": login["database"], "user": login["user"],
            "password": secret_password(k8s, namespace, login["password_secret"]), "sslmode": "prefer"}))
        await call("run_readonly_query", cluster_name="schema-db", sql="SELECT 1 AS one, now() AS at", **ns)
        await call("run_readonly_query", cluster_name="schema-db", sql="SHOW work_mem", max_rows=1, format="json",
                   **ns)
        await call("run_diagnostic_query", cluster_name="schema-db", check="connections_by_state", **ns)
        await call("update_postgres_role", cluster_name="schema-db", role_name=role, login=True, **ns)
        await call("update_postgres_role", cluster_name="schema-db", role_name=role, createdb=True,
                   reset_password=True, **ns)

        await call("create_postgres_database", cluster_name="schema-db", database_name=database, owner=role,
                   dry_run=True, **ns)
        made = await call("create_postgres_database", cluster_name="schema-db", database_name=database, owner=role,
                          reclaim_policy="delete", **ns)
        intents.wait_ready("PgDatabaseRequest", namespace, made["request"].split("/")[1])
        await call("list_postgres_databases", cluster_name="schema-db", **ns)
        await call("delete_postgres_database", cluster_name="schema-db", database_name=database, dry_run=True, **ns)
        await call("delete_postgres_database", cluster_name="schema-db", database_name=database, **ns)
        await call("delete_postgres_role", cluster_name="schema-db", role_name=role, dry_run=True, **ns)
        await call("delete_postgres_role", cluster_name="schema-db", role_name=role, **ns)

        store = {"cluster_name": "schema-db", "destination_path": "s3://backups/schema", "credentials_secret": "creds"}
        await call("configure_postgres_backups", dry_run=True, **store, **ns)
        await call("configure_postgres_backups", **store, **ns)
        await call("create_postgres_backup", cluster_name="schema-db", dry_run=True, **ns)
        await call("create_postgres_backup", cluster_name="schema-db", wait=True, timeout=60, **ns)
        await call("schedule_postgres_backup", cluster_name="schema-db", schedule="0 0 2 * * *", dry_run=True, **ns)
        await call("schedule_postgres_backup", cluster_name="schema-db", schedule="0 0 2 * * *", **ns)
        await call("list_postgres_backups", cluster_name="schema-db", format="json", **ns)
        await call("restore_postgres_cluster", name="schema-copy", source_cluster="schema-db", dry_run=True, **ns)
        await call("restore_postgres_cluster", name="schema-copy", source_cluster="schema-db", **ns)
        await call("delete_postgres_backup_schedule", cluster_name="schema-db", dry_run=True, **ns)
        await call("delete_postgres_backup_schedule", cluster_name="schema-db", **ns)
        await call("configure_postgres_backups", archiving=False, **store, **ns)

        # Configuration, poolers and operations (issue #12): previews and one real call of each kind.
        await call("update_postgres_cluster", name="schema-db", parameters={"work_mem": "8MB"}, dry_run=True, **ns)
        await call("update_postgres_cluster", name="schema-db", parameters={"work_mem": "8MB"}, **ns)
        pooler = {"name": "schema-db-pooler", **ns}
        await call("create_postgres_pooler", cluster_name="schema-db", dry_run=True, **pooler)
        await call("create_postgres_pooler", cluster_name="schema-db", **pooler)
        await call("list_postgres_poolers", cluster_name="schema-db", **ns)
        await call("update_postgres_pooler", instances=2, dry_run=True, **pooler)
        await call("update_postgres_pooler", instances=2, **pooler)
        await call("delete_postgres_pooler", dry_run=True, **pooler)
        await call("delete_postgres_pooler", confirm_deletion=True, **pooler)
        await call("reload_postgres_cluster", name="schema-db", dry_run=True, **ns)
        await call("reload_postgres_cluster", name="schema-db", wait=True, timeout=60, **ns)
        await call("switchover_postgres_cluster", name="schema-db", dry_run=True, **ns)
        await call("restart_postgres_cluster", name="schema-db", dry_run=True, **ns)
        await call("fence_postgres_instance", name="schema-db", instance="schema-db-2", dry_run=True, **ns)
        await call("rebuild_postgres_replica", name="schema-db", instance="schema-db-2", dry_run=True, **ns)
        await call("hibernate_postgres_cluster", name="schema-db", dry_run=True, **ns)

        await call("delete_postgres_cluster", name="schema-db", dry_run=True, **ns)
        assert (await call("delete_postgres_cluster", name="schema-db", **ns))["deleted"] is False  # unconfirmed
        assert (await call("delete_postgres_cluster", name="schema-db", confirm_deletion=True, **ns))["deleted"]
    assert call.called == {spec.name for spec in TOOLS}


async def test_toolsets_and_read_only_in_memory(control_plane: ControlPlane, namespace: str) -> None:
    async with Client(gateway_server(control_plane, toolsets=("clusters", "databases"), read_only=True)) as mcp:
        assert {t.name for t in (await mcp.list_tools()).tools} == {
            "list_postgres_clusters", "get_cluster_status", "get_connection_info", "list_postgres_databases"}
        ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}))
        error(await mcp.call_tool("list_postgres_roles", {"cluster_name": "x", "namespace": namespace}), "NOT_FOUND")


async def test_toolsets_and_disable_destructive_over_stdio(control_plane: ControlPlane, namespace: str) -> None:
    async with Client(stdio_server(control_plane, "--toolsets", "roles,clusters", "--disable-destructive")) as mcp:
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert set(tools) == {"list_postgres_clusters", "get_cluster_status", "get_connection_info",
                              "create_postgres_cluster", "list_postgres_roles", "create_postgres_role"}
        assert not any(t.annotations and t.annotations.destructive_hint for t in tools.values())
        message = error(await mcp.call_tool("scale_postgres_cluster", {"name": "db", "instances": 2,
                                                                       "namespace": namespace}), "NOT_FOUND")
        assert "--disable-destructive" in message
        # SDK argument validation is coded too, over a real transport.
        error(await mcp.call_tool("get_cluster_status", {"name": "Bad_Name", "namespace": namespace}),
              "INVALID_ARGUMENT")
