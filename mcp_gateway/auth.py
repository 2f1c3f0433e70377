"""Bearer-token verification for the HTTP transport: static tokens and OIDC/JWT (JWKS)."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import jwt
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.routes import create_protected_resource_routes
from mcp.server.auth.settings import AuthSettings
from pydantic import AnyHttpUrl
from starlette.routing import Route

from mcp_gateway import identity

if TYPE_CHECKING:  # config imports this module's prefixes
    from mcp_gateway.config import GatewayConfig

STATIC_TOKEN_PREFIX = "token:"
OIDC_PREFIX = "oidc:"
STATIC_TOKEN_PREFIXES = identity.Prefixes(STATIC_TOKEN_PREFIX, STATIC_TOKEN_PREFIX)
OIDC_PREFIXES = identity.Prefixes(OIDC_PREFIX, OIDC_PREFIX)


@dataclass(frozen=True)
class StaticToken:
    token: str
    user: str
    groups: tuple[str, ...]


def parse_tokens(lines: Iterable[str], *, default_prefix: str = "token") -> list[StaticToken]:
    """`token[,user[,group1|group2]]` per line; blank lines and # comments ignored."""
    tokens: list[StaticToken] = []
    for index, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split(",")]
        user = parts[1] if len(parts) > 1 and parts[1] else f"{default_prefix}-{index}"
        groups = tuple(g for g in parts[2].split("|") if g) if len(parts) > 2 else ()
        tokens.append(StaticToken(parts[0], user, groups))
    return tokens


def load_static_tokens(token_file: Path | None, tokens_env: str) -> list[StaticToken]:
    tokens = parse_tokens(token_file.read_text().splitlines(), default_prefix="token-file") if token_file else []
    tokens += parse_tokens(tokens_env.split(","), default_prefix="env-token") if tokens_env else []
    return tokens


def identity_claims(user: str, groups: list[str], prefixes: identity.Prefixes) -> dict[str, Any]:
    """The mapped (prefixed) user and groups, or the reason the identity is refused."""
    try:
        mapped = identity.map_identity(user, groups, prefixes)
    except identity.IdentityRefused as refused:
        return {"username": "", "groups": [], identity.REFUSED_CLAIM: str(refused)}
    return {"username": mapped.user, "groups": list(mapped.groups)}


class StaticTokenVerifier(TokenVerifier):
    """Tokens the operator of the gateway handed out: issued for this gateway (`resource`), with every scope
    the gateway requires, so they keep working beside OIDC."""

    def __init__(self, tokens: list[StaticToken],
                 prefixes: identity.Prefixes = STATIC_TOKEN_PREFIXES, *, resource: str | None = None,
                 scopes: Iterable[str] = ()) -> None:
        self._tokens, self._prefixes = tokens, prefixes
        self._resource, self._scopes = resource, list(scopes)

    async def verify_token(self, token: str) -> AccessToken | None:
        match = None
        for candidate in self._tokens:  # compare against every token: no early exit to time
            if hmac.compare_digest(candidate.token.encode(), token.encode()):
                match = candidate
        if match is None:
            return None
        return AccessToken(token=token, client_id=match.user, scopes=list(self._scopes), subject=match.user,
                           resource=self._resource, claims={"iss": "static-token",
                                   **identity_claims(match.user, list(match.groups), self._prefixes)})


class JWTTokenVerifier(TokenVerifier):
    """Verifies signature (JWKS), issuer, audience and expiry; maps claims to user and groups.

    The audience is the gateway's resource URL (RFC 8707): a token the issuer minted for another resource
    carries another `aud` and is refused, so a token stolen from another service cannot be replayed here."""

    def __init__(self, *, issuer: str, audience: str, jwks_url: str, username_claim: str = "sub",
                 groups_claim: str = "groups",
                 prefixes: identity.Prefixes = OIDC_PREFIXES) -> None:
        self.issuer, self.audience, self._prefixes = issuer, audience, prefixes
        self.username_claim, self.groups_claim = username_claim, groups_claim
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=3600)

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            key = await anyio.to_thread.run_sync(self._jwks.get_signing_key_from_jwt, token)
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=["RS256", "ES256", "PS256"], audience=self.audience,
                issuer=self.issuer, options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWTError, OSError):
            return None
        groups = claims.get(self.groups_claim) or []
        user = str(claims.get(self.username_claim) or claims["sub"])
        return AccessToken(token=token, client_id=str(claims.get("azp") or claims.get("client_id") or user),
                           scopes=str(claims.get("scope", "")).split(), expires_at=int(claims["exp"]),
                           subject=str(claims["sub"]), resource=self.audience,
                           claims={"iss": claims["iss"], **identity_claims(
                               user, [str(g) for g in groups] if isinstance(groups, list) else [], self._prefixes)})


class AnyOfVerifiers(TokenVerifier):
    def __init__(self, verifiers: list[TokenVerifier]) -> None:
        self._verifiers = verifiers

    async def verify_token(self, token: str) -> AccessToken | None:
        for verifier in self._verifiers:
            found = await verifier.verify_token(token)
            if found is not None:
                return found
        return None


METADATA_ROOT = "/.well-known/oauth-protected-resource"


def build_auth(config: GatewayConfig) -> tuple[TokenVerifier | None, AuthSettings | None]:
    """The verifier and the SDK's auth settings for the HTTP transport (None, None without authentication).

    With OIDC the gateway is an OAuth protected resource (MCP authorization spec): every 401 names the RFC 9728
    metadata in `WWW-Authenticate`, the metadata names the issuer and scopes, and only tokens issued for
    `config.public_resource_url` are accepted."""
    resource = config.public_resource_url if config.oidc_issuer else None
    verifiers: list[TokenVerifier] = []
    static = load_static_tokens(config.token_file, config.tokens_env)
    if static:
        verifiers.append(StaticTokenVerifier(static, config.token_prefixes, resource=resource,
                                             scopes=config.oidc_scopes))
    if config.oidc_issuer and config.token_audience and config.oidc_jwks_url:
        verifiers.append(JWTTokenVerifier(
            issuer=config.oidc_issuer, audience=config.token_audience, jwks_url=config.oidc_jwks_url,
            username_claim=config.oidc_username_claim, groups_claim=config.oidc_groups_claim,
            prefixes=config.oidc_prefixes))
    if not verifiers:
        return None, None
    verifier = verifiers[0] if len(verifiers) == 1 else AnyOfVerifiers(verifiers)
    issuer = config.oidc_issuer or f"http://{config.host}:{config.port}/"  # static tokens only: never advertised
    settings = AuthSettings(issuer_url=AnyHttpUrl(issuer),
                            resource_server_url=AnyHttpUrl(resource) if resource else None,
                            required_scopes=list(config.oidc_scopes) or None, validate_token_resource=bool(resource))
    return verifier, settings


def root_metadata_route(settings: AuthSettings | None) -> Route | None:
    """The same RFC 9728 metadata at the root well-known path too: clients that get no `WWW-Authenticate`
    header (a proxy may drop it) fall back to it."""
    if settings is None or settings.resource_server_url is None:
        return None
    (route,) = create_protected_resource_routes(resource_url=settings.resource_server_url,
                                                authorization_servers=[settings.issuer_url],
                                                scopes_supported=settings.required_scopes)
    if route.path == METADATA_ROOT:  # the resource is the root itself: already served there
        return None
    return Route(METADATA_ROOT, endpoint=route.app, methods=["GET", "OPTIONS"])
