"""The MCP tools, grouped by toolset (one module each); `catalog` lists them all."""

from __future__ import annotations

from typing import Any

from mcp.types import CallToolResult, TextContent

from mcp_gateway import render


def result(text: str, data: dict[str, Any], *, as_json: bool = False) -> CallToolResult:
    """Structured content for programs, plus concise text (or the JSON itself with format='json')."""
    shown = render.as_json(data) if as_json else render.truncate(text)
    return CallToolResult(content=[TextContent(type="text", text=shown)], structured_content=data)
