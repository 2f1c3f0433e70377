"""Who is calling: the authenticated user of an HTTP request, for audit and optional impersonation.

The identity comes only from a verified token (never from client-supplied headers). It is recorded
on every intent the gateway creates; with --impersonate, the Kubernetes calls made for that request
carry Impersonate-User/Impersonate-Group, so RBAC and the audit log see the real user.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field

from mcp.server.auth.middleware.auth_context import get_access_token


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = field(default_factory=tuple)


_impersonated: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("impersonated", default=None)


def caller() -> Identity | None:
    """The verified caller of the current MCP request (None on stdio and in memory)."""
    token = get_access_token()
    if token is None:
        return None
    claims = token.claims or {}
    groups = claims.get("groups") or []
    user = str(claims.get("username") or token.subject or token.client_id)
    return Identity(user=user, groups=tuple(str(g) for g in groups if g))


def impersonated() -> Identity | None:
    return _impersonated.get()


def impersonate(identity: Identity | None) -> contextvars.Token[Identity | None]:
    return _impersonated.set(identity)


def reset(token: contextvars.Token[Identity | None]) -> None:
    _impersonated.reset(token)
