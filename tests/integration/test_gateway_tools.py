"""All 12 tools end to end through a real MCP client session (in memory), against the real control plane,
the operator, the CNPG simulator and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from kubernetes import client
from mcp import Client
from psycopg import sql

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from devcluster.postgres import PostgresServer
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import (
    as_json,
    database_owner,
    error,
    gateway_server,
    live_cluster,
    ok,
    secret_password,
    text,
    unique,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gateway(control_plane: ControlPlane, operator: OperatorProcess) -> Any:
    return gateway_server(control_plane)


async def test_original_readme_examples_end_to_end(
    gateway: Any, k8s: Any, namespace: str, postgres: PostgresServer, intents: Intents,
    operator_factory: Callable[..., OperatorProcess],
) -> None:
    # "Grant createrole" below is privileged (issue #8 item 9): this namespace's admin policy allows it
    operator_factory("--all-namespaces", "--allow-privileged-namespace", namespace)
    role, database = unique("app_user"), unique("app_data")
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with Client(gateway) as mcp:
        # "Create a new PostgreSQL cluster named 'app-db' ... with 5 instances and 100Gi storage"
        created = ok(await mcp.call_tool("create_postgres_cluster", {
            "name": "app-db", "instances": 5, "storage_size": "100Gi", "namespace": namespace,
            "wait": True, "timeout": 60}, progress_callback=on_progress))
        assert created["ready"] is True
        assert updates, "progress notifications were sent while waiting"
        assert any("app-db" in (message or "") for _, _, message in updates)
        live = live_cluster(k8s, namespace, "app-db")
        assert live is not None
        assert live["spec"]["instances"] == 5 and live["spec"]["storage"]["size"] == "100Gi"
        request = intents.get("PgClusterRequest", namespace, "app-db")
        assert request is not None
        assert request["metadata"]["annotations"][constants.REQUESTED_BY_ANNOTATION].startswith("local:")

        # "List all PostgreSQL clusters in production namespace" (text and JSON, original field names)
        listing = await mcp.call_tool("list_postgres_clusters", {"namespace": namespace, "format": "json"})
        data = as_json(listing)
        assert data["count"] == 1 and data["scope"] == f"namespace '{namespace}'"
        first = data["clusters"][0]
        assert {"name", "namespace", "instances", "ready_instances", "phase", "current_primary"} <= set(first)
        assert first["ready_instances"] == 5 and first["phase"] == "Cluster in healthy state"
        assert "app-db" in text(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}))

        # "Get detailed status for the main-db cluster"
        status = ok(await mcp.call_tool("get_cluster_status", {
            "name": "app-db", "namespace": namespace, "detail_level": "detailed"}))
        assert status["postgres_version"] == "16" and status["storage_size"] == "100Gi"
        assert status["postgresql_parameters"]["max_connections"] == "100"
        assert status["request"]["ready"] is True
        assert any(e["object"] == "PgClusterRequest/app-db" and e["type"] == "Normal" for e in status["events"])

        # "Create a new role 'app_user' ... with login and createdb privileges"
        role_result = ok(await mcp.call_tool("create_postgres_role", {
            "cluster_name": "app-db", "role_name": role, "login": True, "createdb": True,
            "namespace": namespace}))
        secret = role_result["password_secret"]
        assert secret == f"cnpg-app-db-user-{role.replace('_', '-')}"
        request_name = role_result["request"].split("/")[1]
        intents.wait_ready("PgRoleRequest", namespace, request_name)
        password = secret_password(k8s, namespace, secret)
        assert password not in text(await mcp.call_tool("list_postgres_roles", {
            "cluster_name": "app-db", "namespace": namespace}))
        assert postgres.can_login(role, password)

        roles = as_json(await mcp.call_tool("list_postgres_roles", {
            "cluster_name": "app-db", "namespace": namespace, "format": "json"}))
        assert roles["cluster"] == f"{namespace}/app-db" and roles["count"] == 1
        listed = roles["roles"][0]
        assert listed["name"] == role and listed["createdb"] is True and listed["password_secret"] == secret
        assert listed["status"]["ready"] is True

        # "Create a new database 'app_data' owned by 'app_user'"
        db_result = ok(await mcp.call_tool("create_postgres_database", {
            "cluster_name": "app-db", "database_name": database, "owner": role, "namespace": namespace}))
        intents.wait_ready("PgDatabaseRequest", namespace, db_result["request"].split("/")[1])
        assert database_owner(postgres, database) == role
        databases = as_json(await mcp.call_tool("list_postgres_databases", {
            "cluster_name": "app-db", "namespace": namespace, "format": "json"}))
        assert databases["count"] == 1
        assert databases["databases"][0]["database_name"] == database
        assert databases["databases"][0]["reclaim_policy"] == "retain"

        # "Grant createrole to app_user"; a password rotation changes the Secret, and the new one works.
        # createrole is privileged: the caller acknowledges it (privileged=true) after a coded refusal.
        grant = {"cluster_name": "app-db", "role_name": role, "createrole": True, "reset_password": True,
                 "namespace": namespace}
        error(await mcp.call_tool("update_postgres_role", grant), "PRIVILEGE_ACK_REQUIRED")
        ok(await mcp.call_tool("update_postgres_role", {**grant, "privileged": True}))
        updated = intents.wait_for("PgRoleRequest", namespace, request_name,
                                   lambda o: o["spec"].get("createrole") is True, "updated")
        intents.wait_ready("PgRoleRequest", namespace, request_name)
        assert updated["spec"]["password"]["rotation"]
        new_password = secret_password(k8s, namespace, secret)
        assert new_password != password

        # "Scale the app-db cluster to 3 instances"
        scaled = ok(await mcp.call_tool("scale_postgres_cluster", {
            "name": "app-db", "instances": 3, "namespace": namespace}))
        assert scaled["current_instances"] == 5 and scaled["adopted"] is False
        intents.wait_ready("PgClusterRequest", namespace, "app-db")
        live_after = live_cluster(k8s, namespace, "app-db")
        assert live_after is not None and live_after["spec"]["instances"] == 3

        # "Delete the old_data database", "Delete the old_user role"
        ok(await mcp.call_tool("delete_postgres_database", {
            "cluster_name": "app-db", "database_name": database, "namespace": namespace}))
        intents.wait_gone("PgDatabaseRequest", namespace, db_result["request"].split("/")[1])
        assert database_owner(postgres, database) == role  # retain: the data stays
        ok(await mcp.call_tool("delete_postgres_role", {
            "cluster_name": "app-db", "role_name": role, "namespace": namespace}))
        # The retained database still belongs to the role: the drop is blocked, and the tools say why.
        intents.wait_reason("PgRoleRequest", namespace, request_name, "Blocked")
        blocked = as_json(await mcp.call_tool("list_postgres_roles", {
            "cluster_name": "app-db", "namespace": namespace, "format": "json"}))
        assert "owner of database" in blocked["roles"][0]["status"]["message"]
        assert postgres.can_login(role, new_password)
        with psycopg.connect(postgres.superuser_dsn(), autocommit=True) as connection:
            connection.execute(sql.SQL("drop database {}").format(sql.Identifier(database)))
        intents.wait_gone("PgRoleRequest", namespace, request_name, timeout=90)
        assert not postgres.can_login(role, new_password)

        # "Delete the old-test-cluster with confirmation": first without, nothing happens
        refused = ok(await mcp.call_tool("delete_postgres_cluster", {"name": "app-db", "namespace": namespace}))
        assert refused["deleted"] is False
        assert live_cluster(k8s, namespace, "app-db") is not None
        deleted = ok(await mcp.call_tool("delete_postgres_cluster", {
            "name": "app-db", "namespace": namespace, "confirm_deletion": True}))
        assert deleted["deleted"] is True
        intents.wait_gone("PgClusterRequest", namespace, "app-db")
        assert live_cluster(k8s, namespace, "app-db") is None


async def test_dry_runs_create_nothing(gateway: Any, k8s: Any, namespace: str, intents: Intents) -> None:
    async with Client(gateway) as mcp:
        preview = ok(await mcp.call_tool("create_postgres_cluster", {
            "name": "preview-db", "instances": 2, "namespace": namespace, "dry_run": True}))
        assert preview["manifest"]["spec"]["instances"] == 2
        assert intents.get("PgClusterRequest", namespace, "preview-db") is None
        assert live_cluster(k8s, namespace, "preview-db") is None

        ok(await mcp.call_tool("create_postgres_cluster", {"name": "real-db", "instances": 1, "namespace": namespace}))
        intents.wait_ready("PgClusterRequest", namespace, "real-db")
        previews: list[tuple[str, dict[str, Any]]] = [
            ("scale_postgres_cluster", {"name": "real-db", "instances": 4}),
            ("delete_postgres_cluster", {"name": "real-db", "confirm_deletion": True}),
            ("create_postgres_role", {"cluster_name": "real-db", "role_name": "dry_role"}),
            ("create_postgres_database", {"cluster_name": "real-db", "database_name": "dry_db", "owner": "app"}),
        ]
        for tool, arguments in previews:
            ok(await mcp.call_tool(tool, {**arguments, "namespace": namespace, "dry_run": True}))
        live = live_cluster(k8s, namespace, "real-db")
        assert live is not None and live["spec"]["instances"] == 1
        assert intents.list_all("PgRoleRequest", namespace) == []
        assert intents.list_all("PgDatabaseRequest", namespace) == []
        assert intents.get("PgClusterRequest", namespace, "real-db") is not None


async def test_failures_are_tool_errors_with_codes(gateway: Any, namespace: str) -> None:
    async with Client(gateway) as mcp:
        assert (await mcp.call_tool("create_postgres_cluster", {"name": "x", "instances": 11,
                                                                "namespace": namespace})).is_error
        assert (await mcp.call_tool("create_postgres_cluster", {"name": "Bad_Name", "namespace": namespace})).is_error
        error(await mcp.call_tool("get_cluster_status", {"name": "missing", "namespace": namespace}), "NOT_FOUND")
        error(await mcp.call_tool("create_postgres_role", {"cluster_name": "missing", "role_name": "r",
                                                           "namespace": namespace}), "NOT_FOUND")
        message = error(await mcp.call_tool("update_postgres_role", {
            "cluster_name": "missing", "role_name": "r", "password": "hunter2", "namespace": namespace}),
            "PASSWORD_NOT_ACCEPTED")
        assert "hunter2" not in message and "reset_password" in message
        error(await mcp.call_tool("delete_postgres_role", {"cluster_name": "missing", "role_name": "r",
                                                           "namespace": namespace}), "NOT_FOUND")
        error(await mcp.call_tool("list_postgres_roles", {"cluster_name": "missing", "namespace": "Not_A_NS"}),
              "INVALID_ARGUMENT")


async def test_namespace_allow_list(control_plane: ControlPlane, operator: OperatorProcess, namespace: str) -> None:
    restricted = gateway_server(control_plane, namespace_allow=("somewhere-else",))
    async with Client(restricted) as mcp:
        error(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}), "NAMESPACE_NOT_ALLOWED")


async def test_unmanaged_cluster_is_adopted_on_scale(
    gateway: Any, k8s: Any, namespace: str, intents: Intents
) -> None:
    custom = client.CustomObjectsApi(k8s)
    custom.create_namespaced_custom_object(constants.CNPG_GROUP, constants.CNPG_VERSION, namespace,
                                           constants.CNPG_CLUSTERS, {
        "apiVersion": constants.CNPG_API_VERSION, "kind": "Cluster", "metadata": {"name": "legacy"},
        "spec": {"instances": 1, "storage": {"size": "1Gi"},
                 "postgresql": {"parameters": {"work_mem": "8MB"}}},
    })
    # As stored: CNPG's defaulting webhook adds its own parameters next to work_mem.
    created = live_cluster(k8s, namespace, "legacy")
    assert created is not None and created["spec"]["postgresql"]["parameters"]["work_mem"] == "8MB"
    async with Client(gateway) as mcp:
        scaled = ok(await mcp.call_tool("scale_postgres_cluster", {
            "name": "legacy", "instances": 2, "namespace": namespace}))
        assert scaled["adopted"] is True
    request = intents.wait_ready("PgClusterRequest", namespace, "legacy")
    assert request["spec"]["adoptExisting"] is True and request["spec"]["deletionPolicy"] == "Retain"
    live = live_cluster(k8s, namespace, "legacy")
    assert live is not None
    assert live["spec"]["instances"] == 2
    # Nothing else touched by the adoption.
    assert live["spec"]["postgresql"]["parameters"] == created["spec"]["postgresql"]["parameters"]
