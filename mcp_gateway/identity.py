"""Who is calling: the authenticated user of an HTTP request, for audit and optional impersonation.

The identity comes only from a verified token (never from client-supplied headers). Like
kube-apiserver's --oidc-username-prefix/--oidc-groups-prefix, the gateway prefixes every user and
group name it takes from a token (`oidc:` for OIDC, `token:` for static tokens, by default), so a
token can never name a built-in Kubernetes identity: a raw name starting with `system:` (e.g. the
group `system:masters` or a `system:serviceaccount:…` user) is refused outright, and no name may
start with `system:` after prefixing either. The identity is recorded on every intent the gateway
creates; with --impersonate, the Kubernetes calls made for that request carry
Impersonate-User/Impersonate-Group, so RBAC and the audit log see the (prefixed) user.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass, field

from mcp.server.auth.middleware.auth_context import get_access_token

from mcp_gateway import errors

RESERVED_PREFIX = "system:"
NO_PREFIX = "-"  # as for kube-apiserver's --oidc-username-prefix: "-" turns prefixing off
REFUSED_CLAIM = "cnpg_mcp_identity_refused"  # set on a verified token whose identity is refused


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Prefixes:
    """Prepended to user and group names taken from a token ("" for none)."""

    user: str
    groups: str

    @classmethod
    def of(cls, user: str, groups: str) -> Prefixes:
        return cls(user="" if user == NO_PREFIX else user, groups="" if groups == NO_PREFIX else groups)


class IdentityRefused(ValueError):
    """A verified token names an identity the gateway will not act as."""


def map_identity(user: str, groups: Iterable[str], prefixes: Prefixes) -> Identity:
    """The Kubernetes identity for a token's user and groups: prefixed, never a `system:` name."""
    raw_groups = [g for g in groups if g]
    if not user:
        raise IdentityRefused("the token names no user")
    for name, what in [(user, "user"), *((g, "group") for g in raw_groups)]:
        if name.startswith(RESERVED_PREFIX):
            raise IdentityRefused(f"the token's {what} {name!r} is a reserved Kubernetes name ({RESERVED_PREFIX}*)")
    mapped = Identity(user=prefixes.user + user, groups=tuple(prefixes.groups + g for g in raw_groups))
    for name in (mapped.user, *mapped.groups):
        if name.startswith(RESERVED_PREFIX):  # only possible with a misconfigured prefix; never act on it
            raise IdentityRefused(f"{name!r} would be a reserved Kubernetes name ({RESERVED_PREFIX}*)")
    return mapped


def prefix_problem(prefix: str, flag: str) -> str | None:
    if prefix.startswith(RESERVED_PREFIX):
        return f"{flag} must not start with {RESERVED_PREFIX!r}: that would name built-in Kubernetes identities"
    return None


_impersonated: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("impersonated", default=None)


def caller() -> Identity | None:
    """The verified caller of the current MCP request (None on stdio and in memory).

    The verifier has already mapped the names; a refused identity never gets this far over HTTP
    (the app answers 403), and is refused here too so no code path can act on it.
    """
    token = get_access_token()
    if token is None:
        return None
    claims = token.claims or {}
    if claims.get(REFUSED_CLAIM):
        raise errors.tool_error(errors.IDENTITY_REFUSED, str(claims[REFUSED_CLAIM]))
    groups = claims.get("groups") or []
    user = str(claims.get("username") or token.subject or token.client_id)
    return Identity(user=user, groups=tuple(str(g) for g in groups if g))


def impersonated() -> Identity | None:
    return _impersonated.get()


def impersonate(identity: Identity | None) -> contextvars.Token[Identity | None]:
    return _impersonated.set(identity)


def reset(token: contextvars.Token[Identity | None]) -> None:
    _impersonated.reset(token)
