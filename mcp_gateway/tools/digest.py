"""Pure: a cluster's health digest from its CNPG status (what `kubectl cnpg status` shows) and a verdict.

Reads the Cluster object: phase and reason, instances (`instancesStatus`, `instancesReportedState`),
current/target primary, the key conditions, managed roles, certificate expirations; and, when the Barman
Cloud plugin archives its WAL, the recoverability window its ObjectStore reports. The verdict names the
first problem found and the next thing to check (a tool call where one helps).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

HEALTHY_PHASE = "Cluster in healthy state"
KEY_CONDITIONS = ("Ready", "ContinuousArchiving", "LastBackupSucceeded", "cnpg.io/hibernation")
CERTIFICATE_WARNING_DAYS = 14
BARMAN_PLUGIN = "barman-cloud.cloudnative-pg.io"
BACKUP_RUNNING_REASON = "BackupStarted"
UNREADABLE = "cannot read the ObjectStore"  # the window is unknown, which is not a problem of the cluster
_GO_TIME = re.compile(r"^(?P<date>\d{4}-\d\d-\d\d) (?P<time>\d\d:\d\d:\d\d)(?:\.\d+)? (?P<zone>[+-]\d{4})")


def parse_expiration(value: str) -> datetime | None:
    """CNPG writes Go's time.String(): `2026-05-04 14:43:03[.frac] +0000 UTC`; RFC 3339 is accepted too."""
    go = _GO_TIME.match(value.strip())
    try:
        if go:
            return datetime.strptime(f"{go['date']} {go['time']} {go['zone']}", "%Y-%m-%d %H:%M:%S %z")
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def certificates(status: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    expirations = ((status.get("certificates") or {}).get("expirations") or {})
    entries = []
    for secret, value in sorted(expirations.items()):
        expires = parse_expiration(str(value))
        days = None if expires is None else int((expires - now).total_seconds() // 86400)
        entries.append({"secret": secret, "expires": str(value), "days_left": days})
    return entries


def instances(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each instance: role, CNPG's status bucket (healthy, replicating, failed…), ready, timeline."""
    buckets = {pod: bucket for bucket, pods in (status.get("instancesStatus") or {}).items() for pod in pods or []}
    reported = status.get("instancesReportedState") or {}
    primary = status.get("currentPrimary")
    names = sorted(set(status.get("instanceNames") or []) | set(buckets) | set(reported),
                   key=lambda n: (len(n), n))
    return [{"name": name,
             "role": "primary" if (reported.get(name) or {}).get("isPrimary", name == primary) else "replica",
             "status": buckets.get(name, "unknown"), "ready": buckets.get(name) == "healthy",
             "timeline": (reported.get(name) or {}).get("timeLineID")} for name in names]


def key_conditions(status: Mapping[str, Any]) -> dict[str, str]:
    found = {c.get("type"): c for c in status.get("conditions") or []}
    return {kind: f"{found[kind].get('status')} ({found[kind].get('reason') or ''})".replace(" ()", "")
            for kind in KEY_CONDITIONS if kind in found}


def managed_roles(status: Mapping[str, Any]) -> dict[str, Any] | None:
    managed = status.get("managedRolesStatus") or {}
    if not managed:
        return None
    return {"by_status": {k: len(v or []) for k, v in (managed.get("byStatus") or {}).items()},
            "cannot_reconcile": {k: "; ".join(v or []) for k, v in (managed.get("cannotReconcile") or {}).items()}}


def archive_store(cluster: Mapping[str, Any]) -> tuple[str, str] | None:
    """(ObjectStore name, serverName) of the Barman Cloud plugin archiving this Cluster's WAL, else None."""
    for plugin in (cluster.get("spec") or {}).get("plugins") or []:
        parameters = plugin.get("parameters") or {}
        if plugin.get("name") == BARMAN_PLUGIN and plugin.get("isWALArchiver") and plugin.get("enabled", True) \
                and parameters.get("barmanObjectName"):
            return str(parameters["barmanObjectName"]), str(parameters.get("serverName") or cluster["metadata"]["name"])
    return None


def recoverability(cluster: Mapping[str, Any], store: Mapping[str, Any] | None,
                   unreadable: str | None = None) -> dict[str, Any] | None:
    """The backups' recoverability window: the plugin's ObjectStore `status.serverRecoveryWindow[serverName]`,
    else what CloudNativePG's in-tree backup writes in the Cluster status; None when neither applies.
    `store` is the ObjectStore read (None: missing), `unreadable` why it could not be read."""
    status = cluster.get("status") or {}
    found = archive_store(cluster)
    if found is None:
        if not status.get("firstRecoverabilityPoint"):
            return None
        return {"source": "Cluster status (in-tree backup)", "store": None, "server_name": None,
                "first_recoverability_point": status.get("firstRecoverabilityPoint"),
                "last_successful_backup": status.get("lastSuccessfulBackup"),
                "last_failed_backup": status.get("lastFailedBackup"), "note": None}
    name, server = found
    window = (((store or {}).get("status") or {}).get("serverRecoveryWindow") or {}).get(server) or {}
    note = f"{UNREADABLE}: {unreadable}" if unreadable else (f"ObjectStore {name} not found" if store is None else
                          None if window.get("firstRecoverabilityPoint") else "no completed backup in the store yet")
    return {"source": f"ObjectStore {name} status.serverRecoveryWindow", "store": name, "server_name": server,
            "first_recoverability_point": window.get("firstRecoverabilityPoint"),
            "last_successful_backup": window.get("lastSuccessfulBackupTime"),
            "last_failed_backup": window.get("lastFailedBackupTime"), "note": note}


def _condition(status: Mapping[str, Any], kind: str) -> str | None:
    return next((str(c.get("status")) for c in status.get("conditions") or [] if c.get("type") == kind), None)


def problems(cluster: Mapping[str, Any], now: datetime,
             window: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
    """(what is wrong, what to check next), most important first; empty when healthy."""
    meta, spec, status = cluster["metadata"], cluster.get("spec") or {}, cluster.get("status") or {}
    ref = f'name="{meta["name"]}", namespace="{meta.get("namespace")}"'
    found: list[tuple[str, str]] = []
    if _condition(status, "cnpg.io/hibernation") == "True":
        found.append(("hibernated: no instance runs", "remove the cnpg.io/hibernation annotation to resume"))
    phase, reason = status.get("phase"), status.get("phaseReason")
    if phase != HEALTHY_PHASE:
        found.append((f"phase {phase or 'unknown'!r}" + (f": {reason}" if reason else ""),
                      f"get_cluster_logs({ref}, level=\"error\") and the events (detail_level=\"detailed\")"))
    failed = [i["name"] for i in instances(status) if i["status"] not in ("healthy", "unknown")]
    ready, wanted = status.get("readyInstances") or 0, spec.get("instances") or 0
    if failed:
        found.append((f"instance(s) not healthy: {', '.join(failed)}",
                      f"get_cluster_logs({ref}, instance=\"{failed[0]}\")"))
    elif ready < wanted:
        found.append((f"{ready}/{wanted} instances ready", f"get_cluster_logs({ref}, level=\"warning\")"))
    current, target = status.get("currentPrimary"), status.get("targetPrimary")
    if current and target and current != target:
        found.append((f"switchover/failover in progress: {current} → {target}",
                      "get_cluster_status again shortly; if it persists, the logs of both instances"))
    if _condition(status, "ContinuousArchiving") == "False":
        found.append(("WAL archiving is failing (point-in-time recovery is at risk)",
                      f"get_cluster_logs({ref}, contains=\"archive\")"))
    backup: Mapping[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "LastBackupSucceeded"), {})
    # False with reason BackupStarted is CNPG saying a backup is running, not that one failed.
    if backup.get("status") == "False" and backup.get("reason") != BACKUP_RUNNING_REASON:
        found.append(("the last backup failed" + (f": {backup['message']}" if backup.get("message") else ""),
                      "the Backup objects of this cluster and the primary's logs"))
    if window and window.get("store") and not window.get("first_recoverability_point") \
            and not str(window.get("note")).startswith(UNREADABLE):
        found.append((f"no recoverability point: {window.get('note')} (point-in-time recovery is not possible yet)",
                      f"the Backups of this cluster and the ObjectStore {window['store']} (a first backup starts "
                      "the window)"))
    cannot = (managed_roles(status) or {}).get("cannot_reconcile") or {}
    if cannot:
        found.append((f"managed role(s) cannot be reconciled: {', '.join(sorted(cannot))}",
                      f"list_postgres_roles(cluster_name=\"{meta['name']}\")"))
    for cert in certificates(status, now):
        if cert["days_left"] is not None and cert["days_left"] < CERTIFICATE_WARNING_DAYS:
            found.append((f"certificate in Secret {cert['secret']} expires in {cert['days_left']} day(s)",
                          "CloudNativePG renews its own certificates; user-provided ones must be renewed by you"))
    return found


def digest(cluster: Mapping[str, Any] | None, now: datetime | None = None,
           window: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The digest fields added to get_cluster_status (none of the original fields change); `window` is
    recoverability()'s answer."""
    if cluster is None:
        return {"verdict": "not created yet (or deleted): only its PgClusterRequest exists",
                "next_check": "the request's message below; the operator's Events (detail_level=\"detailed\")"}
    now = now or datetime.now(UTC)
    status = cluster.get("status") or {}
    found = problems(cluster, now, window)
    ready, wanted = status.get("readyInstances") or 0, (cluster.get("spec") or {}).get("instances") or 0
    verdict = (f"healthy: {ready}/{wanted} instances ready, primary {status.get('currentPrimary')}" if not found
               else f"attention: {found[0][0]}" + (f" (+{len(found) - 1} more)" if len(found) > 1 else ""))
    return {
        "verdict": verdict,
        "next_check": found[0][1] if found else None,
        "problems": [what for what, _ in found],
        "phase_reason": status.get("phaseReason"),
        "target_primary": status.get("targetPrimary"),
        "timeline": status.get("timelineID"),
        "instances_status": instances(status),
        "key_conditions": key_conditions(status),
        "managed_roles_summary": managed_roles(status),
        "certificates": certificates(status, now),
        "recoverability": dict(window) if window else None,
    }
