"""The gateway's default path (no watch cache) next to the original cnpg-mcp server, like for like.

    .venv/bin/python -m bench.original --original "PYTHON SERVER.py" [--calls 100]

Both run over stdio with one client, on the same sandbox, the same namespace and objects, the same calls;
their samples are interleaved (one call of each in turn) so that the machine's load weighs on both alike.
The original is not part of this repository: `--original` (or $CNPG_MCP_ORIGINAL) is the command line that
starts it, e.g. a checkout of its single-file server (`cnpg_mcp_server.py` of waTeim/cnpg-mcp, the version
whose README is the seed of this project) run by a Python that has its requirements (fastmcp 2.x, kubernetes,
pyyaml). Without it the figure is reported as not measured.

What "the same call" returns differs where the designs differ: the original lists the roles in the Cluster's
`spec.managed.roles` only; cnpg-mcp also reads its requests and CNPG DatabaseRoles. That is the work each
does to answer the question, so it is what is compared.
"""

from __future__ import annotations

import argparse
import functools
import os
import shlex
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from bench.common import Row, median_ms, print_table
from bench.gateway import prepare_small, stdio_gateway, wait_roles_ready
from bench.sandbox import Sandbox

ENVIRONMENT = "CNPG_MCP_ORIGINAL"
WARM_UP = 3


def original_server(sandbox: Sandbox, command: str) -> StdioServerParameters:
    """The original as a desktop client starts it (stdio is its default transport)."""
    env = {**os.environ, "KUBECONFIG": str(sandbox.kubeconfig)}
    log = shlex.quote(str(sandbox.folder / "original.log"))
    return StdioServerParameters(command="sh", args=["-c", f"exec {command} 2>>{log}"], env=env)


async def interleaved(calls: int, ours: Callable[[], Awaitable[Any]],
                      theirs: Callable[[], Awaitable[Any]]) -> tuple[list[float], list[float]]:
    for _ in range(WARM_UP):
        await ours()
        await theirs()
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(calls):
        for call, into in ((ours, samples[0]), (theirs, samples[1])):
            started = time.perf_counter()
            result = await call()
            into.append(time.perf_counter() - started)
            if getattr(result, "is_error", False):
                raise RuntimeError(f"a compared call failed: {result.content}")
    return samples


async def compare(sandbox: Sandbox, namespace: str, command: str, calls: int) -> list[Row]:
    rows = []
    async with Client(stdio_gateway(sandbox)) as ours, Client(original_server(sandbox, command)) as theirs:
        for tool, arguments in (
            ("get_cluster_status", {"name": "gw", "namespace": namespace}),
            ("list_postgres_clusters", {"namespace": namespace}),
            ("list_postgres_roles", {"cluster_name": "gw", "namespace": namespace}),
            ("list_postgres_databases", {"cluster_name": "gw", "namespace": namespace}),
        ):
            mine, original = await interleaved(calls, functools.partial(ours.call_tool, tool, arguments),
                                               functools.partial(theirs.call_tool, tool, arguments))
            tool_ms, original_ms = median_ms(mine), median_ms(original)
            rows.append(Row(f"{tool} p50 / original's p50, no cache", tool_ms / original_ms, "x", 1.0,
                            f"cnpg-mcp {tool_ms:.1f} ms, original {original_ms:.1f} ms"))
    return rows


def run(sandbox: Sandbox, command: str | None, calls: int, namespace: str | None = None) -> list[Row]:
    if not command:
        return [Row("gateway p50 / original's p50, no cache", float("nan"), "x", 1.0,
                    f"not measured: give --original or ${ENVIRONMENT} (the command that starts the original)")]
    if namespace is None:
        namespace = prepare_small(sandbox)
        wait_roles_ready(sandbox, namespace)
    return anyio.run(compare, sandbox, namespace, command, calls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", default=os.environ.get(ENVIRONMENT), help="command that starts the original")
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args(argv)
    with Sandbox.start() as sandbox:
        print_table(run(sandbox, args.original, args.calls))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
