"""Names shared by the operator (which provisions read-only SQL credentials) and the MCP gateway
(which reads them from a mounted Secret, never through the API): docs/diagnosis.md,
"Read-only SQL: credentials and TLS"."""

from __future__ import annotations

from typing import Final

# The login role the operator provisions in every cluster whose PgClusterRequest enables
# spec.readOnlyQueries: LOGIN, member of pg_monitor only (never pg_read_all_data). Not `cnpg_...`:
# CloudNativePG reserves that prefix (its webhook refuses such DatabaseRoles), PostgreSQL reserves `pg_`.
READONLY_ROLE_NAME: Final = "mcp_readonly"
READONLY_ROLE_MEMBERSHIPS: Final = ("pg_monitor",)
# At most this many sessions of the read-only role at once (the gateway pools a few).
READONLY_ROLE_CONNECTION_LIMIT: Final = 10
# The operator-owned Secret in the gateway's namespace, one key per enabled cluster, and where the
# gateway Deployment mounts it.
SQL_CREDENTIALS_SECRET: Final = "cnpg-mcp-sql-credentials"
SQL_CREDENTIALS_MOUNT: Final = "/var/run/cnpg-mcp/sql"
SQL_SSLMODE: Final = "verify-full"


def credentials_key(namespace: str, cluster: str) -> str:
    """The key of one cluster's credentials in the projection Secret (a valid Secret data key:
    namespace and cluster names are DNS labels, so the dots separate them unambiguously)."""
    return f"{namespace}.{cluster}.json"


def readonly_request_name(cluster: str) -> str:
    """The name of the PgRoleRequest the operator creates for `cluster` (cluster names are at most 50
    characters, so this stays a valid object name)."""
    return f"{cluster}-mcp-readonly"
