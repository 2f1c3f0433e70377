"""Gateway trust boundaries against the real API server: no `system:` identities, bounded watch mirrors,
cheap /readyz, and coded retryable errors when the API server cannot be reached."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from kubernetes import client
from mcp import Client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane, free_port, write_kubeconfig
from mcp_gateway import errors
from mcp_gateway.config import GatewayConfig
from mcp_gateway.k8s import Kube
from mcp_gateway.server import build_server
from tests.integration.conftest import Intents
from tests.integration.gateway_helpers import bind_intent_editor, error, ok
from tests.integration.test_gateway_http import AUDIENCE, ISSUER, jwks_url, mint, rsa_key, serve, session

pytestmark = pytest.mark.anyio
__all__ = ["jwks_url", "rsa_key"]  # fixtures shared with test_gateway_http
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def refused(url: str, token: str) -> None:
    async with httpx2.AsyncClient() as http:
        answer = await http.post(f"{url}/mcp", json=TOOLS_LIST,
                                 headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"})
    assert answer.status_code == 403, answer.text
    body = answer.json()
    assert body["error"] == errors.IDENTITY_REFUSED and "system:" in body["error_description"], body


async def test_static_tokens_never_become_system_identities(
    control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path, intents: Intents
) -> None:
    """`system:masters` in a token would make an impersonating gateway cluster-admin: refused, 403, coded."""
    bind_intent_editor(k8s, namespace, "token:dba")
    tokens = tmp_path / "tokens"
    tokens.write_text("root-token,mallory,system:masters\n"
                      "sa-token,system:serviceaccount:kube-system:default\n"
                      "alice-token,alice,dba\n"
                      "dba-named-token,dba-fan,everyone\n")
    config = GatewayConfig(transport="http", port=free_port(), token_file=tokens, impersonate=True)
    async for url in serve(config, control_plane):
        await refused(url, "root-token")
        await refused(url, "sa-token")
        async with session(url, "alice-token") as mcp:
            ok(await mcp.call_tool("create_postgres_cluster", {"name": "pfx-db", "instances": 1,
                                                               "namespace": namespace, "dry_run": False}))
        async with session(url, "dba-named-token") as mcp:  # the prefix is what RBAC sees: "token:everyone"
            message = error(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}), "FORBIDDEN")
            assert "token:dba-fan" in message
    created = intents.get("PgClusterRequest", namespace, "pfx-db")
    assert created is not None
    assert created["metadata"]["annotations"][constants.REQUESTED_BY_ANNOTATION] == "token:alice"


async def test_oidc_tokens_never_become_system_identities(
    control_plane: ControlPlane, k8s: Any, namespace: str, rsa_key: rsa.RSAPrivateKey, jwks_url: str,
    intents: Intents,
) -> None:
    bind_intent_editor(k8s, namespace, "oidc:dba")
    config = GatewayConfig(transport="http", port=free_port(), oidc_issuer=ISSUER, oidc_audience=AUDIENCE,
                           oidc_jwks_url=jwks_url, impersonate=True)
    async for url in serve(config, control_plane):
        await refused(url, mint(rsa_key, groups=["dba", "system:masters"]))
        await refused(url, mint(rsa_key, sub="system:serviceaccount:cnpg-mcp:cnpg-mcp-gateway"))
        await refused(url, mint(rsa_key, sub="system:admin"))
        async with session(url, mint(rsa_key, sub="carol", groups=["dba"])) as mcp:
            ok(await mcp.call_tool("create_postgres_cluster", {"name": "oidc-db", "instances": 1,
                                                               "namespace": namespace}))
        async with session(url, mint(rsa_key, sub="dave", groups=["oidc:dba"])) as mcp:
            # a token cannot pick its own prefixed name: "oidc:oidc:dba" is not bound
            error(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}), "FORBIDDEN")
    created = intents.get("PgClusterRequest", namespace, "oidc-db")
    assert created is not None
    assert created["metadata"]["annotations"][constants.REQUESTED_BY_ANNOTATION] == "oidc:carol"


# ---------------------------------------------------------------- bounded watch mirrors
@pytest.fixture
def other_namespace(k8s: Any, namespace: str) -> Iterator[str]:
    core = client.CoreV1Api(k8s)
    name = f"{namespace[:55]}-other"
    core.create_namespace({"metadata": {"name": name, "labels": {"cnpg-mcp.io/test": "true"}}})
    yield name
    core.delete_namespace(name)


def cached_kube(control_plane: ControlPlane, **bounds: Any) -> Kube:
    return Kube.connect(str(control_plane.kubeconfig), watch_cache=True, **bounds)


async def wait_until(check: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        await anyio.sleep(0.05)


async def test_made_up_namespace_starts_no_watch(control_plane: ControlPlane, namespace: str) -> None:
    kube = cached_kube(control_plane)
    assert kube.cache is not None
    server = build_server(GatewayConfig(kubeconfig=str(control_plane.kubeconfig), watch_cache=True), kube)
    async with Client(server) as mcp:
        for made_up in ("made-up-1", "made-up-2", "made-up-3"):
            message = error(await mcp.call_tool("list_postgres_clusters", {"namespace": made_up}),
                            errors.NAMESPACE_NOT_FOUND)
            assert made_up in message
            error(await mcp.call_tool("get_cluster_status", {"name": "x", "namespace": made_up}),
                  errors.NAMESPACE_NOT_FOUND)
        assert kube.cache.running_keys() == []
        ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}))
        assert {key[3] for key in kube.cache.running_keys()} == {namespace}
    kube.close()


async def test_namespaces_outside_the_allow_list_start_no_watch(control_plane: ControlPlane, namespace: str,
                                                                other_namespace: str) -> None:
    kube = cached_kube(control_plane)
    assert kube.cache is not None
    server = build_server(GatewayConfig(kubeconfig=str(control_plane.kubeconfig), watch_cache=True,
                                        namespace_allow=(namespace,)), kube)
    async with Client(server) as mcp:
        error(await mcp.call_tool("list_postgres_clusters", {"namespace": other_namespace}),
              errors.NAMESPACE_NOT_ALLOWED)
        assert kube.cache.running_keys() == []
    kube.close()


async def test_the_cap_evicts_the_least_recently_read_and_stops_its_watch(
    control_plane: ControlPlane, namespace: str, other_namespace: str
) -> None:
    kube = cached_kube(control_plane, max_mirrors=2)  # list_postgres_clusters reads two kinds: one namespace
    assert kube.cache is not None
    server = build_server(GatewayConfig(kubeconfig=str(control_plane.kubeconfig), watch_cache=True), kube)
    async with Client(server) as mcp:
        ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}))
        first = [kube.cache.known(key) for key in kube.cache.running_keys()]
        assert len(first) == 2 and all(m is not None and m.running for m in first)
        ok(await mcp.call_tool("list_postgres_clusters", {"namespace": other_namespace}))
        assert {key[3] for key in kube.cache.running_keys()} == {other_namespace}
        # The evicted mirrors' watch threads end at once, not when their watch would time out.
        await wait_until(lambda: not any(m is not None and m.running for m in first), within=5.0)
        # Reading the first namespace again still works (a new mirror, the other one goes).
        assert ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}))["count"] == 0
        assert {key[3] for key in kube.cache.running_keys()} == {namespace}
    kube.close()


async def test_idle_mirrors_expire(control_plane: ControlPlane, namespace: str) -> None:
    kube = cached_kube(control_plane, idle_seconds=0.5)
    assert kube.cache is not None
    server = build_server(GatewayConfig(kubeconfig=str(control_plane.kubeconfig), watch_cache=True), kube)
    async with Client(server) as mcp:
        ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}))
        mirrors = [kube.cache.known(key) for key in kube.cache.running_keys()]
        assert mirrors
        await wait_until(lambda: kube.cache is not None and kube.cache.running_keys() == [], within=5.0)
        await wait_until(lambda: not any(m is not None and m.running for m in mirrors), within=5.0)
    kube.close()


# ---------------------------------------------------------------- readiness and an unreachable API server
async def test_readyz_makes_no_api_call_per_probe(control_plane: ControlPlane, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("t0ken\n")
    config = GatewayConfig(transport="http", port=free_port(), token_file=tokens)
    checks: list[float] = []
    original = Kube.reachable

    async def counted(self: Kube) -> bool:
        checks.append(time.monotonic())
        return await original(self)

    Kube.reachable = counted  # type: ignore[method-assign]
    try:
        async for url in serve(config, control_plane):
            async with httpx2.AsyncClient() as http:
                answers = [await http.get(f"{url}/readyz") for _ in range(50)]
    finally:
        Kube.reachable = original  # type: ignore[method-assign]
    assert all(a.status_code == 200 and a.json() == {"status": "ok"} for a in answers)
    assert len(checks) == 1, f"{len(checks)} API checks for 50 probes"


@pytest.fixture
def unreachable_kubeconfig(control_plane: ControlPlane, tmp_path: Path) -> Path:
    """A kubeconfig whose API server address has nobody listening."""
    path = tmp_path / "unreachable"
    write_kubeconfig(path, f"https://127.0.0.1:{free_port()}", control_plane.ca_file, "token")
    return path


@pytest.mark.parametrize("watch_cache", [False, True])
async def test_unreachable_api_server_is_a_retryable_coded_error(unreachable_kubeconfig: Path,
                                                                 watch_cache: bool) -> None:
    kube = Kube.connect(str(unreachable_kubeconfig), watch_cache=watch_cache)
    server = build_server(GatewayConfig(kubeconfig=str(unreachable_kubeconfig), watch_cache=watch_cache), kube)
    async with Client(server) as mcp:
        calls: list[tuple[str, dict[str, Any]]] = [
            ("list_postgres_clusters", {"namespace": "prod"}),
            ("get_cluster_status", {"name": "db", "namespace": "prod"}),
            ("create_postgres_cluster", {"name": "db", "instances": 1, "namespace": "prod"}),
            ("list_postgres_roles", {"cluster_name": "db", "namespace": "prod"}),
        ]
        for tool, arguments in calls:
            message = error(await mcp.call_tool(tool, arguments), errors.UNAVAILABLE)
            assert "retryable" in message, message
    kube.close()


async def test_an_api_server_that_never_answers_is_a_retryable_coded_error(
    control_plane: ControlPlane, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Connections are accepted but nothing is ever said: the call times out into UNAVAILABLE."""
    silent = socket.create_server(("127.0.0.1", 0))  # never accepts: the kernel completes the handshake only
    path = tmp_path / "silent"
    write_kubeconfig(path, f"https://127.0.0.1:{silent.getsockname()[1]}", control_plane.ca_file, "token")
    monkeypatch.setattr("mcp_gateway.k8s.REQUEST_TIMEOUT", 0.5)
    kube = Kube.connect(str(path))
    server = build_server(GatewayConfig(kubeconfig=str(path)), kube)
    try:
        async with Client(server) as mcp:
            started = time.monotonic()
            message = error(await mcp.call_tool("list_postgres_clusters", {"namespace": "prod"}), errors.UNAVAILABLE)
            assert "retryable" in message and "timed out" in message, message
            assert time.monotonic() - started < 15
    finally:
        kube.close()
        silent.close()


async def test_readyz_reports_an_unreachable_api_server(control_plane: ControlPlane, unreachable_kubeconfig: Path,
                                                        tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("t0ken\n")
    config = GatewayConfig(transport="http", port=free_port(), token_file=tokens,
                           kubeconfig=str(unreachable_kubeconfig))
    async for url in serve(config, control_plane):
        async with httpx2.AsyncClient() as http:
            answer = await http.get(f"{url}/readyz")
    assert answer.status_code == 503
