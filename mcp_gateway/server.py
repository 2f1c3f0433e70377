"""Builds the MCP server for a configuration, and its HTTP app."""

from __future__ import annotations

import json
from typing import Any

from mcp.server import MCPServer
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.caching import CacheHint
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import CallToolResult, InputRequiredResult
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from cnpg_mcp_api.version import package_version
from mcp_gateway import auth, errors, identity, metrics, registry, resources, subscriptions
from mcp_gateway.config import GatewayConfig
from mcp_gateway.gateway import Gateway
from mcp_gateway.k8s import Kube
from mcp_gateway.namespaces import infer_default_namespace
from mcp_gateway.tools.catalog import TOOLS

SERVER_NAME = "cnpg-mcp"
TOOLS_LIST_TTL_MS = 300_000
INSTRUCTIONS = (
    "Manage PostgreSQL on CloudNativePG. Reads show CNPG's real state; writes create small intent objects "
    "that the cnpg-mcp operator reconciles. Passwords are never returned: tools give the Secret's name. "
    "Use dry_run=true to preview any change."
)


class GatewayServer(MCPServer):
    """The SDK's server, with every call failure coded: argument validation and unknown tools included."""

    gateway: Gateway | None = None  # set by build_server: calls refused before dispatch are audited with it

    async def call_tool(self, name: str, arguments: dict[str, Any],
                        context: Context[Any, Any] | None = None) -> CallToolResult | InputRequiredResult:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):  # the SDK checked the arguments against inputSchema
                refused = errors.from_validation(name, exc.__cause__)
                registry.observe_refused(name, self.gateway, arguments, errors.INVALID_ARGUMENT)
                raise refused from exc.__cause__
            if self._tool_manager.get_tool(name) is None:
                registry.observe_refused(None, self.gateway, arguments, errors.NOT_FOUND)
                raise errors.tool_error(errors.NOT_FOUND, (
                    f"unknown tool {name!r}: this gateway does not offer it (tools/list shows what it offers; "
                    "--read-only, --disable-destructive and --toolsets narrow the list)")) from exc
            raise


def build_server(config: GatewayConfig, kube: Kube | None = None) -> MCPServer:
    kube = kube or Kube.connect(config.kubeconfig, watch_cache=config.watch_cache,
                                max_mirrors=config.watch_cache_max_mirrors,
                                idle_seconds=config.watch_cache_idle_seconds)
    gateway = Gateway(config=config, kube=kube, default_namespace=infer_default_namespace(config.kubeconfig))
    verifier, settings = auth.build_auth(config) if config.transport == "http" else (None, None)
    # The tool list is fixed for a configuration: clients may cache it instead of re-listing before calls.
    # Our own bus: the Cluster watches publish resources/updated onto it (subscriptions.py).
    bus = InMemorySubscriptionBus()
    mcp = GatewayServer(SERVER_NAME, version=package_version(), instructions=INSTRUCTIONS, token_verifier=verifier,
                    auth=settings, cache_hints={"tools/list": CacheHint(ttl_ms=TOOLS_LIST_TTL_MS, scope="public")},
                    subscriptions=bus)
    mcp.gateway = gateway
    registry.register(mcp, gateway, registry.offered(TOOLS, toolsets=config.toolsets, read_only=config.read_only,
                                                     disable_destructive=config.disable_destructive))
    resources.register(mcp, gateway, logs=not config.toolsets or "diagnostics" in config.toolsets)
    subscriptions.register(mcp, gateway, bus)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        ready = await gateway.kube.ready()  # cached: probes cost no API call each
        return JSONResponse({"status": "ok" if ready else "kubernetes API unreachable"},
                            status_code=200 if ready else 503)

    # Probes are plain routes: the SDK never authenticates custom routes, which kubelets need.
    mcp.custom_route("/healthz", methods=["GET"])(healthz)
    mcp.custom_route("/readyz", methods=["GET"])(readyz)
    mcp.custom_route("/metrics", methods=["GET"])(metrics.endpoint)

    return mcp


class RefuseReservedIdentities:
    """403 `IDENTITY_REFUSED` for a valid token that names a `system:` user or group (runs after authentication)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user") if scope["type"] == "http" else None
        refused = (user.access_token.claims or {}).get(identity.REFUSED_CLAIM) \
            if isinstance(user, AuthenticatedUser) else None
        if not refused:
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": errors.IDENTITY_REFUSED,
                           "error_description": f"[{errors.IDENTITY_REFUSED}] {refused}; the gateway never acts as "
                                                "a built-in Kubernetes identity"}).encode()
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def http_app(mcp: MCPServer, config: GatewayConfig) -> Starlette:
    security = None
    if config.allowed_hosts or config.allowed_origins:
        security = TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                             allowed_hosts=list(config.allowed_hosts),
                                             allowed_origins=list(config.allowed_origins))
    app = mcp.streamable_http_app(transport_security=security, host=config.host)
    # Innermost middleware: it runs after the SDK's authentication has put the verified token on the request.
    app.user_middleware.append(Middleware(RefuseReservedIdentities))
    metadata_at_root = auth.root_metadata_route(mcp.settings.auth)
    if metadata_at_root is not None:
        app.router.routes.append(metadata_at_root)
    app.user_middleware.insert(0, Middleware(metrics.CountAuthFailures))  # outermost: sees every 401/403
    return app
