"""Who may ask for what: the role policy, shared by the CRD's CEL rules and the operator.

A privileged request is one that asks for superuser, replication, bypassrls or createrole (close to
superuser before PostgreSQL 16), or for membership in a role it has no business joining: PostgreSQL's
reserved and predefined `pg_*` roles, the cluster's bootstrap owner (who owns the application
database), or any role that no Ready request of the same namespace produced (another team's role,
one declared elsewhere). A privileged request needs both the requester's acknowledgement
(`privileged: true`) and the admin policy (operator flag `--allow-privileged-namespace`).

The CRD refuses what it can judge alone (attributes, `pg_*`); the operator judges everything, since
only it knows the bootstrap owner and which roles the namespace's requests produced.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from cnpg_mcp_api.models import CNPG_RESERVED_ROLE_PREFIX, RESERVED_ROLE_NAMES

PRIVILEGED_ATTRIBUTES = ("superuser", "replication", "bypassrls", "createrole")
# Membership in these gives a superuser's or replication's powers, or a predefined pg_* role.
PRIVILEGED_MEMBERSHIPS = ("postgres", "streaming_replica")
ADMIN_POLICY_HINT = "the operator's admin policy (--allow-privileged-namespace)"


def is_reserved_role(name: str) -> bool:
    # PostgreSQL refuses CREATE ROLE pg_* in any letter case; CloudNativePG's DatabaseRole CRD refuses
    # names starting with cnpg_ (case-sensitive, like its CEL rule).
    return name in RESERVED_ROLE_NAMES or name.lower().startswith("pg_") or name.startswith(CNPG_RESERVED_ROLE_PREFIX)


def is_privileged_membership(name: str) -> bool:
    return name in PRIVILEGED_MEMBERSHIPS or name.lower().startswith("pg_")


def privileged_asks(spec: Mapping[str, Any], *, bootstrap_owner: str | None,
                    joinable_roles: Collection[str] | None) -> list[str]:
    """What in this spec needs the privileged acknowledgement and the admin policy.

    joinable_roles: the roles Ready requests of the same namespace produced in the same cluster;
    None when unknown (only the rules that need no lookup apply).
    """
    asked = [attr for attr in PRIVILEGED_ATTRIBUTES if spec.get(attr)]
    for member_of in (str(r) for r in spec.get("inRoles") or []):
        if is_privileged_membership(member_of):
            asked.append(f"membership in {member_of}")
        elif bootstrap_owner and member_of == bootstrap_owner:
            asked.append(f"membership in {member_of} (the cluster's bootstrap owner)")
        elif joinable_roles is not None and member_of not in joinable_roles:
            asked.append(f"membership in {member_of} (no Ready request of this namespace produced it)")
    return asked


def role_request_violations(spec: Mapping[str, Any], *, allow_privileged: bool, bootstrap_owner: str | None,
                            joinable_roles: Collection[str] | None = None) -> list[str]:
    """Human-readable reasons to refuse a PgRoleRequest spec (camelCase wire dict); empty = allowed."""
    violations: list[str] = []
    role = str(spec.get("roleName", ""))
    if is_reserved_role(role):
        violations.append(f"role name {role!r} is reserved for CloudNativePG or PostgreSQL")
    if bootstrap_owner and role == bootstrap_owner:
        violations.append(f"role {role!r} is the cluster's bootstrap owner, managed by CloudNativePG itself")
    asked = privileged_asks(spec, bootstrap_owner=bootstrap_owner, joinable_roles=joinable_roles)
    if asked and not spec.get("privileged"):
        violations.append(f"{', '.join(asked)}: privileged, needs privileged: true and {ADMIN_POLICY_HINT}")
    elif asked and not allow_privileged:
        violations.append(f"{', '.join(asked)}: privileged, and this namespace is not allowed privileged roles "
                          f"by {ADMIN_POLICY_HINT}")
    return violations
