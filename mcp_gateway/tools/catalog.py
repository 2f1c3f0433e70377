"""Every tool of the gateway, in documentation order (the registry's source)."""

from __future__ import annotations

from mcp_gateway.registry import ToolSpec
from mcp_gateway.tools import cluster_config, clusters, databases, diagnostics, poolers, roles

TOOLS: tuple[ToolSpec, ...] = (*clusters.TOOLS, *roles.TOOLS, *databases.TOOLS, *diagnostics.TOOLS,
                               *poolers.TOOLS, *cluster_config.TOOLS)
