"""Gateway over stdio with one client (as a desktop client runs it): tool p50 next to the raw API call.

    .venv/bin/python -m bench.gateway [--calls 100] [--clusters 5000]

Starts its own sandbox. For the gateway without and with --watch-cache:
- get_cluster_status vs a raw GET of the Cluster; list_postgres_clusters (10 clusters) and
  list_postgres_roles (10 roles) vs a raw LIST of the same objects;
- list_postgres_clusters over `--clusters` Clusters vs a raw LIST of them, and the answer's size;
- the gateway's RSS idle (after one call) and with its watch mirrors filled.
The raw calls are the Python Kubernetes client in this process (one HTTP round trip each); the
original cnpg-mcp server is not runnable here, so raw API calls are the reference.
The many Clusters are created with the simulator stopped (it would try to run them all).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
from kubernetes import client
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from bench.common import Row, children_running, median_ms, print_table, rss_mib
from bench.sandbox import GROUP, VERSION, Sandbox
from cnpg_mcp_api import constants

SMALL = 10


async def timed(calls: int, call: Callable[[], Awaitable[Any]]) -> list[float]:
    for _ in range(3):  # warm-up (and the watch cache's first fill)
        await call()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - started)
    return samples


def _cluster(name: str) -> dict[str, Any]:
    return {"apiVersion": constants.CNPG_API_VERSION, "kind": "Cluster", "metadata": {"name": name},
            "spec": {"instances": 1, "storage": {"size": "1Gi"}}}


def make_clusters(custom: Any, namespace: str, count: int, workers: int = 16) -> float:
    started = time.monotonic()

    def create(index: int) -> None:
        custom.create_namespaced_custom_object(constants.CNPG_GROUP, constants.CNPG_VERSION, namespace,
                                               constants.CNPG_CLUSTERS, _cluster(f"c-{index:05d}"))

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(create, range(count)))
    return time.monotonic() - started


def prepare_small(sandbox: Sandbox) -> str:
    """A namespace with one Ready PgClusterRequest ("gw"), SMALL-1 more Clusters and SMALL Ready roles."""
    namespace = sandbox.new_namespace("bench-gw")
    custom = client.CustomObjectsApi(sandbox.api)
    sandbox.ready_cluster_request(namespace, "gw")
    for index in range(1, SMALL):
        custom.create_namespaced_custom_object(constants.CNPG_GROUP, constants.CNPG_VERSION, namespace,
                                               constants.CNPG_CLUSTERS, _cluster(f"c-{index:05d}"))
    for index in range(SMALL):
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "pgrolerequests", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "PgRoleRequest", "metadata": {"name": f"gw-r{index}"},
            "spec": {"cluster": "gw", "roleName": f"gw_r{index}"}})
    return namespace


def stdio_gateway(sandbox: Sandbox, *flags: str) -> StdioServerParameters:
    """The gateway as a desktop client starts it; its stderr (the audit log) goes to the sandbox folder."""
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
    command = " ".join(shlex.quote(part) for part in (sys.executable, "-m", "mcp_gateway", *flags))
    log = shlex.quote(str(sandbox.folder / "gateway.log"))
    return StdioServerParameters(command="sh", args=["-c", f"exec {command} 2>>{log}"], env=env)


def gateway_pid() -> int:
    found = children_running(os.getpid(), "mcp_gateway")
    return found[0] if found else 0


async def small_calls(sandbox: Sandbox, namespace: str, calls: int, watch_cache: bool) -> list[Row]:
    custom = client.CustomObjectsApi(sandbox.api)
    mode = "cache" if watch_cache else "no cache"

    def raw(fn: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
        return lambda: anyio.to_thread.run_sync(fn)

    raw_get = raw(lambda: custom.get_namespaced_custom_object(
        constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS, "gw"))
    raw_clusters = raw(lambda: custom.list_namespaced_custom_object(
        constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS))
    raw_roles = raw(lambda: custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "pgrolerequests"))
    rows = []
    async with Client(stdio_gateway(sandbox, *(["--watch-cache"] if watch_cache else []))) as mcp:
        pid = gateway_pid()
        await mcp.call_tool("list_postgres_clusters", {"namespace": namespace})
        if not watch_cache:
            rows.append(Row("gateway RSS idle (after one call)", rss_mib(pid), "MiB", 120.0))
        goal = 1.3 if watch_cache else None
        for what, call, reference in (
            ("get_cluster_status", lambda: mcp.call_tool("get_cluster_status", {"name": "gw", "namespace": namespace}),
             raw_get),
            (f"list_postgres_clusters ({SMALL})", lambda: mcp.call_tool(
                "list_postgres_clusters", {"namespace": namespace}), raw_clusters),
            (f"list_postgres_roles ({SMALL})", lambda: mcp.call_tool(
                "list_postgres_roles", {"cluster_name": "gw", "namespace": namespace}), raw_roles),
        ):
            tool, reference_samples = median_ms(await timed(calls, call)), median_ms(await timed(calls, reference))
            rows.append(Row(f"{what} p50 / raw p50, {mode}", tool / reference_samples, "x", goal,
                            f"tool {tool:.1f} ms, raw {reference_samples:.1f} ms"))
    return rows


async def many_clusters(sandbox: Sandbox, namespace: str, count: int, calls: int) -> list[Row]:
    custom = client.CustomObjectsApi(sandbox.api)
    rows = []

    def raw_list() -> Awaitable[Any]:
        return anyio.to_thread.run_sync(lambda: custom.list_namespaced_custom_object(
            constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS))

    raw = median_ms(await timed(calls, raw_list))
    for watch_cache in (False, True):
        mode = "cache" if watch_cache else "no cache"
        async with Client(stdio_gateway(sandbox, *(["--watch-cache"] if watch_cache else []))) as mcp:
            answer = await mcp.call_tool("list_postgres_clusters", {"namespace": namespace})
            size = sum(len(getattr(c, "text", "")) for c in answer.content) + len(
                json.dumps(answer.structured_content or {}))
            tool = median_ms(await timed(calls, lambda: mcp.call_tool(
                "list_postgres_clusters", {"namespace": namespace})))
            rows.append(Row(f"list_postgres_clusters ({count}) / raw LIST, {mode}", tool / raw, "x",
                            1.0 if watch_cache else None, f"tool {tool:.0f} ms, raw {raw:.0f} ms"))
            if watch_cache:
                rows.append(Row(f"gateway RSS with mirrors ({count} clusters)", rss_mib(gateway_pid()), "MiB", 250.0))
            else:
                rows.append(Row(f"list_postgres_clusters ({count}) answer size", size / 1024, "KiB",
                                note="text + structured content, default arguments"))
    return rows


def run(sandbox: Sandbox, calls: int, clusters: int) -> tuple[list[Row], str]:
    """Rows, and the namespace holding the many Clusters (the simulator is stopped on return)."""
    namespace = prepare_small(sandbox)
    deadline = time.monotonic() + 120
    roles = client.CustomObjectsApi(sandbox.api)
    while time.monotonic() < deadline:  # the roles are Ready: list_postgres_roles shows a settled state
        items = roles.list_namespaced_custom_object(GROUP, VERSION, namespace, "pgrolerequests")["items"]
        if all(any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (i.get("status") or {}).get("conditions") or []) for i in items):
            break
        time.sleep(0.5)
    rows: list[Row] = []
    for watch_cache in (False, True):
        rows += anyio.run(small_calls, sandbox, namespace, calls, watch_cache)
    sandbox.stop_simulator()
    many = sandbox.new_namespace("bench-many")
    took = make_clusters(client.CustomObjectsApi(sandbox.api), many, clusters)
    print(f"{clusters} Clusters created in {took:.0f}s", flush=True)
    rows += anyio.run(many_clusters, sandbox, many, clusters, max(5, calls // 10))
    return rows, many


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--clusters", type=int, default=5000)
    args = parser.parse_args(argv)
    with Sandbox.start() as sandbox:
        print_table(run(sandbox, args.calls, args.clusters)[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
