"""Benchmark (not a test): MCP tool latency over HTTP next to the raw Kubernetes call it needs.

Needs a running control plane (`make cluster`); the gateway runs in this process on a free port:

    KUBECONFIG=.devcluster/kubeconfig .venv/bin/python bench/gateway_latency.py [--calls 200]

Prints p50/p99 of get_cluster_status vs a raw GET of the Cluster, list_postgres_clusters vs a raw
LIST (10 clusters), and list_postgres_clusters with 1000 clusters.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx2
import uvicorn
from kubernetes import client, config
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from cnpg_mcp_api import constants
from devcluster.controlplane import free_port
from mcp_gateway.config import GatewayConfig
from mcp_gateway.k8s import Kube
from mcp_gateway.server import build_server, http_app


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000


async def timed(calls: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    for _ in range(5):  # warm-up
        await call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


def make_clusters(custom: Any, namespace: str, count: int, start: int = 0) -> None:
    for index in range(start, start + count):
        custom.create_namespaced_custom_object(constants.CNPG_GROUP, constants.CNPG_VERSION, namespace,
                                               constants.CNPG_CLUSTERS, {
            "apiVersion": constants.CNPG_API_VERSION, "kind": "Cluster", "metadata": {"name": f"c-{index:04d}"},
            "spec": {"instances": 1, "storage": {"size": "1Gi"}}})


def report(what: str, samples: list[float], raw: list[float] | None = None) -> None:
    p50, p99 = percentiles(samples)
    line = f"{what:48s} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms"
    if raw:
        raw50, raw99 = percentiles(raw)
        line += f"   raw p50 {raw50:6.2f} ms p99 {raw99:6.2f} ms   ratio p50 {p50 / raw50:4.2f}x"
    print(line, flush=True)


async def main(calls: int, watch_cache: bool) -> None:
    kubeconfig = os.environ.get("KUBECONFIG")
    api = config.new_client_from_config(config_file=kubeconfig)
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    namespace = f"bench-gw-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": namespace}})
    token = secrets.token_urlsafe(16)
    port = free_port()
    gateway = GatewayConfig(transport="http", port=port, tokens_env=token, kubeconfig=kubeconfig,
                            watch_cache=watch_cache)
    server = build_server(gateway, Kube.connect(kubeconfig, watch_cache=watch_cache))
    uv = uvicorn.Server(uvicorn.Config(http_app(server, gateway), host="127.0.0.1", port=port, log_level="warning"))
    try:
        make_clusters(custom, namespace, 10)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(uv.serve)
            while not uv.started:  # noqa: ASYNC110
                await anyio.sleep(0.05)
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
            async with Client(streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)) as mcp:
                def raw_get() -> Awaitable[Any]:
                    return anyio.to_thread.run_sync(lambda: custom.get_namespaced_custom_object(
                        constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS, "c-0000"))

                def raw_list() -> Awaitable[Any]:
                    return anyio.to_thread.run_sync(lambda: custom.list_namespaced_custom_object(
                        constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS))

                report("get_cluster_status (MCP HTTP)", await timed(calls, lambda: mcp.call_tool(
                    "get_cluster_status", {"name": "c-0000", "namespace": namespace})), await timed(calls, raw_get))
                report("list_postgres_clusters, 10 clusters (MCP HTTP)", await timed(calls, lambda: mcp.call_tool(
                    "list_postgres_clusters", {"namespace": namespace})), await timed(calls, raw_list))
                make_clusters(custom, namespace, 990, start=10)
                report("list_postgres_clusters, 1000 clusters (MCP HTTP)", await timed(20, lambda: mcp.call_tool(
                    "list_postgres_clusters", {"namespace": namespace, "format": "json"})), await timed(20, raw_list))
            uv.should_exit = True
    finally:
        core.delete_namespace(namespace)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--watch-cache", action="store_true", help="run the gateway with --watch-cache")
    options = parser.parse_args()
    print(f"gateway {'with' if options.watch_cache else 'without'} --watch-cache")
    anyio.run(main, options.calls, options.watch_cache)
