"""Bearer-token verification for the HTTP transport: static tokens and OIDC/JWT (JWKS)."""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import jwt
from mcp.server.auth.provider import AccessToken, TokenVerifier

from mcp_gateway import identity

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
    def __init__(self, tokens: list[StaticToken],
                 prefixes: identity.Prefixes = STATIC_TOKEN_PREFIXES) -> None:
        self._tokens, self._prefixes = tokens, prefixes

    async def verify_token(self, token: str) -> AccessToken | None:
        match = None
        for candidate in self._tokens:  # compare against every token: no early exit to time
            if hmac.compare_digest(candidate.token.encode(), token.encode()):
                match = candidate
        if match is None:
            return None
        return AccessToken(token=token, client_id=match.user, scopes=[], subject=match.user,
                           claims={"iss": "static-token",
                                   **identity_claims(match.user, list(match.groups), self._prefixes)})


class JWTTokenVerifier(TokenVerifier):
    """Verifies signature (JWKS), issuer, audience and expiry; maps claims to user and groups."""

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
