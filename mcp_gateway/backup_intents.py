"""Pure: backup tool arguments → intent manifests, and the words the backup tools answer with.

Nothing here talks to the API. Credentials are only ever a Secret name and key names: no argument,
manifest or answer built here can carry a credential value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from cnpg_mcp_api import constants, cron
from cnpg_mcp_api.models import (
    BACKUP_REQUEST,
    BACKUP_SCHEDULE_REQUEST,
    BACKUP_STORE_REQUEST,
    CLUSTER_REQUEST,
    PgBackupRequestSpec,
    PgBackupScheduleRequestSpec,
    PgBackupStoreRequestSpec,
    PgClusterRequestSpec,
    manifest,
)
from mcp_gateway import errors
from mcp_gateway.intents import _annotations, _validated

Json = dict[str, Any]
SECRET_KEY_PATTERN = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")  # a Secret's data key, as Kubernetes accepts it
# The Secret keys each provider reads: the tool's names → the intent's fields (defaults in the models).
CREDENTIAL_KEYS = {
    "s3": {"accessKeyId": "accessKeyIdKey", "secretAccessKey": "secretAccessKeyKey", "region": "regionKey",
           "sessionToken": "sessionTokenKey"},
    "azure": {"connectionString": "connectionStringKey", "storageAccount": "storageAccountKey",
              "storageKey": "storageKeyKey", "storageSasToken": "storageSasTokenKey"},
    "google": {"applicationCredentials": "applicationCredentialsKey"},
}
AZURE_DEFAULT_CONNECTION_STRING_KEY = "AZURE_CONNECTION_STRING"
WORKLOAD_IDENTITY = {"s3": "inheritFromIAMRole", "azure": "inheritFromAzureAD", "google": "gkeEnvironment"}
# Store fields the tool owns on an existing request (cluster and serverName are immutable).
STORE_FIELDS = ("destinationPath", "endpointURL", "s3Credentials", "azureCredentials", "googleCredentials",
                "retentionPolicy", "wal")
NEXT_RUNS = 3


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def credentials(provider: str, secret: str | None, key_names: Mapping[str, str] | None,
                workload_identity: bool) -> Json:
    """The intent's <provider>Credentials block: a Secret reference by name and key names, or the pod's identity."""
    keys = dict(key_names or {})
    known = CREDENTIAL_KEYS[provider]
    unknown = sorted(set(keys) - set(known))
    if unknown:
        raise errors.tool_error(errors.INVALID_ARGUMENT, f"credential_keys: unknown key(s) {', '.join(unknown)} for "
                                f"provider {provider}; known: {', '.join(known)}")
    bad = sorted(name for name, key in keys.items() if not SECRET_KEY_PATTERN.match(key))
    if bad:
        raise errors.tool_error(errors.INVALID_ARGUMENT, f"credential_keys: {', '.join(bad)} must name a key of the "
                                "Secret (letters, digits, '-', '_', '.'), never a credential value")
    if workload_identity:
        if secret or keys:
            raise errors.tool_error(errors.INVALID_ARGUMENT, "use_workload_identity excludes credentials_secret "
                                    "and credential_keys")
        return {WORKLOAD_IDENTITY[provider]: True}
    if not secret:
        raise errors.tool_error(errors.INVALID_ARGUMENT, "give credentials_secret (the NAME of a Secret in the "
                                "namespace holding the keys) or use_workload_identity=true")
    block: Json = {"secretName": secret, **{known[name]: key for name, key in keys.items()}}
    if provider == "azure" and not any(f in block for f in ("connectionStringKey", "storageAccountKey")):
        block["connectionStringKey"] = AZURE_DEFAULT_CONNECTION_STRING_KEY
    return block


def store_spec(*, cluster: str, destination_path: str, endpoint_url: str | None, provider: str, creds: Json,
               retention_policy: str | None, wal_compression: str | None) -> Json:
    """A PgBackupStoreRequest spec archiving `cluster` (validated; the wire form)."""
    data: Json = {"cluster": cluster, "destinationPath": destination_path, f"{provider}Credentials": creds}
    if endpoint_url:
        data["endpointURL"] = endpoint_url
    if retention_policy:
        data["retentionPolicy"] = retention_policy
    if wal_compression:
        data["wal"] = {"compression": wal_compression}
    return _validated(PgBackupStoreRequestSpec, data).to_wire()


def store_intent(name: str, namespace: str, spec: Json, requested_by: str | None) -> Json:
    model = _validated(PgBackupStoreRequestSpec, spec)
    return manifest(BACKUP_STORE_REQUEST, name, model, namespace=namespace, annotations=_annotations(requested_by))


def store_update_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> Json:
    """A merge patch taking the tool-owned store fields from `current` to `desired`; {} when equal.
    A field the new spec leaves out is removed (null), e.g. the old provider's credentials."""
    patch: Json = {}
    for field in STORE_FIELDS:
        if current.get(field) != desired.get(field):
            patch[field] = desired.get(field)
    return {"spec": patch} if patch else {}


def backup_name(cluster: str, now: datetime) -> str:
    """A Backup name that sorts by time: <cluster>-<UTC yyyymmddhhmmss>."""
    return f"{cluster}-{now.astimezone(UTC).strftime('%Y%m%d%H%M%S')}"


def backup_intent(name: str, namespace: str, *, cluster: str, method: str, target: str | None,
                  online: bool | None, requested_by: str | None) -> Json:
    data: Json = {"cluster": cluster, "method": method}
    if target:
        data["target"] = target
    if online is not None:
        data["online"] = online
    spec = _validated(PgBackupRequestSpec, data)
    return manifest(BACKUP_REQUEST, name, spec, namespace=namespace, annotations=_annotations(requested_by))


def checked_schedule(expression: str) -> cron.CronSchedule:
    """The parsed six-field cron, or INVALID_ARGUMENT with the field and the rule it breaks."""
    try:
        return cron.parse(expression)
    except cron.CronError as exc:
        raise errors.tool_error(errors.INVALID_ARGUMENT, f"schedule {expression!r}: {exc}") from exc


def schedule_intent(name: str, namespace: str, *, cluster: str, schedule: str, method: str, target: str | None,
                    immediate: bool, suspend: bool, backup_owner_reference: str, requested_by: str | None) -> Json:
    data: Json = {"cluster": cluster, "schedule": " ".join(schedule.split()), "method": method,
                  "immediate": immediate, "suspend": suspend, "backupOwnerReference": backup_owner_reference}
    if target:
        data["target"] = target
    spec = _validated(PgBackupScheduleRequestSpec, data)
    return manifest(BACKUP_SCHEDULE_REQUEST, name, spec, namespace=namespace, annotations=_annotations(requested_by))


def humane_delay(seconds: float) -> str:
    """'in 3h 5m', 'in 42s': how far away a run is."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "in " + (" ".join(parts[:2]) or "0s")  # the two largest units are enough to plan by


def next_runs(schedule: cron.CronSchedule, now: datetime, count: int = NEXT_RUNS) -> list[str]:
    return [_stamp(run) for run in schedule.next_runs(now, count)]


def runs_text(runs: Iterable[str], now: datetime) -> str:
    """One line per run: 'Wed 2026-12-02 02:00:00 UTC (in 3h 50m)'."""
    lines = []
    for run in runs:
        moment = parse_time(run)
        lines.append(f"{moment.strftime('%a %Y-%m-%d %H:%M:%S')} UTC ({humane_delay((moment - now).total_seconds())})")
    return "\n".join(f"  - {line}" for line in lines)


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def checked_target_time(text: str) -> str:
    """An RFC 3339 time (a time without a zone is UTC, as CNPG reads it), normalised to ...Z."""
    try:
        return _stamp(parse_time(text))
    except ValueError as exc:
        raise errors.tool_error(errors.INVALID_ARGUMENT, f"target_time {text!r} is not an RFC 3339 time "
                                "(e.g. 2026-12-02T17:00:00Z)") from exc


def recovery_target(*, target_time: str | None, target_lsn: str | None, target_name: str | None,
                    backup_id: str | None, exclusive: bool | None) -> Json | None:
    """restoreFrom.target: at most one of time, LSN, named restore point; None = latest (all archived WAL)."""
    given = [k for k, v in (("target_time", target_time), ("target_lsn", target_lsn),
                            ("target_name", target_name)) if v]
    if len(given) > 1:
        raise errors.tool_error(errors.INVALID_ARGUMENT, f"give at most one of {', '.join(given)} (none: the "
                                "latest state)")
    if target_name and not backup_id:
        raise errors.tool_error(errors.INVALID_ARGUMENT, "a named restore point needs backup_id (the backup to start "
                                "from; list_postgres_backups shows each backupId)")
    target: Json = {}
    if target_time:
        target["time"] = checked_target_time(target_time)
    if target_lsn:
        target["lsn"] = target_lsn
    if target_name:
        target["name"] = target_name
    if backup_id:
        target["backupID"] = backup_id
    if exclusive is not None and given:
        target["exclusive"] = exclusive
    return target or None


def restore_intent(name: str, namespace: str, *, source: str, store: str, server_name: str | None,
                   target: Json | None, instances: int, storage_size: str, postgres_version: str | None,
                   image_name: str | None, requested_by: str | None) -> Json:
    """A PgClusterRequest restoring `source`; postgres_version, else image_name (the source's), else the default."""
    restore: Json = {"cluster": source, "store": store}
    if server_name and server_name != source:
        restore["serverName"] = server_name
    if target:
        restore["target"] = target
    data: Json = {"instances": instances, "storage": {"size": storage_size}, "restoreFrom": restore}
    if postgres_version:
        data["postgresVersion"] = postgres_version
    elif image_name:
        data["imageName"] = image_name
    spec = _validated(PgClusterRequestSpec, data)
    return manifest(CLUSTER_REQUEST, name, spec, namespace=namespace, annotations=_annotations(requested_by))


def window_text(server: str, window: Mapping[str, Any]) -> str:
    """'you can restore to any time between A and now' (or why not yet)."""
    first = window.get("firstRecoverabilityPoint")
    if not first:
        return f'no completed backup of server "{server}" yet: nothing to restore from'
    text = f"you can restore to any time between {first} and now"
    if window.get("lastSuccessfulBackupTime"):
        text += f" (last successful backup {window['lastSuccessfulBackupTime']})"
    if window.get("lastFailedBackupTime"):
        text += f"; last FAILED backup {window['lastFailedBackupTime']}"
    return text


def archiver_of(cluster: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """(ObjectStore, serverName) of the Cluster's Barman Cloud WAL archiver entry, if it has one."""
    if cluster is None:
        return None
    for plugin in (cluster.get("spec") or {}).get("plugins") or []:
        if plugin.get("name") == constants.BARMAN_PLUGIN_NAME and plugin.get("isWALArchiver"):
            parameters = plugin.get("parameters") or {}
            store = parameters.get("barmanObjectName")
            if store:
                return str(store), str(parameters.get("serverName") or cluster["metadata"]["name"])
    return None


def in_tree_store(cluster: Mapping[str, Any] | None) -> bool:
    """Does the Cluster use the deprecated in-tree spec.backup.barmanObjectStore (removed in CNPG 1.31)?"""
    return bool((((cluster or {}).get("spec") or {}).get("backup") or {}).get("barmanObjectStore"))


def backup_entry(backup: Mapping[str, Any] | None, request: Mapping[str, Any] | None) -> Json:
    """One backup for list_postgres_backups: the CNPG Backup's report, or its request's when not created yet."""
    source = backup or request or {}
    spec, status = source.get("spec") or {}, source.get("status") or {}
    request_status = (request or {}).get("status") or {}
    return {
        "name": source["metadata"]["name"],
        "phase": status.get("phase") or request_status.get("phase") or "requested",
        "method": spec.get("method") or "plugin",
        "target": spec.get("target"),
        "started_at": status.get("startedAt"),
        "stopped_at": status.get("stoppedAt"),
        "backup_id": status.get("backupId") or request_status.get("backupID"),
        "error": status.get("error"),
        "scheduled_by": ((backup or {}).get("metadata", {}).get("labels") or {}).get("cnpg.io/scheduled-backup"),
        "request": (request or {}).get("metadata", {}).get("name"),
    }


def backup_row(entry: Mapping[str, Any]) -> str:
    times = f"{entry['started_at'] or '?'} → {entry['stopped_at'] or '…'}"
    extra = f", backupId {entry['backup_id']}" if entry.get("backup_id") else ""
    error = f" — error: {entry['error']}" if entry.get("error") else ""
    by = f" (schedule {entry['scheduled_by']})" if entry.get("scheduled_by") else ""
    return f"- {entry['name']}: {entry['phase']} ({entry['method']}, {times}{extra}){by}{error}"


def schedule_entry(scheduled: Mapping[str, Any] | None, request: Mapping[str, Any] | None, now: datetime) -> Json:
    source = scheduled or request or {}
    spec, status = source.get("spec") or {}, source.get("status") or {}
    expression = str(spec.get("schedule") or "")
    suspended = bool(spec.get("suspend"))
    try:
        runs = [] if suspended else next_runs(cron.parse(expression), now)
    except cron.CronError:  # written outside cnpg-mcp with something CNPG reads differently: show it as is
        runs = []
    return {"name": source["metadata"]["name"], "schedule": expression, "suspended": suspended,
            "immediate": bool(spec.get("immediate")), "method": spec.get("method") or "plugin",
            "next_runs": runs, "last_schedule_time": status.get("lastScheduleTime"),
            "next_schedule_time": status.get("nextScheduleTime"),
            "request": (request or {}).get("metadata", {}).get("name")}


def schedule_row(entry: Mapping[str, Any], now: datetime) -> str:
    head = f"- {entry['name']}: '{entry['schedule']}' ({entry['method']})"
    if entry["suspended"]:
        return head + " SUSPENDED"
    return head + ", next runs:\n" + runs_text(entry["next_runs"], now)
