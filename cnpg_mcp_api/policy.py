"""Who may ask for what: the role policy, shared by the CRD's CEL rules and the operator.

The CRD refuses privileged requests that do not say `privileged: true`; the operator refuses
privileged requests in namespaces the admin has not allowed (`--allow-privileged-namespace`), and
roles that would take over the cluster's bootstrap owner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnpg_mcp_api.models import RESERVED_ROLE_NAMES

PRIVILEGED_ATTRIBUTES = ("superuser", "replication", "bypassrls")
# Membership in these gives a superuser's or replication's powers, or a predefined pg_* role.
PRIVILEGED_MEMBERSHIPS = ("postgres", "streaming_replica")


def is_reserved_role(name: str) -> bool:
    return name in RESERVED_ROLE_NAMES or name.startswith("pg_")


def is_privileged_membership(name: str) -> bool:
    return name in PRIVILEGED_MEMBERSHIPS or name.startswith("pg_")


def role_request_violations(spec: Mapping[str, Any], *, allow_privileged: bool,
                            bootstrap_owner: str | None) -> list[str]:
    """Human-readable reasons to refuse a PgRoleRequest spec (camelCase wire dict); empty = allowed."""
    violations: list[str] = []
    role = str(spec.get("roleName", ""))
    if is_reserved_role(role):
        violations.append(f"role name {role!r} is reserved for CloudNativePG or PostgreSQL")
    if bootstrap_owner and role == bootstrap_owner:
        violations.append(f"role {role!r} is the cluster's bootstrap owner, managed by CloudNativePG itself")
    if not allow_privileged:
        asked = [attr for attr in PRIVILEGED_ATTRIBUTES if spec.get(attr)]
        asked += [f"membership in {r}" for r in spec.get("inRoles") or [] if is_privileged_membership(str(r))]
        if asked:
            violations.append(
                f"{', '.join(asked)} need(s) an admin policy: this namespace is not allowed privileged roles "
                "(operator flag --allow-privileged-namespace)"
            )
    return violations
