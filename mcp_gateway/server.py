"""Builds the MCP server for a configuration, and its HTTP app."""

from __future__ import annotations

from mcp.server import MCPServer
from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.caching import CacheHint
from mcp.server.transport_security import TransportSecuritySettings
from pydantic import AnyHttpUrl
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from mcp_gateway import auth
from mcp_gateway.config import GatewayConfig
from mcp_gateway.gateway import Gateway
from mcp_gateway.k8s import Kube
from mcp_gateway.namespaces import infer_default_namespace
from mcp_gateway.tools import clusters, databases, roles

SERVER_NAME = "cnpg-mcp"
TOOLS_LIST_TTL_MS = 300_000
INSTRUCTIONS = (
    "Manage PostgreSQL on CloudNativePG. Reads show CNPG's real state; writes create small intent objects "
    "that the cnpg-mcp operator reconciles. Passwords are never returned: tools give the Secret's name. "
    "Use dry_run=true to preview any change."
)


def _verifier(config: GatewayConfig) -> TokenVerifier | None:
    verifiers: list[TokenVerifier] = []
    static = auth.load_static_tokens(config.token_file, config.tokens_env)
    if static:
        verifiers.append(auth.StaticTokenVerifier(static))
    if config.oidc_issuer and config.oidc_audience and config.oidc_jwks_url:
        verifiers.append(auth.JWTTokenVerifier(
            issuer=config.oidc_issuer, audience=config.oidc_audience, jwks_url=config.oidc_jwks_url,
            username_claim=config.oidc_username_claim, groups_claim=config.oidc_groups_claim))
    if not verifiers:
        return None
    return verifiers[0] if len(verifiers) == 1 else auth.AnyOfVerifiers(verifiers)


def build_server(config: GatewayConfig, kube: Kube | None = None) -> MCPServer:
    kube = kube or Kube.connect(config.kubeconfig, watch_cache=config.watch_cache)
    gateway = Gateway(config=config, kube=kube, default_namespace=infer_default_namespace(config.kubeconfig))
    verifier = _verifier(config) if config.transport == "http" else None
    settings = None
    if verifier is not None:
        issuer = config.oidc_issuer or f"http://{config.host}:{config.port}/"
        settings = AuthSettings(issuer_url=AnyHttpUrl(issuer), resource_server_url=None,
                                validate_token_resource=False)
    # The tool list is fixed for a configuration: clients may cache it instead of re-listing before calls.
    mcp = MCPServer(SERVER_NAME, version="0.1.0", instructions=INSTRUCTIONS, token_verifier=verifier,
                    auth=settings, cache_hints={"tools/list": CacheHint(ttl_ms=TOOLS_LIST_TTL_MS, scope="public")})
    writes = not config.read_only
    deletes = writes and not config.disable_destructive
    for group in (clusters, roles, databases):
        group.register(mcp, gateway, writes=writes, deletes=deletes)

    async def healthz(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> JSONResponse:
        ready = await gateway.kube.reachable()
        return JSONResponse({"status": "ok" if ready else "kubernetes API unreachable"},
                            status_code=200 if ready else 503)

    # Probes are plain routes: the SDK never authenticates custom routes, which kubelets need.
    mcp.custom_route("/healthz", methods=["GET"])(healthz)
    mcp.custom_route("/readyz", methods=["GET"])(readyz)

    return mcp


def http_app(mcp: MCPServer, config: GatewayConfig) -> Starlette:
    security = None
    if config.allowed_hosts or config.allowed_origins:
        security = TransportSecuritySettings(enable_dns_rebinding_protection=True,
                                             allowed_hosts=list(config.allowed_hosts),
                                             allowed_origins=list(config.allowed_origins))
    return mcp.streamable_http_app(transport_security=security, host=config.host)
