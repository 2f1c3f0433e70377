"""Gateway over stdio with one client (as a desktop client runs it): tool p50 next to the raw API call.

    .venv/bin/python -m bench.gateway [--calls 100] [--clusters 5000]

Starts its own sandbox. For the gateway without and with --watch-cache:
- get_cluster_status vs a raw GET of the Cluster; list_postgres_clusters (10 clusters) and
  list_postgres_roles (10 roles) vs a raw LIST of the same objects;
- list_postgres_clusters over `--clusters` Clusters vs a raw LIST of them, and the answer's size;
- the gateway's RSS idle (after one call) and with its watch mirrors filled.
The raw calls are the Python Kubernetes client in this process (one HTTP round trip each); the
original cnpg-mcp server is not runnable here, so raw API calls are the reference. Without the cache
each tool is also set against the raw reads it needs (made concurrently, as the tool makes them).
Each tool's note splits its p50: the gateway's own time (the audit line's duration: reads, rendering),
and the MCP client's validation of the structured answer against the tool's output schema; the rest
is stdio and JSON-RPC on both sides. `--gateway-dir DIR` runs the gateway from another checkout (its
`mcp_gateway` and `cnpg_mcp_api`), to compare two versions with the same benchmark.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
from kubernetes import client
from mcp import Client
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters

from bench.common import Row, children_running, median_ms, print_table, rss_mib
from bench.sandbox import GROUP, VERSION, Sandbox
from cnpg_mcp_api import constants

SMALL = 10
# --gateway-dir: the checkout the stdio gateway runs from (absent: this one)
OPTIONS: dict[str, Path] = {}


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


def wait_roles_ready(sandbox: Sandbox, namespace: str, within: float = 120) -> None:
    """Until every PgRoleRequest of the namespace is Ready (or `within` seconds have passed)."""
    custom = client.CustomObjectsApi(sandbox.api)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "pgrolerequests")["items"]
        if all(any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (i.get("status") or {}).get("conditions") or []) for i in items):
            return
        time.sleep(0.5)


def stdio_gateway(sandbox: Sandbox, *flags: str) -> StdioServerParameters:
    """The gateway as a desktop client starts it; its stderr (the audit log) goes to the sandbox folder."""
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
    command = " ".join(shlex.quote(part) for part in (sys.executable, "-m", "mcp_gateway", *flags))
    log = shlex.quote(str(gateway_log(sandbox)))
    return StdioServerParameters(command="sh", args=["-c", f"exec {command} 2>>{log}"], env=env,
                                 cwd=str(OPTIONS["gateway_dir"]) if "gateway_dir" in OPTIONS else None)


def gateway_log(sandbox: Sandbox) -> Path:
    return sandbox.folder / "gateway.log"


def handler_ms(log: Path, offset: int, tool: str) -> float | None:
    """The median duration the gateway's audit lines give `tool` after `offset` of its log."""
    with log.open("rb") as lines:
        lines.seek(offset)
        durations = [entry["duration_ms"] for entry in map(_json_or_none, lines)
                     if entry and entry.get("event") == "tool_call" and entry.get("tool") == tool]
    return statistics.median(durations) if durations else None


def _json_or_none(line: bytes) -> dict[str, Any] | None:
    try:
        loaded = json.loads(line)
    except ValueError:  # the operational log's lines
        return None
    return loaded if isinstance(loaded, dict) else None


@contextmanager
def client_validation() -> Iterator[list[float]]:
    """The durations of the MCP client's check of each answer against the tool's output schema."""
    spent: list[float] = []
    original = ClientSession.validate_tool_result

    async def timed(self: ClientSession, name: str, result: Any) -> None:
        started = time.perf_counter()
        try:
            await original(self, name, result)
        finally:
            spent.append(time.perf_counter() - started)

    ClientSession.validate_tool_result = timed  # type: ignore[method-assign]
    try:
        yield spent
    finally:
        ClientSession.validate_tool_result = original  # type: ignore[method-assign]


def concurrently(*reads: Callable[[], Any]) -> Callable[[], Awaitable[None]]:
    """The raw reads a tool needs, made at once in worker threads as the gateway makes them."""
    async def run() -> None:
        async with anyio.create_task_group() as tasks:
            for read in reads:
                tasks.start_soon(anyio.to_thread.run_sync, read)
    return run


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
    core = client.CoreV1Api(sandbox.api)
    cnpg = (constants.CNPG_GROUP, constants.CNPG_VERSION, namespace)
    intent = (GROUP, VERSION, namespace)
    # What each tool reads without the cache (the raw JSON of Events, as the gateway decodes them).
    status_reads = concurrently(
        lambda: custom.get_namespaced_custom_object(*cnpg, constants.CNPG_CLUSTERS, "gw"),
        lambda: custom.get_namespaced_custom_object(*intent, "pgclusterrequests", "gw"),
        lambda: json.loads(core.list_namespaced_event(namespace, field_selector="involvedObject.name=gw",
                                                      _preload_content=False).data))
    clusters_reads = concurrently(lambda: custom.list_namespaced_custom_object(*cnpg, constants.CNPG_CLUSTERS),
                                  lambda: custom.list_namespaced_custom_object(*intent, "pgclusterrequests"))
    roles_reads = concurrently(lambda: custom.get_namespaced_custom_object(*cnpg, constants.CNPG_CLUSTERS, "gw"),
                               lambda: custom.list_namespaced_custom_object(*intent, "pgrolerequests"),
                               lambda: custom.list_namespaced_custom_object(*cnpg, constants.CNPG_DATABASE_ROLES))
    rows = []
    log = gateway_log(sandbox)
    async with Client(stdio_gateway(sandbox, *(["--watch-cache"] if watch_cache else []))) as mcp:
        pid = gateway_pid()
        await mcp.call_tool("list_postgres_clusters", {"namespace": namespace})
        if not watch_cache:
            rows.append(Row("gateway RSS idle (after one call)", rss_mib(pid), "MiB", 120.0))
        goal = 1.3 if watch_cache else None
        for what, tool_name, arguments, reference, reads in (
            ("get_cluster_status", "get_cluster_status", {"name": "gw", "namespace": namespace}, raw_get,
             status_reads),
            (f"list_postgres_clusters ({SMALL})", "list_postgres_clusters", {"namespace": namespace}, raw_clusters,
             clusters_reads),
            (f"list_postgres_roles ({SMALL})", "list_postgres_roles", {"cluster_name": "gw", "namespace": namespace},
             raw_roles, roles_reads),
        ):
            offset = log.stat().st_size if log.exists() else 0
            call = functools.partial(mcp.call_tool, tool_name, arguments)
            with client_validation() as validations:
                tool = median_ms(await timed(calls, call))
            own = handler_ms(log, offset, tool_name)
            split = (f" (gateway {own:.1f} ms" if own is not None else " (") + \
                f", client validation {median_ms(validations):.1f} ms)"
            reference_samples = median_ms(await timed(calls, reference))
            rows.append(Row(f"{what} p50 / raw p50, {mode}", tool / reference_samples, "x", goal,
                            f"tool {tool:.1f} ms{split}, raw {reference_samples:.1f} ms"))
            if not watch_cache:
                needed = median_ms(await timed(calls, reads))
                rows.append(Row(f"{what} p50 / its raw reads p50, {mode}", tool / needed, "x", None,
                                f"its reads {needed:.1f} ms"))
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
    wait_roles_ready(sandbox, namespace)  # list_postgres_roles then shows a settled state
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
    parser.add_argument("--gateway-dir", type=Path, default=None,
                        help="run the gateway from this checkout (compare versions with the same benchmark)")
    args = parser.parse_args(argv)
    if args.gateway_dir:
        OPTIONS["gateway_dir"] = args.gateway_dir.resolve()
    with Sandbox.start() as sandbox:
        print_table(run(sandbox, args.calls, args.clusters)[0])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
