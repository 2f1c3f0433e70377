"""Every tool of the gateway, in documentation order (the registry's source)."""

from __future__ import annotations

from mcp_gateway.registry import ToolSpec
from mcp_gateway.tools import backups, clusters, databases, diagnostics, roles
from mcp_gateway.tools import sql as sql_tools

TOOLS: tuple[ToolSpec, ...] = (*clusters.TOOLS, *roles.TOOLS, *databases.TOOLS, *diagnostics.TOOLS,
                               *backups.TOOLS, *sql_tools.TOOLS)
