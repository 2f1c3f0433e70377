"""The MCP tools, grouped by toolset (one module each); `catalog` lists them all."""

from __future__ import annotations

from typing import Any

from mcp.types import CallToolResult, TextContent

from mcp_gateway import errors, render
from mcp_gateway.gateway import Gateway


def result(text: str, data: dict[str, Any], *, as_json: bool = False) -> CallToolResult:
    """Structured content for programs, plus concise text (or the JSON itself with format='json')."""
    shown = render.as_json(data) if as_json else render.truncate(text)
    return CallToolResult(content=[TextContent(type="text", text=shown)], structured_content=data)


async def delete_request(gw: Gateway, plural: str, namespace: str, name: str, *, dry_run: bool, doing: str,
                         missing: str) -> dict[str, Any]:
    """Delete a managed intent, returning it as it was; NOT_FOUND saying `missing` when there is none."""
    async with gw.acting(doing):
        request = await gw.kube.intent_get_or_none(plural, namespace, name)
        if request is None:
            raise errors.tool_error(errors.NOT_FOUND, missing)
        await gw.kube.delete_intent(plural, namespace, name, dry_run=dry_run)
    return request
