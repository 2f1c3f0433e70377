"""`cnpg-mcp-operator` / `python -m cnpg_mcp_operator`: runs the Kopf operator in the foreground."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import os
import sys
from collections.abc import Sequence

import kopf

from cnpg_mcp_api.version import package_version
from cnpg_mcp_operator import kopf_toggles, metrics
from cnpg_mcp_operator.config import parse_args
from cnpg_mcp_operator.registry import REGISTRY

READY_LINE = "cnpg-mcp-operator ready"

# glibc's mallopt() parameter (malloc.h) and the arenas the operator keeps (docs/performance.md, pass 3).
M_ARENA_MAX = -8
MALLOC_ARENAS = 2


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None  # not glibc (musl has no arenas and no malloc_trim): nothing to tune


def cap_malloc_arenas(libc: ctypes.CDLL | None) -> bool:
    """Caps glibc's malloc arenas at MALLOC_ARENAS, as MALLOC_ARENA_MAX=2 in the environment would.

    Why: glibc gives threads that allocate at the same time arenas of their own (up to 8 per core),
    and memory freed in one arena is never reused by another, so the threads of the Kubernetes
    client and asyncio's executor grew the RSS with arenas, not data. Why from here and not only from
    the environment: glibc fixes the arena limit the first time a thread needs a new arena (no thread
    has started when main() runs), so mallopt() now is as good as the variable at exec time, and it
    holds however the operator is started (container, `pip install`, tests, the benchmarks).
    An operator's own MALLOC_ARENA_MAX wins (glibc read it at start-up; we leave it alone).
    """
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS))


# How often freed heap pages go back to the OS (after a burst of events, or the start-up's LISTs).
TRIM_INTERVAL = 60.0


def freeze_startup_objects() -> None:
    """At the ready line (modules, settings, the runtime; nothing indexed yet): into the collector's
    permanent generation, so the collections that the indexes' churn triggers stop scanning them."""
    gc.collect()
    gc.freeze()


async def trim_heap_periodically(libc: ctypes.CDLL | None) -> None:
    """glibc keeps freed memory in its heaps; CPython's objects are small, so whole free pages sit
    between live ones and only malloc_trim() hands them back (RSS after a burst, docs/performance.md)."""
    if libc is None:
        return
    while True:
        await asyncio.sleep(TRIM_INTERVAL)
        libc.malloc_trim(0)


def _load_handlers() -> None:
    """Importing the handler modules registers them in REGISTRY."""
    from cnpg_mcp_operator import settings  # noqa: F401, PLC0415
    from cnpg_mcp_operator.handlers import cnpg_observers, intents  # noqa: F401, PLC0415


def main(argv: Sequence[str] | None = None) -> int:
    if "--version" in (sys.argv[1:] if argv is None else argv):  # before parse_args: it requires a scope
        print(f"cnpg-mcp-operator {package_version()}")
        return 0
    config = parse_args(argv)
    if config.kubeconfig:
        os.environ["KUBECONFIG"] = config.kubeconfig  # Kopf's own login reads it too
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    for noisy in ("kubernetes", "aiohttp", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    libc = _glibc()
    cap_malloc_arenas(libc)
    kopf_toggles.install()  # startup wake-ups linear in the objects watched, not quadratic
    _load_handlers()
    ready = asyncio.Event()

    async def run() -> None:
        async def announce() -> None:
            await ready.wait()
            freeze_startup_objects()
            print(READY_LINE, flush=True)

        announcer = asyncio.create_task(announce())
        trimmer = asyncio.create_task(trim_heap_periodically(libc))
        exporter = await metrics.serve(config.metrics) if config.metrics else None
        try:
            await kopf.operator(
                registry=REGISTRY,
                memo=kopf.Memo(config=config),
                # Peering (--peering): replicas share a peering object; only the highest priority acts.
                standalone=config.peering is None,
                peering_name=config.peering,
                priority=config.peering_priority,
                clusterwide=config.clusterwide,
                namespaces=list(config.namespaces),
                liveness_endpoint=config.liveness,
                ready_flag=ready,
            )
        finally:
            announcer.cancel()
            trimmer.cancel()
            if exporter is not None:
                await exporter.cleanup()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
