"""Pure: what CNPG and the Barman Cloud plugin report about backups, as intent verdicts and status fields.

Backup phases (CNPG api/v1/backup_types.go): pending, started, running, finalizing, completed,
failed, walArchivingFailing, "invalid backup definition". Only completed and failed are final.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cnpg_mcp_api.models import RestoreFromSpec
from cnpg_mcp_operator.readiness import Verdict

Json = dict[str, Any]

BACKUP_COMPLETED = "completed"
BACKUP_FAILED_PHASES = frozenset({"failed", "invalid backup definition"})
BACKUP_FINAL_PHASES = frozenset({BACKUP_COMPLETED, *BACKUP_FAILED_PHASES})
# Status fields the indexes keep (views.project).
BACKUP_STATUS_READ = ("phase", "error", "backupId", "startedAt", "stoppedAt", "method", "serverName")
SCHEDULED_BACKUP_STATUS_READ = ("lastCheckTime", "lastScheduleTime", "nextScheduleTime", "error")
OBJECT_STORE_STATUS_READ = ("serverRecoveryWindow",)
CONTINUOUS_ARCHIVING = "ContinuousArchiving"  # CNPG's Cluster condition (cluster_types.go)


def _status(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("status") or {}


def backup_finished(backup: Mapping[str, Any] | None) -> bool:
    return str(_status(backup).get("phase") or "") in BACKUP_FINAL_PHASES


def backup_verdict(backup: Mapping[str, Any] | None) -> Verdict:
    """Ready (Completed) only when CNPG reports the backup completed; Failed with CNPG's error."""
    if backup is None:
        return Verdict(False, "Pending", "waiting for the Backup to be created")
    status = _status(backup)
    phase = str(status.get("phase") or "")
    name = backup["metadata"]["name"]
    if phase == BACKUP_COMPLETED:
        backup_id = status.get("backupId")
        return Verdict(True, "Completed", f"Backup {name} completed" + (f" (backupId {backup_id})" if backup_id
                                                                          else ""))
    if phase in BACKUP_FAILED_PHASES:
        error = status.get("error") or phase
        return Verdict(False, "Failed", f"Backup {name} failed: {error}")
    if phase == "walArchivingFailing":
        return Verdict(False, "Pending", f"Backup {name}: WAL archiving is failing; CNPG retries")
    return Verdict(False, "Pending", f"Backup {name}: {phase or 'waiting for CNPG'}")


def backup_status_fields(backup: Mapping[str, Any] | None) -> Json:
    """What the request mirrors of its Backup (names and times only)."""
    status = _status(backup)
    wire = {"phase": status.get("phase"), "backupID": status.get("backupId"), "startedAt": status.get("startedAt"),
            "stoppedAt": status.get("stoppedAt"), "error": status.get("error")}
    return {key: value for key, value in wire.items() if value}


def scheduled_backup_verdict(scheduled: Mapping[str, Any] | None, suspended: bool) -> Verdict:
    """Applied once CNPG has looked at the ScheduledBackup (status.lastCheckTime)."""
    if scheduled is None:
        return Verdict(False, "Pending", "waiting for the ScheduledBackup to be created")
    status = _status(scheduled)
    name = scheduled["metadata"]["name"]
    if status.get("error"):
        return Verdict(False, "Blocked", f"ScheduledBackup {name}: {status['error']}")
    if not status.get("lastCheckTime"):
        return Verdict(False, "Pending", f"waiting for CNPG to pick up ScheduledBackup {name}")
    if suspended:
        return Verdict(True, "Applied", f"ScheduledBackup {name} is suspended")
    next_time = status.get("nextScheduleTime")
    return Verdict(True, "Applied", f"ScheduledBackup {name} active" + (f", next backup {next_time}" if next_time
                                                                          else ""))


def recovery_window(store: Mapping[str, Any] | None, server_name: str | None) -> Json:
    """The ObjectStore's recoverability data for `server_name` (firstRecoverabilityPoint, ...)."""
    if store is None or not server_name:
        return {}
    window = (_status(store).get("serverRecoveryWindow") or {}).get(server_name) or {}
    keys = ("firstRecoverabilityPoint", "lastSuccessfulBackupTime", "lastFailedBackupTime")
    return {key: window[key] for key in keys if window.get(key)}


def archiving_condition(cluster: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    for condition in _status(cluster).get("conditions") or []:
        if condition.get("type") == CONTINUOUS_ARCHIVING:
            return condition  # type: ignore[no-any-return]
    return None


def store_verdict(store: Mapping[str, Any] | None, cluster_name: str | None, cluster: Mapping[str, Any] | None,
                  archiving: bool) -> Verdict:
    """A store without cluster: Applied when the ObjectStore exists. With a cluster: Applied when CNPG
    reports ContinuousArchiving=True with our archiver entry in place; Blocked when it reports False."""
    if store is None:
        return Verdict(False, "Pending", "waiting for the ObjectStore to be created")
    name = store["metadata"]["name"]
    if not cluster_name:
        return Verdict(True, "Applied", f"ObjectStore {name} ready")
    if cluster is None:
        return Verdict(False, "ClusterNotFound", f'Cluster "{cluster_name}" not found')
    if not archiving:
        return Verdict(False, "Pending", f"turning on WAL archiving of Cluster {cluster_name}")
    condition = archiving_condition(cluster)
    if condition is None:
        return Verdict(False, "Pending", f"waiting for CNPG to report WAL archiving of Cluster {cluster_name}")
    if condition.get("status") == "True":
        return Verdict(True, "Applied", f"Cluster {cluster_name} archives WAL into ObjectStore {name}")
    return Verdict(False, "Blocked", f"CNPG reports WAL archiving of Cluster {cluster_name} failing: "
                                     f"{condition.get('message') or condition.get('reason') or 'no detail'}")


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def restore_refusal(restore: RestoreFromSpec, store: Mapping[str, Any] | None, namespace: str,
                    now: datetime) -> Verdict | None:
    """Why a restore cannot start (NotRecoverable), or None: the store must hold a completed backup of
    the source's serverName, and a target time must lie between the first recoverability point and now."""
    server = restore.server_name or restore.cluster
    if store is None:
        return Verdict(False, "NotRecoverable", f'ObjectStore "{restore.store}" not found in {namespace}')
    window = recovery_window(store, server)
    first = window.get("firstRecoverabilityPoint")
    if not first:
        return Verdict(False, "NotRecoverable", f'ObjectStore "{restore.store}" has no completed backup of '
                                                f'server "{server}" yet')
    target = restore.target.time if restore.target is not None else None
    if target is None:
        return None
    when = _parse_time(target)
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # CNPG reads a timestamp without a zone as UTC
    if when < _parse_time(first) or when > now:
        return Verdict(False, "NotRecoverable",
                       f"target time {target} is outside the recoverability window of server \"{server}\": "
                       f"you can restore to any time between {first} and now")
    return None
