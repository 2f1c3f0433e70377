"""Metrics and audit, end to end: the real gateway process (--audit-log) and operator process (--metrics)
are scraped over HTTP while an agent creates a cluster and a role through MCP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from prometheus_client.parser import text_string_to_metric_families

from devcluster.controlplane import ControlPlane, free_port
from tests.integration.conftest import REPO_ROOT, Intents, OperatorProcess
from tests.integration.gateway_helpers import error, ok, secret_password

pytestmark = pytest.mark.anyio
TOKEN = "obs-alice-token"
LITERAL_PASSWORD = "Hunter2-never-logged"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a /metrics page, keyed by (sample name, labels)."""
    with urllib.request.urlopen(url, timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        page = answer.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(page) for s in family.samples}


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def gateway_process(control_plane: ControlPlane, namespace: str, tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    """`cnpg-mcp-server --transport http --audit-log …` as deployed: (base URL, audit log, stderr log)."""
    tokens, audit_log, stderr_log = tmp_path / "tokens", tmp_path / "audit.jsonl", tmp_path / "gateway.log"
    tokens.write_text(f"{TOKEN},alice\n")
    port = free_port()
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig),
           "PYTHONPATH": os.pathsep.join((str(REPO_ROOT), str(REPO_ROOT / "operator")))}
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
    env.pop("OTEL_TRACES_EXPORTER", None)
    with stderr_log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "mcp_gateway", "--transport", "http", "--port", str(port),
             "--token-file", str(tokens), "--namespace-allow", namespace, "--audit-log", str(audit_log)],
            stdout=subprocess.DEVNULL, stderr=stderr, stdin=subprocess.DEVNULL, env=env, cwd=REPO_ROOT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the gateway did not start:\n{stderr_log.read_text()}", pytrace=False)
                time.sleep(0.2)
        yield url, audit_log, stderr_log
    finally:
        process.terminate()
        process.wait(timeout=20)


def audit_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def test_metrics_move_and_every_tool_call_is_audited_without_secrets(
    gateway_process: tuple[str, Path, Path], operator_factory: Callable[..., OperatorProcess], namespace: str,
    intents: Intents, k8s: Any,
) -> None:
    metrics_url = f"http://127.0.0.1:{free_port()}/metrics"
    operator = operator_factory("--all-namespaces", "--metrics", metrics_url)
    url, audit_log, stderr_log = gateway_process
    before = scrape(metrics_url)

    client = Client(streamable_http_client(f"{url}/mcp", http_client=httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {TOKEN}"})))
    async with client as mcp:
        ok(await mcp.call_tool("create_postgres_cluster", {"name": "obs-db", "instances": 1,
                                                           "namespace": namespace}))
        await anyio.to_thread.run_sync(lambda: intents.wait_ready("PgClusterRequest", namespace, "obs-db", 90))
        created = ok(await mcp.call_tool("create_postgres_role", {"cluster_name": "obs-db", "role_name": "obs_app",
                                                                  "login": True, "namespace": namespace}))
        role_request = created["request"].rpartition("/")[2]
        await anyio.to_thread.run_sync(lambda: intents.wait_ready("PgRoleRequest", namespace, role_request, 90))
        # Refused calls: outside --namespace-allow, and a literal password (which must never be logged).
        error(await mcp.call_tool("list_postgres_clusters", {"namespace": "kube-system"}), "NAMESPACE_NOT_ALLOWED")
        error(await mcp.call_tool("update_postgres_role", {"cluster_name": "obs-db", "role_name": "obs_app",
                                                           "password": LITERAL_PASSWORD, "namespace": namespace}),
              "PASSWORD_NOT_ACCEPTED")
    async with httpx2.AsyncClient() as http:  # a bad token never reaches a tool: an auth failure
        refused = await http.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                                  headers={"Authorization": "Bearer wrong", "Content-Type": "application/json",
                                           "Accept": "application/json, text/event-stream"})
        assert refused.status_code == 401

    # A policy refusal of an intent applied with kubectl (no gateway, so no requester annotation).
    intents.create("PgRoleRequest", namespace, "obs-db-boss", {"cluster": "obs-db", "roleName": "obs_boss",
                                                              "superuser": True, "privileged": True})
    await anyio.to_thread.run_sync(lambda: intents.wait_reason("PgRoleRequest", namespace, "obs-db-boss",
                                                               "PolicyDenied"))

    # The gateway's /metrics, on its HTTP port.
    gateway = scrape(f"{url}/metrics")
    assert sample(gateway, "cnpg_mcp_tool_calls_total", tool="create_postgres_cluster", outcome="ok") == 1
    assert sample(gateway, "cnpg_mcp_tool_calls_total", tool="list_postgres_clusters",
                  outcome="NAMESPACE_NOT_ALLOWED") == 1
    assert sample(gateway, "cnpg_mcp_tool_calls_total", tool="update_postgres_role",
                  outcome="PASSWORD_NOT_ACCEPTED") == 1
    assert sample(gateway, "mcp_server_operation_duration_seconds_count", mcp_method_name="tools/call",
                  gen_ai_tool_name="create_postgres_role", error_type="") == 1
    assert sample(gateway, "cnpg_mcp_auth_failures_total", status="401") >= 1

    # The operator's /metrics: reconciles, first-Ready time, its own writes (Secrets included).
    after = scrape(metrics_url)
    for controller in ("pgclusterrequest", "pgrolerequest"):
        assert sample(after, "controller_runtime_reconcile_total", controller=controller, result="success") > \
            sample(before, "controller_runtime_reconcile_total", controller=controller, result="success")
        assert sample(after, "controller_runtime_reconcile_time_seconds_count", controller=controller) >= 1
    assert sample(after, "cnpg_mcp_intent_ready_seconds_count", kind="pgrolerequest") >= 1
    assert sample(after, "cnpg_mcp_operator_api_writes_total", verb="create", kind="Cluster") >= 1
    assert sample(after, "cnpg_mcp_operator_secrets_written_total") >= 1
    assert sample(after, "cnpg_mcp_policy_denials_total", kind="pgrolerequest") == \
        sample(before, "cnpg_mcp_policy_denials_total", kind="pgrolerequest") + 1
    assert operator.running()

    # The audit trail: one line per tool call, who / what / verdict, and no secret anywhere.
    lines = audit_lines(audit_log)
    assert [line["tool"] for line in lines] == ["create_postgres_cluster", "create_postgres_role",
                                                "list_postgres_clusters", "update_postgres_role"]
    assert all(line["caller"] == "token:alice" and line["impersonated"] is None for line in lines)
    assert lines[0]["target"] == {"namespace": namespace, "name": "obs-db"} and lines[0]["verdict"] == "ok"
    assert lines[1]["target"] == {"namespace": namespace, "cluster_name": "obs-db", "role_name": "obs_app"}
    assert lines[2]["target"] == {"namespace": "kube-system"} and lines[2]["verdict"] == "NAMESPACE_NOT_ALLOWED"
    assert lines[3]["verdict"] == "PASSWORD_NOT_ACCEPTED"
    assert all(line["duration_ms"] >= 0 for line in lines)
    password = secret_password(k8s, namespace, created["password_secret"])
    for written in (audit_log.read_text(), stderr_log.read_text()):
        assert password not in written
        assert LITERAL_PASSWORD not in written

    # The requester is on the intent and in its transition Events.
    messages = [event.message for event in intents.events_for(namespace, role_request)]
    assert any("(requested by token:alice)" in (message or "") for message in messages), messages


@pytest.fixture
def otlp_collector() -> Iterator[tuple[str, list[bytes]]]:
    """A stand-in OTLP/HTTP collector: keeps the bodies POSTed to /v1/traces."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path == "/v1/traces":
                received.append(body)
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", received
    httpd.shutdown()


async def test_the_sdks_tool_spans_reach_an_otlp_collector_when_configured(
    control_plane: ControlPlane, namespace: str, otlp_collector: tuple[str, list[bytes]],
) -> None:
    endpoint, received = otlp_collector
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig), "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
           "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_SERVICE_NAME": "cnpg-mcp-under-test"}
    # stdio: the exporter must leave stdout (the MCP stream) alone.
    async with Client(StdioServerParameters(command=sys.executable, args=["-m", "mcp_gateway"], env=env)) as mcp:
        ok(await mcp.call_tool("list_postgres_clusters", {"namespace": namespace}))
    deadline = time.monotonic() + 20  # the batch processor flushes on its schedule and at exit
    while not any(b"tools/call list_postgres_clusters" in body for body in received):
        assert time.monotonic() < deadline, f"no tool span exported ({len(received)} OTLP requests)"
        await anyio.sleep(0.2)
    exported = b"".join(received)
    assert b"cnpg-mcp-under-test" in exported and b"gen_ai.tool.name" in exported
