"""Every tool of the gateway, in documentation order (the registry's source)."""

from __future__ import annotations

from mcp_gateway.registry import ToolSpec
from mcp_gateway.tools import backups, cluster_config, clusters, databases, diagnostics, operations, poolers, roles
from mcp_gateway.tools import sql as sql_tools

TOOLS: tuple[ToolSpec, ...] = (*clusters.TOOLS, *cluster_config.TOOLS, *roles.TOOLS, *databases.TOOLS,
                               *diagnostics.TOOLS, *backups.TOOLS, *operations.TOOLS, *poolers.TOOLS,
                               *sql_tools.TOOLS)
