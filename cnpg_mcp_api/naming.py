"""Kubernetes object names derived from PostgreSQL names (pure, deterministic).

PostgreSQL identifiers allow underscores; Kubernetes object names (RFC 1123) do not. The mapping
replaces `_` with `-`; when that is not a valid name (leading/trailing `-`, too long) a short hash
of the original keeps it unique, so two different PostgreSQL names never share an object.
"""

from __future__ import annotations

import hashlib
import re

_RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 63


def is_rfc1123_label(name: str) -> bool:
    return len(name) <= MAX_NAME and bool(_RFC1123_LABEL.match(name))


def _derive(prefix: str, pg_name: str) -> str:
    candidate = prefix + pg_name.replace("_", "-")
    if is_rfc1123_label(candidate) and "--" not in candidate[len(prefix):]:
        return candidate
    digest = hashlib.sha256(f"{prefix}{pg_name}".encode()).hexdigest()[:8]
    stem = (prefix + pg_name.replace("_", "-").strip("-")).rstrip("-")
    stem = re.sub(r"-{2,}", "-", stem)[: MAX_NAME - len(digest) - 1].rstrip("-")
    return f"{stem}-{digest}"


def role_request_name(cluster: str, role: str) -> str:
    """Name of the PgRoleRequest (and its DatabaseRole) for `role` in `cluster`."""
    return _derive(f"{cluster}-", role)


def database_request_name(cluster: str, database: str) -> str:
    """Name of the PgDatabaseRequest (and its CNPG Database) for `database` in `cluster`."""
    return _derive(f"{cluster}-", database)


def role_secret_name(cluster: str, role: str) -> str:
    """The password Secret: `cnpg-<cluster>-user-<role>` (the original server's naming)."""
    return _derive(f"cnpg-{cluster}-user-", role)


def role_label_value(role: str) -> str:
    """A label value for the role name (label values allow `_`, but keep them readable and short)."""
    return role if len(role) <= MAX_NAME else role[:MAX_NAME]
