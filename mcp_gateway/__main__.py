"""`cnpg-mcp-server`: the MCP gateway over stdio (default) or streamable HTTP."""

from __future__ import annotations

import logging
import sys

import uvicorn

from mcp_gateway import audit, tracing
from mcp_gateway.config import parse_args
from mcp_gateway.k8s import NoCredentials
from mcp_gateway.server import build_server, http_app


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    audit.configure(config.audit_log)
    tracing.configure_from_environment()
    try:
        mcp = build_server(config)
    except NoCredentials as missing:  # one line saying what was looked for, not a traceback
        print(f"cnpg-mcp-server: {missing}", file=sys.stderr, flush=True)
        sys.exit(2)
    if config.transport == "stdio":
        mcp.run("stdio")
        return
    app = http_app(mcp, config)
    print(f"cnpg-mcp gateway listening on http://{config.host}:{config.port}/mcp", file=sys.stderr, flush=True)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")


if __name__ == "__main__":
    main()
