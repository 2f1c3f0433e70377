"""`cnpg-mcp-operator` / `python -m cnpg_mcp_operator`: runs the Kopf operator in the foreground."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Sequence

import kopf

from cnpg_mcp_api.version import package_version
from cnpg_mcp_operator import metrics
from cnpg_mcp_operator.config import parse_args
from cnpg_mcp_operator.registry import REGISTRY

READY_LINE = "cnpg-mcp-operator ready"


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
    _load_handlers()
    ready = asyncio.Event()

    async def run() -> None:
        async def announce() -> None:
            await ready.wait()
            print(READY_LINE, flush=True)

        announcer = asyncio.create_task(announce())
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
            if exporter is not None:
                await exporter.cleanup()

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
