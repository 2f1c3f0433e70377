"""Pure interpretation of what CNPG reports: is an intent's object applied, pending, or blocked?

"Ready" means CNPG says so (phase healthy, `applied: true`, role reconciled), never merely that
we wrote a spec. No I/O here; the inputs are plain bodies from the watch caches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cnpg_mcp_api.constants import CNPG_HEALTHY_PHASE

FAILED_PHASES = frozenset({
    "Cluster is unrecoverable and needs manual intervention",
    "Invalid cluster definition",
    "Cluster has incomplete or invalid image catalog",
    "Cluster cannot proceed to reconciliation due to an unknown plugin being required",
    "Cluster cannot proceed to reconciliation due to an error while interacting with plugins",
    "Unable to create required cluster objects",
    "Cluster cannot execute instance online upgrade due to missing architecture binary",
})
# The status fields this module and the handlers read; the indexes keep only these (views.project).
CLUSTER_STATUS_READ = ("phase", "phaseReason", "instances", "readyInstances", "currentPrimary",
                       "managedRolesStatus", "conditions")  # conditions: ContinuousArchiving (backups)
APPLIED_STATUS_READ = ("applied", "message", "observedGeneration")  # Database, DatabaseRole


@dataclass(frozen=True)
class Verdict:
    ready: bool
    reason: str
    message: str


def _spec(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("spec") or {}


def _status(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("status") or {}


def _generation(obj: Mapping[str, Any]) -> int:
    return int((obj.get("metadata") or {}).get("generation") or 0)


def cluster_verdict(desired_instances: int, cluster: Mapping[str, Any] | None) -> Verdict:
    """Ready only when the phase is healthy and every desired instance is ready."""
    if cluster is None:
        return Verdict(False, "Pending", "waiting for the Cluster to be created")
    status = _status(cluster)
    phase = str(status.get("phase") or "")
    ready_instances = int(status.get("readyInstances") or 0)
    if phase in FAILED_PHASES:
        reason = status.get("phaseReason")
        return Verdict(False, "Blocked", f"CNPG reports: {phase}" + (f" ({reason})" if reason else ""))
    if int(_spec(cluster).get("instances") or 0) != desired_instances:
        return Verdict(False, "Pending", f"waiting for the Cluster to take instances={desired_instances}")
    if phase == CNPG_HEALTHY_PHASE and ready_instances == desired_instances:
        return Verdict(True, "Applied",
                       f"Cluster healthy, {ready_instances}/{desired_instances} instances ready")
    return Verdict(False, "Pending",
                   f"CNPG phase: {phase or 'not reported yet'}, {ready_instances}/{desired_instances} ready")


def crd_applied_verdict(kind: str, obj: Mapping[str, Any] | None, cluster_exists: bool,
                        cluster_name: str) -> Verdict:
    """For CNPG's Database and DatabaseRole: status.applied for the current generation."""
    if obj is None:
        if not cluster_exists:
            return Verdict(False, "ClusterNotFound", f'Cluster "{cluster_name}" not found')
        return Verdict(False, "Pending", f"waiting for the {kind} to be created")
    status = _status(obj)
    message = str(status.get("message") or "")
    current = int(status.get("observedGeneration") or 0) == _generation(obj)
    if status.get("applied") is True and current:
        return Verdict(True, "Applied", f"CNPG applied the {kind}")
    if status.get("applied") is False:
        if not cluster_exists:
            return Verdict(False, "ClusterNotFound", f'Cluster "{cluster_name}" not found')
        if "already managed" in message:
            return Verdict(False, "Conflict", f"CNPG reports: {message}")
        return Verdict(False, "Blocked",
                       f"CNPG reports: {message}" if message else f"CNPG did not apply the {kind}")
    if not cluster_exists:
        return Verdict(False, "ClusterNotFound", f'Cluster "{cluster_name}" not found')
    return Verdict(False, "Pending", f"waiting for CNPG to apply the {kind}")


def managed_roles_status(cluster: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return _status(cluster).get("managedRolesStatus") or {}


def managed_role_entry(cluster: Mapping[str, Any] | None, role: str) -> Mapping[str, Any] | None:
    for entry in (_spec(cluster).get("managed") or {}).get("roles") or []:
        if entry.get("name") == role:
            return dict(entry)
    return None


def managed_role_blocker(cluster: Mapping[str, Any] | None, role: str) -> str | None:
    errors = (managed_roles_status(cluster).get("cannotReconcile") or {}).get(role)
    return "; ".join(str(e) for e in errors) if errors else None


def _reconciled(cluster: Mapping[str, Any] | None, role: str) -> bool:
    return role in ((managed_roles_status(cluster).get("byStatus") or {}).get("reconciled") or [])


def managed_role_verdict(cluster: Mapping[str, Any] | None, role: str, cluster_name: str,
                         desired_entry: Mapping[str, Any]) -> Verdict:
    if cluster is None:
        return Verdict(False, "ClusterNotFound", f'Cluster "{cluster_name}" not found')
    blocker = managed_role_blocker(cluster, role)
    if blocker:
        return Verdict(False, "Blocked", f"CNPG cannot reconcile role {role}: {blocker}")
    entry = managed_role_entry(cluster, role)
    if entry is None or any(entry.get(k) != v for k, v in desired_entry.items()):
        return Verdict(False, "Pending", f"waiting for the role entry in Cluster {cluster_name}")
    # "reconciled" alone can be stale: a role dropped (ensure: absent, reconciled) and then re-added
    # is listed as reconciled until CNPG acts again. CNPG records passwordStatus only for a role it
    # created or altered with the password Secret, so a role with a Secret is applied only then.
    password_applied = "passwordSecret" not in desired_entry or role in (
        managed_roles_status(cluster).get("passwordStatus") or {})
    if _reconciled(cluster, role) and password_applied:
        return Verdict(True, "Applied", f"CNPG reconciled role {role} in Cluster {cluster_name}")
    return Verdict(False, "Pending", f"waiting for CNPG to reconcile role {role}")


def managed_role_dropped(cluster: Mapping[str, Any] | None, role: str) -> bool:
    """CNPG confirmed an `ensure: absent` entry: reconciled, and no password applied any more.

    An absent role is "reconciled" both before CNPG acts (stale status, role still present) and
    after; the password record (passwordStatus) only exists while the role does.
    """
    entry = managed_role_entry(cluster, role)
    if entry is None or entry.get("ensure") != "absent":
        return False
    passwords = managed_roles_status(cluster).get("passwordStatus") or {}
    return _reconciled(cluster, role) and role not in passwords
