"""The gateway over real streamable HTTP (uvicorn): authentication, OIDC/JWT, impersonation, probes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane, free_port
from mcp_gateway.config import GatewayConfig
from mcp_gateway.k8s import Kube
from mcp_gateway.registry import offered
from mcp_gateway.server import build_server, http_app
from mcp_gateway.tools.catalog import TOOLS
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import bind_intent_editor, error, ok

pytestmark = pytest.mark.anyio
ISSUER, AUDIENCE = "https://idp.example.test", "https://cnpg-mcp.example.test/mcp"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def serve(config: GatewayConfig, control_plane: ControlPlane) -> AsyncIterator[str]:
    server = build_server(config, Kube.connect(config.kubeconfig or str(control_plane.kubeconfig)))
    uv = uvicorn.Server(uvicorn.Config(http_app(server, config), host=config.host, port=config.port,
                                       log_level="warning"))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(uv.serve)
        while not uv.started:  # noqa: ASYNC110  (uvicorn exposes a flag, not an event)
            await anyio.sleep(0.05)
        yield f"http://127.0.0.1:{config.port}"
        uv.should_exit = True


def session(url: str, token: str | None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(streamable_http_client(f"{url}/mcp", http_client=httpx2.AsyncClient(headers=headers)))


@pytest.fixture
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_url(rsa_key: rsa.RSAPrivateKey) -> Iterator[str]:
    """A local JWKS endpoint, as an identity provider would publish it."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "test-key", "use": "sig", "alg": "RS256"}]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json"
    httpd.shutdown()


def mint(key: rsa.RSAPrivateKey, *, audience: str = AUDIENCE, sub: str = "carol", groups: list[str] | None = None,
         lifetime: int = 300) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience, "sub": sub, "iat": now, "exp": now + lifetime,
              "groups": groups or []}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": "test-key"})


async def test_static_tokens_no_or_bad_token_is_401(control_plane: ControlPlane, tmp_path: Path,
                                                     namespace: str) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("s3cret-token,alice\n")
    config = GatewayConfig(transport="http", port=free_port(), token_file=token_file)
    async for url in serve(config, control_plane):
        async with httpx2.AsyncClient() as http:
            probe = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
            assert (await http.post(f"{url}/mcp", json=probe, headers=headers)).status_code == 401
            assert (await http.post(f"{url}/mcp", json=probe,
                                    headers={**headers, "Authorization": "Bearer wrong"})).status_code == 401
            assert (await http.get(f"{url}/healthz")).status_code == 200
            assert (await http.get(f"{url}/readyz")).json() == {"status": "ok"}
        async with session(url, "s3cret-token") as mcp:
            listed = ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}))
            assert listed["count"] == 0
        async with Client(streamable_http_client(
                f"{url}/mcp", http_client=httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret-token"})),
                mode="legacy") as legacy:
            assert len((await legacy.list_tools()).tools) == len(offered(TOOLS))


async def test_oidc_jwt_is_verified(control_plane: ControlPlane, rsa_key: rsa.RSAPrivateKey, jwks_url: str,
                                    namespace: str) -> None:
    config = GatewayConfig(transport="http", port=free_port(), oidc_issuer=ISSUER, oidc_audience=AUDIENCE,
                           oidc_jwks_url=jwks_url)
    async for url in serve(config, control_plane):
        async with session(url, mint(rsa_key)) as mcp:
            ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}))
        async with httpx2.AsyncClient() as http:
            headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
            probe = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            for bad in (mint(rsa_key, audience="https://someone-else"), mint(rsa_key, lifetime=-60),
                        mint(rsa.generate_private_key(public_exponent=65537, key_size=2048))):
                answer = await http.post(f"{url}/mcp", json=probe,
                                         headers={**headers, "Authorization": f"Bearer {bad}"})
                assert answer.status_code == 401


async def test_host_allow_list(control_plane: ControlPlane, tmp_path: Path) -> None:
    token_file = tmp_path / "tokens"
    token_file.write_text("t0ken\n")
    config = GatewayConfig(transport="http", port=free_port(), token_file=token_file,
                           allowed_hosts=("127.0.0.1:*", "cnpg-mcp.cnpg-mcp.svc:*"))
    async for url in serve(config, control_plane):
        async with httpx2.AsyncClient() as http:
            headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
                       "Authorization": "Bearer t0ken"}
            probe = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
            evil = await http.post(f"{url}/mcp", json=probe, headers={**headers, "Host": "evil.example"})
            assert evil.status_code == 421
            origin = await http.post(f"{url}/mcp", json=probe, headers={**headers, "Origin": "https://evil.example"})
            assert origin.status_code == 403


async def test_impersonation_uses_the_callers_rights_and_records_who_asked(
    control_plane: ControlPlane, operator: OperatorProcess, k8s: Any, namespace: str, tmp_path: Path,
    intents: Intents,
) -> None:
    # Token names reach Kubernetes with the gateway's prefix (default "token:" for static tokens).
    bind_intent_editor(k8s, namespace, "token:dba")
    token_file = tmp_path / "tokens"
    # alice is in "dba" only as her second group: every group must reach the API server.
    token_file.write_text("alice-token,alice,everyone|dba\nmallory-token,mallory,everyone\n")
    # With read mirrors on: impersonated reads must still go to the API server as the user.
    config = GatewayConfig(transport="http", port=free_port(), token_file=token_file, impersonate=True,
                           watch_cache=True)
    async for url in serve(config, control_plane):
        async with session(url, "mallory-token") as mcp:
            error(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}), "FORBIDDEN")
            message = error(await mcp.call_tool("create_postgres_cluster", {"name": "imp-db", "instances": 1,
                                                                            "namespace": namespace}), "FORBIDDEN")
            assert "mallory" in message
        assert intents.get("PgClusterRequest", namespace, "imp-db") is None
        async with session(url, "alice-token") as mcp:
            ok(await mcp.call_tool("create_postgres_cluster", {"name": "imp-db", "instances": 1,
                                                               "namespace": namespace}))
    created = intents.get("PgClusterRequest", namespace, "imp-db")
    assert created is not None
    assert created["metadata"]["annotations"][constants.REQUESTED_BY_ANNOTATION] == "token:alice"


def test_http_without_authentication_refuses_to_start(control_plane: ControlPlane) -> None:
    started = subprocess.run([sys.executable, "-m", "mcp_gateway", "--transport", "http", "--host", "0.0.0.0"],
                             capture_output=True, text=True, timeout=60, check=False,
                             env={"KUBECONFIG": str(control_plane.kubeconfig), "PATH": "/usr/bin:/bin"})
    assert started.returncode != 0
    assert "HTTP needs authentication" in started.stderr
