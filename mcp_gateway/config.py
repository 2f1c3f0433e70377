"""Command line and environment of `cnpg-mcp-server`."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from cnpg_mcp_api.version import package_version
from mcp_gateway import identity
from mcp_gateway.auth import OIDC_PREFIX, STATIC_TOKEN_PREFIX
from mcp_gateway.registry import OPT_IN_TOOLSETS, TOOLSETS
from mcp_gateway.sql.credentials import parse_endpoint

DEFAULT_PORT = 4204
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Where the operator-projected read-only SQL credentials are mounted (one <namespace>.<cluster>.json each).
DEFAULT_SQL_CREDENTIALS_DIR = Path("/var/run/cnpg-mcp/sql")


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
    watch_cache_max_mirrors: int = 64
    watch_cache_idle_seconds: float = 600.0
    oidc_username_prefix: str = OIDC_PREFIX
    oidc_groups_prefix: str = OIDC_PREFIX
    token_username_prefix: str = STATIC_TOKEN_PREFIX
    token_groups_prefix: str = STATIC_TOKEN_PREFIX
    allow_any_host: bool = False
    toolsets: tuple[str, ...] = ()  # empty: every toolset
    resource_url: str | None = None
    oidc_scopes: tuple[str, ...] = ()
    audit_log: Path | None = None  # None: audit lines go to stderr
    # Read-only SQL (toolsets sql and diagnostics): credentials directory, sandbox endpoint override, limits.
    sql_credentials_dir: Path = DEFAULT_SQL_CREDENTIALS_DIR
    sql_endpoint_override: str | None = None  # HOST:PORT libpq connects to; the file's host is still verified
    sql_statement_timeout_ms: int = 5000
    sql_max_bytes: int = 64_000

    @property
    def has_auth(self) -> bool:
        return bool(self.token_file or self.tokens_env or self.oidc_issuer)

    @property
    def public_resource_url(self) -> str | None:
        """The URL clients reach /mcp at: the OAuth resource tokens must be issued for (RFC 8707/9728)."""
        if self.resource_url:
            return self.resource_url
        audience = self.oidc_audience or ""
        return audience if audience.startswith(("https://", "http://")) else None

    @property
    def token_audience(self) -> str | None:
        """The `aud` an OIDC token must carry: the resource URL unless --oidc-audience says otherwise."""
        return self.oidc_audience or self.resource_url

    @property
    def oidc_prefixes(self) -> identity.Prefixes:
        return identity.Prefixes.of(self.oidc_username_prefix, self.oidc_groups_prefix)

    @property
    def token_prefixes(self) -> identity.Prefixes:
        return identity.Prefixes.of(self.token_username_prefix, self.token_groups_prefix)


def parse_args(argv: list[str] | None = None) -> GatewayConfig:
    parser = argparse.ArgumentParser(
        prog="cnpg-mcp-server",
        description="MCP gateway for CloudNativePG: reads CNPG objects, writes only cnpg-mcp intents.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", DEFAULT_PORT)))
    parser.add_argument("--kubeconfig", default=None, help="default: $KUBECONFIG, then in-cluster credentials")
    parser.add_argument("--token-file", type=Path, default=None,
                        help="static bearer tokens, one per line: token[,user[,group1|group2]]")
    parser.add_argument("--oidc-issuer", default=os.environ.get("CNPG_MCP_OIDC_ISSUER"))
    parser.add_argument("--oidc-audience", default=os.environ.get("CNPG_MCP_OIDC_AUDIENCE"))
    parser.add_argument("--oidc-jwks-url", default=os.environ.get("CNPG_MCP_OIDC_JWKS_URL"))
    parser.add_argument("--resource-url", default=os.environ.get("CNPG_MCP_RESOURCE_URL"),
                        help="public URL of this gateway's /mcp endpoint (e.g. https://cnpg-mcp.example.com/mcp): "
                             "the OAuth resource OIDC tokens must be issued for; announced to clients in "
                             "/.well-known/oauth-protected-resource (default: --oidc-audience when it is a URL)")
    parser.add_argument("--oidc-scope", action="append",
                        default=os.environ.get("CNPG_MCP_OIDC_SCOPES", "").split(),
                        help="scope every token must carry, announced to clients (repeatable; "
                             "$CNPG_MCP_OIDC_SCOPES space-separated)")
    parser.add_argument("--oidc-username-claim", default="sub")
    parser.add_argument("--oidc-groups-claim", default="groups")
    prefix_help = "prepended to every {} name from {} ('-' for none; names from a token never start with system:)"
    parser.add_argument("--oidc-username-prefix", default=OIDC_PREFIX,
                        help=prefix_help.format("user", "an OIDC token") + f" (default {OIDC_PREFIX!r})")
    parser.add_argument("--oidc-groups-prefix", default=OIDC_PREFIX,
                        help=prefix_help.format("group", "an OIDC token") + f" (default {OIDC_PREFIX!r})")
    parser.add_argument("--token-username-prefix", default=STATIC_TOKEN_PREFIX,
                        help=prefix_help.format("user", "a static token") + f" (default {STATIC_TOKEN_PREFIX!r})")
    parser.add_argument("--token-groups-prefix", default=STATIC_TOKEN_PREFIX,
                        help=prefix_help.format("group", "a static token") + f" (default {STATIC_TOKEN_PREFIX!r})")
    parser.add_argument("--insecure-no-auth", action="store_true",
                        help="serve HTTP without authentication (only allowed on a loopback address)")
    parser.add_argument("--allowed-host", action="append", default=[],
                        help="Host header allowed (repeatable; 'name:*' for any port)")
    parser.add_argument("--allowed-origin", action="append", default=[], help="Origin allowed (repeatable)")
    parser.add_argument("--allow-any-host", action="store_true",
                        help="serve HTTP on a non-loopback address without --allowed-host (no DNS-rebinding "
                             "protection; only behind a proxy that checks Host itself)")
    parser.add_argument("--read-only", action="store_true", help="offer only the tools annotated read-only")
    parser.add_argument("--disable-destructive", action="store_true",
                        help="do not offer the tools annotated destructive (deletes, scaling, role updates)")
    parser.add_argument("--toolsets", default="",
                        help=f"comma-separated toolsets to offer (default: all of {','.join(TOOLSETS)} but "
                             f"{','.join(OPT_IN_TOOLSETS)}, which is offered only when named)")
    parser.add_argument("--namespace-allow", action="append", default=[],
                        help="namespaces the tools may touch (repeatable; default: all)")
    parser.add_argument("--impersonate", action="store_true",
                        help="act on Kubernetes as the authenticated HTTP user (impersonation)")
    parser.add_argument("--watch-cache", action="store_true",
                        help="serve reads from watch-backed mirrors (per namespace, started on first use) "
                             "instead of one API round trip per read; never used for impersonated calls")
    parser.add_argument("--watch-cache-max-mirrors", type=int, default=64,
                        help="most mirrors (one watch each) kept at once; the least recently read goes first")
    parser.add_argument("--watch-cache-idle-seconds", type=float, default=600.0,
                        help="a mirror not read for this long is stopped (its watch ends)")
    parser.add_argument("--audit-log", type=Path, default=None, metavar="PATH",
                        help="append the audit trail (one JSON line per tool call) to this file (default: stderr)")
    parser.add_argument("--sql-credentials-dir", type=Path, metavar="DIR",
                        default=Path(os.environ.get("CNPG_MCP_SQL_CREDENTIALS_DIR") or DEFAULT_SQL_CREDENTIALS_DIR),
                        help="folder of the read-only SQL credentials the operator mounts, one "
                             "<namespace>.<cluster>.json per enabled cluster, re-read on every call "
                             f"(default {DEFAULT_SQL_CREDENTIALS_DIR}; $CNPG_MCP_SQL_CREDENTIALS_DIR)")
    parser.add_argument("--sql-endpoint-override", metavar="HOST:PORT",
                        default=os.environ.get("CNPG_MCP_SQL_ENDPOINT_OVERRIDE"),
                        help="sandbox/dev only: connect read-only SQL to this address instead of the credentials' "
                             "host, which stays the name the server certificate is verified against")
    parser.add_argument("--sql-statement-timeout-ms", type=int, default=5000,
                        help="statement_timeout of read-only SQL, in milliseconds (default 5000)")
    parser.add_argument("--sql-max-bytes", type=int, default=64_000,
                        help="most bytes of row data one read-only SQL call returns (default 64000)")
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
        watch_cache_max_mirrors=args.watch_cache_max_mirrors, watch_cache_idle_seconds=args.watch_cache_idle_seconds,
        oidc_username_prefix=args.oidc_username_prefix, oidc_groups_prefix=args.oidc_groups_prefix,
        token_username_prefix=args.token_username_prefix, token_groups_prefix=args.token_groups_prefix,
        allow_any_host=args.allow_any_host, resource_url=args.resource_url, oidc_scopes=tuple(args.oidc_scope),
        toolsets=tuple(name.strip() for name in args.toolsets.split(",") if name.strip()),
        audit_log=args.audit_log, sql_credentials_dir=args.sql_credentials_dir,
        sql_endpoint_override=args.sql_endpoint_override, sql_statement_timeout_ms=args.sql_statement_timeout_ms,
        sql_max_bytes=args.sql_max_bytes,
    )
    problem = config_problem(config)
    if problem:
        parser.error(problem)
    return config


def config_problem(config: GatewayConfig) -> str | None:
    """Refuse configurations that would be unsafe; None when fine."""
    if config.watch_cache_max_mirrors < 1 or config.watch_cache_idle_seconds <= 0:
        return "--watch-cache-max-mirrors must be at least 1 and --watch-cache-idle-seconds positive"
    for flag, prefix in [("--oidc-username-prefix", config.oidc_username_prefix),
                         ("--oidc-groups-prefix", config.oidc_groups_prefix),
                         ("--token-username-prefix", config.token_username_prefix),
                         ("--token-groups-prefix", config.token_groups_prefix)]:
        problem = identity.prefix_problem(prefix, flag)
        if problem:
            return problem
    problem = _sql_problem(config)
    if problem:
        return problem
    unknown = sorted(set(config.toolsets) - set(TOOLSETS))
    if unknown:
        return f"--toolsets: unknown toolset(s) {', '.join(unknown)}; known: {', '.join(TOOLSETS)}"
    if config.transport != "http":
        return None
    if config.oidc_issuer and not (config.public_resource_url and config.oidc_jwks_url):
        return ("--oidc-issuer needs --oidc-audience or --resource-url set to the public URL of this gateway's /mcp "
                "endpoint (clients request tokens for it; the gateway checks it as the token audience), "
                "and --oidc-jwks-url")
    if (config.oidc_issuer and config.resource_url and config.oidc_audience
            and config.oidc_audience.rstrip("/") != config.resource_url.rstrip("/")):
        return (f"--oidc-audience {config.oidc_audience!r} differs from --resource-url {config.resource_url!r}: "
                "MCP clients ask the issuer for tokens bound to the resource URL, so that is the audience; "
                "drop --oidc-audience")
    if config.resource_url and not config.resource_url.startswith(("https://", "http://")):
        return f"--resource-url must be an http(s) URL, got {config.resource_url!r}"
    if not config.has_auth and not config.insecure_no_auth:
        return ("HTTP needs authentication: give --token-file, CNPG_MCP_TOKENS or --oidc-issuer "
                "(or --insecure-no-auth on a loopback address for local experiments)")
    if config.insecure_no_auth and config.host not in LOOPBACK:
        return "--insecure-no-auth is only allowed with --host 127.0.0.1, localhost or ::1"
    if config.host not in LOOPBACK and not config.allowed_hosts and not config.allow_any_host:
        return (f"HTTP on {config.host} needs a Host allow-list (DNS-rebinding protection): give --allowed-host "
                "with the names clients use (e.g. --allowed-host 'cnpg-mcp.example.com:*'), or --allow-any-host "
                "if a proxy in front checks Host")
    if config.impersonate and not config.has_auth:
        return "--impersonate needs authenticated users (--token-file, CNPG_MCP_TOKENS or OIDC)"
    return None


def _sql_problem(config: GatewayConfig) -> str | None:
    if not 100 <= config.sql_statement_timeout_ms <= 300_000:
        return "--sql-statement-timeout-ms must be between 100 and 300000"
    if not 1000 <= config.sql_max_bytes <= 10_000_000:
        return "--sql-max-bytes must be between 1000 and 10000000"
    if config.sql_endpoint_override:
        try:
            parse_endpoint(config.sql_endpoint_override)
        except ValueError as exc:
            return f"--sql-endpoint-override: {exc}"
    return None
