"""Every tool of the gateway, in documentation order (the registry's source)."""

from __future__ import annotations

from mcp_gateway.registry import ToolSpec
from mcp_gateway.tools import clusters, databases, diagnostics, operations, roles

TOOLS: tuple[ToolSpec, ...] = (*clusters.TOOLS, *roles.TOOLS, *databases.TOOLS, *diagnostics.TOOLS,
                               *operations.TOOLS)
