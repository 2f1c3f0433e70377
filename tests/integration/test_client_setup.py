"""The client setups of docs/install.md work the first time: the MCP Inspector CLI (a real MCP client from
npm) reads the Claude Desktop and Cursor snippets as they are written there, and reaches the gateway over
stdio and over HTTP with a bearer token.

`uvx cnpg-mcp` would fetch the package from PyPI; here the same entry point (`cnpg-mcp`) of the checkout's
environment stands in for it. The Inspector is installed from the npm registry into the cache, keyed by
version (MCP_INSPECTOR_VERSION), like the other tools the tests build."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from devcluster.controlplane import ControlPlane, free_port
from mcp_gateway.config import GatewayConfig
from mcp_gateway.registry import offered
from mcp_gateway.tools.catalog import TOOLS
from tests.integration.test_gateway_http import serve

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]
INSTALL_DOC = REPO / "docs" / "install.md"
INSPECTOR_VERSION = os.environ.get("MCP_INSPECTOR_VERSION", "2.12.0")
CACHE = Path(os.environ.get("CNPG_MCP_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
             / "cnpg-mcp")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def inspector() -> Path:
    prefix = CACHE / f"npm-inspector-{INSPECTOR_VERSION}"
    binary = prefix / "node_modules" / ".bin" / "mcp-inspector"
    if not binary.exists():
        installed = subprocess.run(["npm", "install", "--no-audit", "--no-fund", "--prefix", str(prefix),
                                    f"@modelcontextprotocol/inspector@{INSPECTOR_VERSION}"],
                                   capture_output=True, text=True, timeout=900, check=False)
        assert installed.returncode == 0, f"installing the MCP Inspector from npm failed: {installed.stderr[-2000:]}"
    return binary


def inspect(inspector: Path, *args: str) -> dict[str, Any]:
    # No desktop keyring here: the Inspector keeps its secrets in memory only.
    env = {**os.environ, "MCP_INSPECTOR_SECRET_STORE": "memory", "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run([str(inspector), "--cli", *args], capture_output=True, text=True, timeout=180,
                          check=False, env=env)
    assert done.returncode == 0, f"the Inspector failed: {done.stdout[-2000:]} {done.stderr[-2000:]}"
    answer: dict[str, Any] = json.loads(done.stdout[done.stdout.index("{"):])
    return answer


def doc_snippet(client: str) -> dict[str, Any]:
    """The first JSON block after the bold client name in docs/install.md (the stdio section)."""
    text = INSTALL_DOC.read_text()
    start = text.index(f"**{client}**")
    block = re.search(r"```json\n(.*?)```", text[start:], flags=re.DOTALL)
    assert block, client
    loaded: dict[str, Any] = json.loads(block.group(1))
    return loaded


def runnable(snippet: dict[str, Any], kubeconfig: Path) -> dict[str, Any]:
    """The snippet with `uvx cnpg-mcp` pointed at this checkout's `cnpg-mcp` and its KUBECONFIG at the test cluster."""
    server = snippet["mcpServers"]["cloudnative-pg"]
    assert (server["command"], server["args"][:1]) == ("uvx", ["cnpg-mcp"])
    server["command"] = str(Path(sys.executable).parent / "cnpg-mcp")
    server["args"] = server["args"][1:]
    server["env"]["KUBECONFIG"] = str(kubeconfig)
    return snippet


@pytest.mark.parametrize("client", ["Claude Desktop", "Cursor"])
def test_stdio_snippet_works_in_the_inspector(inspector: Path, control_plane: ControlPlane, tmp_path: Path,
                                             namespace: str, client: str) -> None:
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps(runnable(doc_snippet(client), control_plane.kubeconfig)))
    listed = inspect(inspector, "--config", str(config), "--server", "cloudnative-pg", "--method", "tools/list")
    assert {t["name"] for t in listed["tools"]} == {spec.name for spec in offered(TOOLS)}, listed
    called = inspect(inspector, "--config", str(config), "--server", "cloudnative-pg", "--method", "tools/call",
                     "--tool-name", "list_postgres_clusters", "--tool-arg", f"namespace={namespace}")
    assert not called.get("isError") and called["structuredContent"]["count"] == 0, called


async def test_http_with_a_bearer_token_works_in_the_inspector(inspector: Path, control_plane: ControlPlane,
                                                               tmp_path: Path, namespace: str) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("inspector-token,ivy\n")
    config = GatewayConfig(transport="http", port=free_port(), token_file=tokens)
    async for url in serve(config, control_plane):
        args = (f"{url}/mcp", "--transport", "http", "--header", "Authorization: Bearer inspector-token")
        # The Inspector blocks: run it off the event loop that serves the gateway.
        listed = await anyio.to_thread.run_sync(functools.partial(inspect, inspector, *args, "--method", "tools/list"))
        assert {t["name"] for t in listed["tools"]} == {spec.name for spec in offered(TOOLS)}, listed
        called = await anyio.to_thread.run_sync(functools.partial(
            inspect, inspector, *args, "--method", "tools/call", "--tool-name", "list_postgres_clusters",
            "--tool-arg", f"namespace={namespace}"))
        assert not called.get("isError") and called["structuredContent"]["count"] == 0, called
