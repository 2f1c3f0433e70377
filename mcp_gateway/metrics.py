"""Prometheus metrics of the gateway, served at /metrics on its HTTP port.

Names follow the OpenTelemetry MCP semantic conventions where one exists: the histogram
`mcp.server.operation.duration` (seconds; attributes mcp.method.name, gen_ai.tool.name, error.type)
becomes `mcp_server_operation_duration_seconds{mcp_method_name,gen_ai_tool_name,error_type}`.
The rest are this project's own counters (`cnpg_mcp_*`). Labels carry tool names and error codes
only: both come from fixed lists, never from what a caller typed.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, disable_created_metrics, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: they double every family for nothing a dashboard reads
OK = "ok"
TOOLS_CALL = "tools/call"
# Tool calls run from milliseconds (a cached read) to minutes (create with wait=true).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)

TOOL_CALLS = Counter("cnpg_mcp_tool_calls", "MCP tool calls by tool and outcome (ok or the error code).",
                     ["tool", "outcome"])
OPERATION_DURATION = Histogram(
    "mcp_server_operation_duration_seconds",
    "MCP request duration as observed by the server (OpenTelemetry mcp.server.operation.duration); "
    "error_type is empty on success, else the error code.",
    ["mcp_method_name", "gen_ai_tool_name", "error_type"], buckets=DURATION_BUCKETS)
TRUNCATIONS = Counter("cnpg_mcp_tool_truncations", "Tool results whose text was cut to the size limit.", ["tool"])
AUTH_FAILURES = Counter("cnpg_mcp_auth_failures",
                        "HTTP requests refused before any tool ran: 401 (no or invalid token) or "
                        "403 (identity refused, insufficient scope).", ["status"])


SUBSCRIPTIONS = Gauge("cnpg_mcp_subscriptions_active",
                      "Open resource subscriptions: listen streams naming resources, and 2025-era resources/subscribe.")
SUBSCRIPTION_WATCHES = Gauge("cnpg_mcp_subscription_watches",
                             "Namespaces whose Clusters the gateway watches for resource subscribers.")


def tool_call(tool: str, outcome: str, seconds: float) -> None:
    TOOL_CALLS.labels(tool=tool, outcome=outcome).inc()
    OPERATION_DURATION.labels(mcp_method_name=TOOLS_CALL, gen_ai_tool_name=tool,
                              error_type="" if outcome == OK else outcome).observe(seconds)


def truncated(tool: str) -> None:
    TRUNCATIONS.labels(tool=tool).inc()


async def endpoint(_: Request) -> Response:
    """The text exposition format; like /healthz, unauthenticated (it holds counts, never names of objects)."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class CountAuthFailures:
    """Counts the 401 and 403 answers of the HTTP app (outermost middleware: it sees every refusal)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (401, 403):
                AUTH_FAILURES.labels(status=str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, counting_send)
