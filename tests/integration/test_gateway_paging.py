"""The list tools answer in bounded pages: `limit`, `continue`, the total (and, for clusters, a count per
phase): issue #14, 5,000 clusters must not come back as megabytes of text. Bare Clusters and intents on the
real control plane, read through a real MCP client; no operator or simulator is needed to list them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from kubernetes import client
from mcp import Client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from mcp_gateway.tools.paging import DEFAULT_LIMIT
from tests.integration.conftest import Intents
from tests.integration.gateway_helpers import error, gateway_server, ok, text

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_clusters(k8s: Any, namespace: str, names: list[str]) -> None:
    custom = client.CustomObjectsApi(k8s)

    def create(name: str) -> None:
        custom.create_namespaced_custom_object(
            constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS,
            {"apiVersion": constants.CNPG_API_VERSION, "kind": "Cluster", "metadata": {"name": name},
             "spec": {"instances": 1, "storage": {"size": "1Gi"}}})

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, names))


async def test_pages_walk_every_cluster_once_in_name_order(control_plane: ControlPlane, k8s: Any,
                                                           namespace: str) -> None:
    names = [f"pg-{index:02d}" for index in range(8)]
    make_clusters(k8s, namespace, list(reversed(names)))
    seen: list[str] = []
    token: str | None = None
    async with Client(gateway_server(control_plane)) as mcp:
        for _ in range(5):
            arguments: dict[str, Any] = {"namespace": namespace, "limit": 3}
            if token:
                arguments["continue"] = token
            answer = ok(await mcp.call_tool("list_postgres_clusters", arguments))
            assert answer["total"] == 8 and sum(answer["phases"].values()) == 8
            assert answer["count"] == len(answer["clusters"]) <= 3
            seen += [c["name"] for c in answer["clusters"]]
            token = answer.get("continue")
            if token is None:
                break
            assert f"continue={token!r}" in text(await mcp.call_tool("list_postgres_clusters", arguments))
    assert seen == names


async def test_default_answer_is_one_bounded_page(control_plane: ControlPlane, k8s: Any, namespace: str) -> None:
    names = [f"pg-{index:03d}" for index in range(DEFAULT_LIMIT + 5)]
    make_clusters(k8s, namespace, names)
    async with Client(gateway_server(control_plane)) as mcp:
        first = await mcp.call_tool("list_postgres_clusters", {"namespace": namespace})  # the original's arguments
        answer = ok(first)
        assert [c["name"] for c in answer["clusters"]] == names[:DEFAULT_LIMIT]
        assert answer["total"] == len(names) and answer["continue"] == names[DEFAULT_LIMIT - 1]
        assert f"Found {len(names)} PostgreSQL cluster(s)" in text(first)
        rest = ok(await mcp.call_tool("list_postgres_clusters", {
            "namespace": namespace, "format": "json", "continue": answer["continue"]}))
        assert [c["name"] for c in rest["clusters"]] == names[DEFAULT_LIMIT:] and "continue" not in rest


async def test_small_namespace_lists_everything_without_a_token(control_plane: ControlPlane, k8s: Any,
                                                                namespace: str) -> None:
    make_clusters(k8s, namespace, ["only"])
    async with Client(gateway_server(control_plane)) as mcp:
        answer = ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace, "format": "json"}))
    assert answer["count"] == answer["total"] == 1 and "continue" not in answer


async def test_bad_paging_arguments_are_coded_errors(control_plane: ControlPlane, namespace: str) -> None:
    async with Client(gateway_server(control_plane)) as mcp:
        error(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace, "continue": "not a token"}),
              "INVALID_ARGUMENT")
        refused = await mcp.call_tool("list_postgres_clusters", {"namespace": namespace, "limit": 0})
        assert refused.is_error


async def walk(mcp: Any, tool: str, arguments: dict[str, Any], key: str, field: str) -> list[str]:
    """Every entry's `field` over all pages of `tool`, checking each page's count and total."""
    seen: list[str] = []
    token: str | None = None
    for _ in range(10):
        answer = ok(await mcp.call_tool(tool, {**arguments, **({"continue": token} if token else {})}))
        assert answer["count"] == len(answer[key]) <= arguments["limit"]
        seen += [entry[field] for entry in answer[key]]
        token = answer.get("continue")
        if token is None:
            assert answer["total"] == len(seen)
            return seen
    raise AssertionError(f"{tool} did not reach its last page: {seen}")


async def test_roles_and_databases_page_too(control_plane: ControlPlane, k8s: Any, namespace: str,
                                            intents: Intents) -> None:
    make_clusters(k8s, namespace, ["app"])
    roles = [f"role_{index}" for index in range(5)]
    for role in reversed(roles):
        intents.create("PgRoleRequest", namespace, role.replace("_", "-"), {"cluster": "app", "roleName": role})
        intents.create("PgDatabaseRequest", namespace, f"db-{role[-1]}",
                       {"cluster": "app", "name": f"db_{role[-1]}", "owner": role})
    async with Client(gateway_server(control_plane)) as mcp:
        arguments = {"cluster_name": "app", "namespace": namespace, "limit": 2}
        assert await walk(mcp, "list_postgres_roles", arguments, "roles", "name") == roles
        assert await walk(mcp, "list_postgres_databases", arguments, "databases", "crd_name") == [
            f"db-{index}" for index in range(5)]
        everything = ok(await mcp.call_tool("list_postgres_roles", {"cluster_name": "app", "namespace": namespace}))
        assert everything["count"] == everything["total"] == 5 and "continue" not in everything
