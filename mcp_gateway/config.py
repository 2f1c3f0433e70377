"""Command line and environment of `cnpg-mcp-server`."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 4204
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class GatewayConfig:
    transport: str = "stdio"
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    kubeconfig: str | None = None
    token_file: Path | None = None
    tokens_env: str = ""
    oidc_issuer: str | None = None
    oidc_audience: str | None = None
    oidc_jwks_url: str | None = None
    oidc_username_claim: str = "sub"
    oidc_groups_claim: str = "groups"
    insecure_no_auth: bool = False
    allowed_hosts: tuple[str, ...] = ()
    allowed_origins: tuple[str, ...] = ()
    read_only: bool = False
    disable_destructive: bool = False
    namespace_allow: tuple[str, ...] = field(default_factory=tuple)
    impersonate: bool = False
    watch_cache: bool = False

    @property
    def has_auth(self) -> bool:
        return bool(self.token_file or self.tokens_env or self.oidc_issuer)


def parse_args(argv: list[str] | None = None) -> GatewayConfig:
    parser = argparse.ArgumentParser(
        prog="cnpg-mcp-server",
        description="MCP gateway for CloudNativePG: reads CNPG objects, writes only cnpg-mcp intents.",
    )
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)))
    parser.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, then in-cluster credentials")
    parser.add_argument("--token-file", type=Path, default=None,
                        help="static bearer tokens, one per line: token[,user[,group1|group2]]")
    parser.add_argument("--oidc-issuer", default=os.environ.get("CNPG_MCP_OIDC_ISSUER"))
    parser.add_argument("--oidc-audience", default=os.environ.get("CNPG_MCP_OIDC_AUDIENCE"))
    parser.add_argument("--oidc-jwks-url", default=os.environ.get("CNPG_MCP_OIDC_JWKS_URL"))
    parser.add_argument("--oidc-username-claim", default="sub")
    parser.add_argument("--oidc-groups-claim", default="groups")
    parser.add_argument("--insecure-no-auth", action="store_true",
                        help="serve HTTP without authentication (only allowed on a loopback address)")
    parser.add_argument("--allowed-host", action="append", default=[],
                        help="Host header allowed (repeatable; 'name:*' for any port)")
    parser.add_argument("--allowed-origin", action="append", default=[], help="Origin allowed (repeatable)")
    parser.add_argument("--read-only", action="store_true", help="offer only the read tools")
    parser.add_argument("--disable-destructive", action="store_true", help="do not offer the delete tools")
    parser.add_argument("--namespace-allow", action="append", default=[],
                        help="namespaces the tools may touch (repeatable; default: all)")
    parser.add_argument("--impersonate", action="store_true",
                        help="act on Kubernetes as the authenticated HTTP user (impersonation)")
    parser.add_argument("--watch-cache", action="store_true",
                        help="serve reads from watch-backed mirrors (per namespace, started on first use) "
                             "instead of one API round trip per read; never used for impersonated calls")
    args = parser.parse_args(argv)
    config = GatewayConfig(
        transport=args.transport, host=args.host, port=args.port, kubeconfig=args.kubeconfig,
        token_file=args.token_file, tokens_env=os.environ.get("CNPG_MCP_TOKENS", ""),
        oidc_issuer=args.oidc_issuer, oidc_audience=args.oidc_audience, oidc_jwks_url=args.oidc_jwks_url,
        oidc_username_claim=args.oidc_username_claim, oidc_groups_claim=args.oidc_groups_claim,
        insecure_no_auth=args.insecure_no_auth, allowed_hosts=tuple(args.allowed_host),
        allowed_origins=tuple(args.allowed_origin), read_only=args.read_only,
        disable_destructive=args.disable_destructive, namespace_allow=tuple(args.namespace_allow),
        impersonate=args.impersonate, watch_cache=args.watch_cache,
    )
    problem = config_problem(config)
    if problem:
        parser.error(problem)
    return config


def config_problem(config: GatewayConfig) -> str | None:
    """Refuse configurations that would be unsafe; None when fine."""
    if config.transport != "http":
        return None
    if config.oidc_issuer and not (config.oidc_audience and config.oidc_jwks_url):
        return "--oidc-issuer needs --oidc-audience and --oidc-jwks-url"
    if not config.has_auth and not config.insecure_no_auth:
        return ("HTTP needs authentication: give --token-file, CNPG_MCP_TOKENS or --oidc-issuer "
                "(or --insecure-no-auth on a loopback address for local experiments)")
    if config.insecure_no_auth and config.host not in LOOPBACK:
        return "--insecure-no-auth is only allowed with --host 127.0.0.1, localhost or ::1"
    if config.impersonate and not config.has_auth:
        return "--impersonate needs authenticated users (--token-file, CNPG_MCP_TOKENS or OIDC)"
    return None
