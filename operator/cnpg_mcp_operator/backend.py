"""Which CNPG mechanism carries a PgRoleRequest: a DatabaseRole object or a Cluster.spec.managed.roles entry.

Decided at run time: CNPG ≥ 1.30 serves the DatabaseRole kind; older CNPG does not. An intent keeps the
backend it started with (recorded in status.backend), so a later CNPG upgrade never strands a role.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Any

from cnpg_mcp_api import constants
from cnpg_mcp_operator.k8s import DATABASE_ROLES, Api

log = logging.getLogger(__name__)


class RoleBackend(enum.StrEnum):
    DATABASE_ROLE = "DatabaseRole"
    MANAGED_ROLES = "ManagedRoles"


CHOICES = ("auto", "databaserole", "managed-roles")
_FORCED = {"databaserole": RoleBackend.DATABASE_ROLE, "managed-roles": RoleBackend.MANAGED_ROLES}


async def detect_role_backend(api: Api, choice: str) -> RoleBackend:
    """`choice` is auto|databaserole|managed-roles; auto asks the API server for the DatabaseRole kind."""
    if choice in _FORCED:
        return _FORCED[choice]
    if choice != "auto":
        raise ValueError(f"role backend must be one of {', '.join(CHOICES)}, not {choice!r}")
    served = await api.group_resources(constants.CNPG_GROUP, constants.CNPG_VERSION) or set()
    backend = RoleBackend.DATABASE_ROLE if DATABASE_ROLES.plural in served else RoleBackend.MANAGED_ROLES
    log.info("role backend: %s (auto-detected)", backend.value)
    return backend


def backend_of(status: Mapping[str, Any], detected: RoleBackend) -> RoleBackend:
    """The backend an intent already uses (status.backend), else the detected one."""
    recorded = status.get("backend")
    try:
        return RoleBackend(recorded) if recorded else detected
    except ValueError:
        return detected
