"""Backup tools: configure a store, back up now, list, schedule, restore — through the backup intents
(PgBackupStoreRequest, PgBackupRequest, PgBackupScheduleRequest) and PgClusterRequest.restoreFrom.

They read CNPG Backups and ScheduledBackups and Barman Cloud ObjectStores, and write only intents.
Credentials are a Secret name and key names: no tool takes, reads or returns a credential value.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import anyio
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult
from pydantic import Field

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import RETENTION_PATTERN, RestoreFromSpec
from cnpg_mcp_operator.backup_readiness import (
    BACKUP_FINAL_PHASES,
    CONTINUOUS_ARCHIVING,
    recovery_window,
    restore_refusal,
)
from cnpg_mcp_operator.builders.cluster import build_cluster
from mcp_gateway import backup_intents, errors, render
from mcp_gateway.gateway import Gateway, both
from mcp_gateway.registry import CREATE, DELETE, READ, ToolSpec, hints
from mcp_gateway.tools import delete_request, outputs, result
from mcp_gateway.tools.clusters import OPERATOR_ANSWER_SECONDS, ClusterName, DryRun, Namespace, _ready_wait
from mcp_gateway.tools.roles import _require_cluster

STORES = constants.BACKUP_STORE_REQUEST_PLURAL
BACKUPS = constants.BACKUP_REQUEST_PLURAL
SCHEDULES = constants.BACKUP_SCHEDULE_REQUEST_PLURAL
CLUSTERS = constants.CLUSTER_REQUEST_PLURAL
Json = dict[str, Any]
K8S_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
# Reasons with which the operator refuses an intent for good (a new request or a fix is needed).
REFUSALS = ("Conflict", "Invalid", "NotRecoverable", "Failed", "BackupDeleted", "Blocked")

Method = Annotated[Literal["plugin", "volumeSnapshot"], Field(
    description="'plugin' (default: Barman Cloud into the configured store) or 'volumeSnapshot'")]
Target = Annotated[Literal["primary", "prefer-standby"] | None, Field(
    description="Which instance to back up; default the cluster's own setting (prefer-standby)")]
Format = Annotated[Literal["text", "json"], Field(description="'text' (default) or 'json' for programs")]
ObjectName = Annotated[str, Field(pattern=K8S_NAME, max_length=63)]


def _now() -> datetime:
    return datetime.now(UTC)


def _answered(request: Mapping[str, Any] | None) -> bool:
    """Has the operator decided about this generation of the request (Ready, or refused)?"""
    if request is None:
        return False
    status = request.get("status") or {}
    if status.get("observedGeneration") != request["metadata"].get("generation"):
        return False
    ready = render.ready_condition(request)
    return ready.get("status") == "True" or ready.get("reason") in REFUSALS


async def _follow(gw: Gateway, plural: str, namespace: str, name: str, timeout: float) -> Json | None:
    """Read the request until the operator answered (or the timeout); the last version read."""
    deadline = time.monotonic() + timeout
    while True:
        request = await gw.kube.intent_get_or_none(plural, namespace, name)
        if _answered(request) or time.monotonic() >= deadline:
            return request
        await anyio.sleep(0.5)


async def _object_store(gw: Gateway, namespace: str, name: str) -> Json | None:
    return await gw.kube.get_or_none(constants.BARMAN_GROUP, constants.BARMAN_VERSION,
                                     constants.BARMAN_OBJECT_STORES, namespace, name)


def _window(server: str, found: Mapping[str, Any]) -> Json:
    """The recoverability window as the tools answer it, from the plugin's serverRecoveryWindow fields."""
    return {"server_name": server, "first_recoverability_point": found.get("firstRecoverabilityPoint"),
            "last_successful_backup_time": found.get("lastSuccessfulBackupTime"),
            "last_failed_backup_time": found.get("lastFailedBackupTime"),
            "summary": backup_intents.window_text(server, found)}


def _state_line(state: Mapping[str, Any] | None) -> str:
    if state is None:
        return "no answer from the operator yet"
    return f"{'Ready' if state['ready'] else 'not ready'} ({state['reason']}): {state.get('message') or '-'}"


async def _store_request_of(gw: Gateway, ns: str, cluster_name: str) -> Json | None:
    return next((r for r in await gw.kube.intent_list(STORES, ns) if r["spec"].get("cluster") == cluster_name), None)


def _archiving(cluster: Mapping[str, Any] | None) -> bool | None:
    for condition in ((cluster or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == CONTINUOUS_ARCHIVING:
            return bool(condition.get("status") == "True")
    return None


def _refuse_in_tree(cluster: Mapping[str, Any] | None, ns: str, cluster_name: str) -> None:
    if backup_intents.in_tree_store(cluster):
        raise errors.tool_error(errors.CONFLICT, (
            f"Cluster {ns}/{cluster_name} uses the deprecated in-tree spec.backup.barmanObjectStore (removed in "
            "CloudNativePG 1.31); cnpg-mcp backs up only through the Barman Cloud plugin and does not mix the two. "
            "Nothing was changed. Migrate the cluster to the plugin first (remove spec.backup.barmanObjectStore), "
            "then call this tool again."))


async def configure_postgres_backups(
    gw: Gateway,
    cluster_name: ClusterName,
    destination_path: Annotated[str | None, Field(
        description="Where backups and WAL go, e.g. s3://bucket/path (gs://..., https://<account>.blob...); "
                    "needed unless archiving=false", pattern=r"^(s3|gs|https?)://\S+$", max_length=1024)] = None,
    endpoint_url: Annotated[str | None, Field(description="Object store endpoint (MinIO, Ceph...); default the "
                                                          "provider's", pattern=r"^https?://\S+$")] = None,
    provider: Annotated[Literal["s3", "azure", "google"], Field(description="Credentials kind")] = "s3",
    credentials_secret: Annotated[str | None, Field(
        description="NAME of the Secret (same namespace) holding the credentials; never the credentials "
                    "themselves", pattern=K8S_NAME, max_length=253)] = None,
    credential_keys: Annotated[dict[str, str] | None, Field(
        description="Key NAMES in that Secret, only where they differ from the defaults. s3: accessKeyId "
                    "(ACCESS_KEY_ID), secretAccessKey (ACCESS_SECRET_KEY), region, sessionToken; azure: "
                    "connectionString (AZURE_CONNECTION_STRING) or storageAccount + storageKey/storageSasToken; "
                    "google: applicationCredentials (credentials.json)")] = None,
    use_workload_identity: Annotated[bool, Field(
        description="Use the pod's identity (IAM role, Azure AD, GKE) instead of a Secret")] = False,
    retention_policy: Annotated[str | None, Field(description="Keep backups and WAL this long: 30d, 4w, 6m",
                                                  pattern=RETENTION_PATTERN)] = None,
    wal_compression: Annotated[Literal["bzip2", "gzip", "lz4", "snappy", "xz", "zstd"] | None, Field(
        description="Compression of archived WAL")] = None,
    archiving: Annotated[bool, Field(
        description="true (default): archive the cluster's WAL into the store; false: turn archiving off "
                    "(removes the store configuration; what is in the bucket stays)")] = True,
    store_name: Annotated[ObjectName | None, Field(
        description="Name of a new store (default <cluster>-store); an existing one is found by cluster")] = None,
    namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to set up (or change, or turn off) where a cluster's backups go and its continuous WAL archiving.
    Creates or updates a PgBackupStoreRequest: the operator creates a Barman Cloud ObjectStore and makes the
    Barman Cloud plugin the cluster's WAL archiver. Each call gives the whole configuration (settings left
    out return to their defaults). Credentials are given as a Secret NAME and key names only; the tool
    never reads the Secret and never takes a credential value. Needed before create_postgres_backup
    (method plugin) and point-in-time restores."""
    ns = gw.namespace(namespace)
    async with gw.acting(f"configuring backups of {ns}/{cluster_name}"):
        cluster = await _require_cluster(gw, ns, cluster_name)
        _refuse_in_tree(cluster, ns, cluster_name)
        existing = await _store_request_of(gw, ns, cluster_name)
        if not archiving:
            return await _turn_off(gw, ns, cluster_name, existing, dry_run)
        if destination_path is None:
            raise errors.tool_error(errors.INVALID_ARGUMENT, "destination_path is needed (e.g. s3://bucket/path)")
        creds = backup_intents.credentials(provider, credentials_secret, credential_keys, use_workload_identity)
        spec = backup_intents.store_spec(cluster=cluster_name, destination_path=destination_path,
                                         endpoint_url=endpoint_url, provider=provider, creds=creds,
                                         retention_policy=retention_policy, wal_compression=wal_compression)
        if existing is None:
            name = store_name or f"{cluster_name}-store"
            other = await gw.kube.intent_get_or_none(STORES, ns, name)
            if other is not None:
                raise errors.tool_error(errors.CONFLICT, f"PgBackupStoreRequest {ns}/{name} exists for cluster "
                                        f"{other['spec'].get('cluster')!r}; give another store_name")
            archiver = backup_intents.archiver_of(cluster)
            if archiver is not None and archiver[0] != name:
                raise errors.tool_error(errors.CONFLICT, (
                    f"Cluster {ns}/{cluster_name} already archives its WAL into ObjectStore {archiver[0]!r}, which "
                    "cnpg-mcp does not manage; nothing was changed"))
            written = await gw.kube.write_intent(STORES, ns, backup_intents.store_intent(
                name, ns, spec, gw.requested_by()), dry_run=dry_run)
            action = "created"
        else:
            name = existing["metadata"]["name"]
            if store_name and store_name != name:
                raise errors.tool_error(errors.CONFLICT, f"cluster {cluster_name!r} already archives into "
                                        f"PgBackupStoreRequest {name!r}; leave store_name out to change that one")
            patch = backup_intents.store_update_patch(existing["spec"], spec)
            written = (await gw.kube.patch_intent(STORES, ns, name, patch, dry_run=dry_run) if patch else existing)
            action = "updated" if patch else "unchanged"
        request = written if dry_run else await _follow(gw, STORES, ns, name, OPERATOR_ANSWER_SECONDS)
    status = (request or {}).get("status") or {}
    state = render.intent_state(request) if not dry_run and status else None
    server = str(status.get("serverName") or written["spec"].get("serverName") or cluster_name)
    window = _window(server, status)  # the request mirrors the store's window for its serverName
    data: Json = {"dry_run": dry_run, "cluster": f"{ns}/{cluster_name}", "store": f"{ns}/{name}",
                  "action": action, "archiving": status.get("archiving") if state else None, "state": state,
                  "spec": written["spec"], "window": window}
    spec_yaml = render.manifests_yaml([{"spec": written["spec"]}])
    if dry_run:
        return result(f"Dry run: PgBackupStoreRequest {ns}/{name} would be {action} (validated by the API server, "
                      f"nothing written):\n```yaml\n{spec_yaml}```", data)
    archived = state is not None and state["ready"]
    text = (f"PgBackupStoreRequest {ns}/{name} {action} for cluster '{ns}/{cluster_name}' (destination "
            f"{written['spec']['destinationPath']}, serverName {server}).\nState: {_state_line(state)}\n"
            + (f"WAL archiving is ON (CNPG reports ContinuousArchiving=True). Recoverability: {window['summary']}.\n"
               if archived else "WAL archiving is NOT confirmed yet; list_postgres_backups shows when it is.\n")
            + "Credentials: by Secret reference only "
            + (f"(Secret {credentials_secret}; the gateway never reads it)." if credentials_secret else
               "(the pod's workload identity)."))
    return result(text, data)


async def _turn_off(gw: Gateway, ns: str, cluster_name: str, existing: Json | None, dry_run: bool) -> CallToolResult:
    if existing is None:
        raise errors.tool_error(errors.NOT_FOUND, f"cluster {cluster_name!r} has no backup store configured through "
                                "cnpg-mcp; nothing to turn off")
    name = existing["metadata"]["name"]
    await gw.kube.delete_intent(STORES, ns, name, dry_run=dry_run)
    data: Json = {"dry_run": dry_run, "cluster": f"{ns}/{cluster_name}", "store": f"{ns}/{name}",
                  "action": "deleted", "archiving": None, "state": None, "spec": existing["spec"], "window": None}
    effect = (f"WAL archiving of '{ns}/{cluster_name}' is turned off and ObjectStore {name} removed; the backups and "
              f"WAL already in {existing['spec'].get('destinationPath')} are NOT deleted (to restore from them, "
              "configure the store again)")
    if dry_run:
        return result(f"Dry run (nothing changed): deleting PgBackupStoreRequest {ns}/{name}: {effect}.", data)
    return result(f"Deleted PgBackupStoreRequest {ns}/{name}: {effect}.", data)


async def _backup_wait(gw: Gateway, ctx: Context, ns: str, name: str, timeout: float) -> Json | None:
    """Follow the request's mirrored Backup phase until final (or refused, or the timeout), with progress."""
    deadline = time.monotonic() + timeout
    last, step = None, 0
    while True:
        request = await gw.kube.intent_get_or_none(BACKUPS, ns, name)
        status = (request or {}).get("status") or {}
        phase = status.get("phase")
        message = f"{name}: {phase or 'waiting for CNPG'}" + (f" ({status.get('message')})"
                                                             if status.get("message") else "")
        if message != last:
            step += 1
            await ctx.report_progress(step, None, message)
            last = message
        if phase in BACKUP_FINAL_PHASES or render.ready_condition(request).get("reason") in REFUSALS:
            return request
        if time.monotonic() >= deadline:
            return request
        await anyio.sleep(0.5)


async def create_postgres_backup(
    gw: Gateway,
    cluster_name: ClusterName, ctx: Context,
    method: Method = "plugin", target: Target = None,
    online: Annotated[bool | None, Field(description="volumeSnapshot only: hot (true) or cold backup")] = None,
    backup_name: Annotated[ObjectName | None, Field(
        description="Name of the backup (default <cluster>-<UTC time>)")] = None,
    wait: Annotated[bool, Field(description="Wait until the backup completed or failed, with progress")] = False,
    timeout: Annotated[int, Field(ge=10, le=3600, description="Seconds to wait (10-3600)")] = 600,
    namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to take a backup of a cluster now (e.g. before an upgrade or a risky change).
    Creates a PgBackupRequest; the operator creates the CNPG Backup (Barman Cloud plugin into the store set
    up by configure_postgres_backups, or a volume snapshot). With wait=true it reports progress until CNPG
    reports the backup completed or failed; it always reports the real phase."""
    ns = gw.namespace(namespace)
    name = backup_name or backup_intents.backup_name(cluster_name, _now())
    body = backup_intents.backup_intent(name, ns, cluster=cluster_name, method=method, target=target, online=online,
                                        requested_by=gw.requested_by())
    async with gw.acting(f"backing up {ns}/{cluster_name}"):
        cluster = await _require_cluster(gw, ns, cluster_name)
        _refuse_in_tree(cluster, ns, cluster_name)
        if method == "plugin" and cluster and backup_intents.archiver_of(cluster) is None:
            raise errors.tool_error(errors.CONFLICT, (
                f"cluster {ns}/{cluster_name} has no Barman Cloud WAL archiver, so a plugin backup would fail. "
                "Nothing was created: call configure_postgres_backups first (or use method='volumeSnapshot')."))
        if await gw.kube.intent_get_or_none(BACKUPS, ns, name) is not None or \
                await gw.kube.cnpg_get_or_none(constants.CNPG_BACKUPS, ns, name) is not None:
            raise errors.tool_error(errors.ALREADY_EXISTS, f"a backup {name!r} exists in {ns!r}; pick another "
                                    "backup_name (list_postgres_backups lists them)")
        created = await gw.kube.write_intent(BACKUPS, ns, body, dry_run=dry_run)
        if dry_run:
            applied = {k: created[k] for k in ("apiVersion", "kind", "spec")}
            data: Json = {"dry_run": True, "created": False, "backup": name, "cluster": f"{ns}/{cluster_name}",
                          "method": method, "finished": False, "manifest": applied}
            return result(f"Dry run: PgBackupRequest {ns}/{name} (validated by the API server, nothing created):"
                          f"\n```yaml\n{render.manifests_yaml([applied])}```", data)
        started = time.monotonic()
        if wait:
            request = await _backup_wait(gw, ctx, ns, name, float(timeout))
        else:
            request = await _follow(gw, BACKUPS, ns, name, 2.0)
    status = (request or {}).get("status") or {}
    phase = status.get("phase")
    data = {"dry_run": False, "created": True, "backup": name, "cluster": f"{ns}/{cluster_name}", "method": method,
            "phase": phase, "finished": phase in BACKUP_FINAL_PHASES, "backup_id": status.get("backupID"),
            "started_at": status.get("startedAt"), "stopped_at": status.get("stoppedAt"),
            "error": status.get("error"), "waited_seconds": round(time.monotonic() - started, 1) if wait else None}
    head = f"Backup '{name}' of cluster '{ns}/{cluster_name}' ({method})"
    if phase == "completed":
        text = (f"{head} COMPLETED: backupId {data['backup_id']}, {data['started_at']} → {data['stopped_at']}.")
    elif phase in BACKUP_FINAL_PHASES:
        text = f"{head} FAILED: {status.get('error') or status.get('message') or phase}."
    elif render.ready_condition(request).get("reason") in REFUSALS:
        text = f"{head} was NOT taken: {status.get('message')}."
    else:
        text = (f"{head} requested (PgBackupRequest {ns}/{name}); phase now: {phase or 'not started yet'}"
                + (f" — still running after {timeout}s" if wait else "")
                + ". Follow it with list_postgres_backups.")
    return result(text, data)


async def list_postgres_backups(gw: Gateway, cluster_name: ClusterName, namespace: Namespace = None,
                                format: Format = "text") -> CallToolResult:
    """Use to see a cluster's backups, its backup schedules and how far back it can be restored.
    Lists the CNPG Backups (phase, method, begin/end, backupId), the schedules with their next runs, and
    the recoverability window from the Barman Cloud ObjectStore: "you can restore to any time between A and
    now". Works for a cluster that no longer exists, as long as its backups are listed."""
    ns = gw.namespace(namespace)
    now = _now()
    async with gw.acting(f"listing backups of {ns}/{cluster_name}"):
        cluster, store_request = await both(gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, cluster_name),
                                            _store_request_of(gw, ns, cluster_name))
        backups, requests = await both(gw.kube.cnpg_list(constants.CNPG_BACKUPS, ns), gw.kube.intent_list(BACKUPS, ns))
        scheduled, schedule_requests = await both(gw.kube.cnpg_list(constants.CNPG_SCHEDULED_BACKUPS, ns),
                                                  gw.kube.intent_list(SCHEDULES, ns))
        archiver = backup_intents.archiver_of(cluster)
        store_name = archiver[0] if archiver else (store_request or {}).get("metadata", {}).get("name")
        server = archiver[1] if archiver else str(((store_request or {}).get("status") or {}).get("serverName")
                                                  or cluster_name)
        store = await _object_store(gw, ns, store_name) if store_name else None
    mine = {r["metadata"]["name"]: r for r in requests if r["spec"].get("cluster") == cluster_name}
    entries = [backup_intents.backup_entry(b, mine.pop(b["metadata"]["name"], None)) for b in backups
               if ((b.get("spec") or {}).get("cluster") or {}).get("name") == cluster_name]
    entries += [backup_intents.backup_entry(None, r) for r in mine.values()]
    entries.sort(key=lambda e: str(e["started_at"] or e["stopped_at"] or "~"))
    wanted = {r["metadata"]["name"]: r for r in schedule_requests if r["spec"].get("cluster") == cluster_name}
    schedules = [backup_intents.schedule_entry(s, wanted.pop(s["metadata"]["name"], None), now) for s in scheduled
                 if ((s.get("spec") or {}).get("cluster") or {}).get("name") == cluster_name]
    schedules += [backup_intents.schedule_entry(None, r, now) for r in wanted.values()]
    window = _window(server, recovery_window(store, server)) if store_name else None
    data: Json = {"cluster": f"{ns}/{cluster_name}", "store": store_name, "archiving": _archiving(cluster),
                  "window": window, "backups": entries, "schedules": schedules, "count": len(entries)}
    lines = [f"Backups of cluster '{ns}/{cluster_name}':"]
    if store_name:
        lines.append(f"Store: ObjectStore {store_name} (serverName {server}); WAL archiving: "
                     f"{ {True: 'working', False: 'FAILING', None: 'not reported'}[data['archiving']] }.")
        lines.append(f"Recoverability window: {window['summary'] if window else '-'}.")
    else:
        lines.append("No backup store: configure_postgres_backups sets one up (needed for plugin backups and "
                     "point-in-time restores).")
    lines.append(f"{len(entries)} backup(s)" + (":" if entries else "."))
    lines += [backup_intents.backup_row(e) for e in entries]
    lines.append(f"{len(schedules)} schedule(s)" + (":" if schedules else "."))
    lines += [backup_intents.schedule_row(s, now) for s in schedules]
    return result("\n".join(lines), data, as_json=format == "json")


async def schedule_postgres_backup(
    gw: Gateway,
    cluster_name: ClusterName,
    schedule: Annotated[str, Field(
        description="Six-field cron, seconds FIRST, in UTC: '0 0 2 * * *' = 02:00:00 daily, '0 30 */6 * * *' = "
                    "every 6 hours at :30", max_length=256)],
    schedule_name: Annotated[ObjectName | None, Field(
        description="Name of the schedule (default <cluster>-scheduled); an existing one is updated")] = None,
    method: Method = "plugin", target: Target = None,
    immediate: Annotated[bool, Field(description="Also take one backup as soon as the schedule is created")] = False,
    suspend: Annotated[bool, Field(description="Pause the schedule (true) or resume it (false)")] = False,
    backup_owner_reference: Annotated[Literal["none", "self", "cluster"], Field(
        description="Who owns the Backups it takes: none (default: they outlive the schedule), self (deleted with "
                    "the schedule), cluster (deleted with the cluster)")] = "none",
    namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to back a cluster up on a schedule, or to change, pause or resume a schedule.
    Creates or updates a PgBackupScheduleRequest (a CNPG ScheduledBackup). The cron expression is checked
    first and the answer lists the next runs in plain words."""
    checked = backup_intents.checked_schedule(schedule)
    ns = gw.namespace(namespace)
    name = schedule_name or f"{cluster_name}-scheduled"
    body = backup_intents.schedule_intent(name, ns, cluster=cluster_name, schedule=schedule, method=method,
                                          target=target, immediate=immediate, suspend=suspend,
                                          backup_owner_reference=backup_owner_reference,
                                          requested_by=gw.requested_by())
    async with gw.acting(f"scheduling backups of {ns}/{cluster_name}"):
        cluster = await _require_cluster(gw, ns, cluster_name)
        _refuse_in_tree(cluster, ns, cluster_name)
        existing = await gw.kube.intent_get_or_none(SCHEDULES, ns, name)
        if existing is None:
            written = await gw.kube.write_intent(SCHEDULES, ns, body, dry_run=dry_run)
            action = "created"
        else:
            if existing["spec"].get("cluster") != cluster_name:
                raise errors.tool_error(errors.CONFLICT, f"schedule {name!r} belongs to cluster "
                                        f"{existing['spec'].get('cluster')!r}; give another schedule_name")
            changes = {k: v for k, v in body["spec"].items() if existing["spec"].get(k) != v}
            changes.update({k: None for k in ("target",) if k in existing["spec"] and k not in body["spec"]})
            written = (await gw.kube.patch_intent(SCHEDULES, ns, name, {"spec": changes}, dry_run=dry_run)
                       if changes else existing)
            action = "updated" if changes else "unchanged"
        request = written if dry_run else await _follow(gw, SCHEDULES, ns, name, OPERATOR_ANSWER_SECONDS)
    now = _now()
    runs = [] if suspend else backup_intents.next_runs(checked, now)
    state = None if dry_run else render.intent_state(request)
    data: Json = {"dry_run": dry_run, "schedule_name": name, "cluster": f"{ns}/{cluster_name}",
                  "schedule": written["spec"]["schedule"], "action": action, "suspended": suspend,
                  "immediate": immediate, "next_runs": runs, "state": state, "spec": written["spec"]}
    when = ("SUSPENDED: no backups until resumed (suspend=false)." if suspend else
            "Next runs (UTC):\n" + backup_intents.runs_text(runs, now))
    if dry_run:
        return result(f"Dry run: schedule {ns}/{name} would be {action} (nothing written): "
                      f"'{data['schedule']}' for cluster '{ns}/{cluster_name}'.\n{when}", data)
    if state is not None and state.get("reason") == "Invalid":  # CNPG refused the ScheduledBackup: say so first
        return result(f"NOT scheduled: CloudNativePG refused the schedule {ns}/{name} for cluster "
                      f"'{ns}/{cluster_name}' (the request was {action}; fix its spec and call again).\n"
                      f"State: {_state_line(state)}", data)
    return result(f"Schedule {ns}/{name} {action} for cluster '{ns}/{cluster_name}': '{data['schedule']}' "
                  f"({method}{', plus one backup now' if immediate and action == 'created' else ''}).\n{when}\n"
                  f"State: {_state_line(state)}", data)


async def delete_postgres_backup_schedule(
    gw: Gateway,
    cluster_name: ClusterName,
    schedule_name: Annotated[ObjectName | None, Field(
        description="The schedule to delete; may be left out when the cluster has exactly one")] = None,
    namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to stop a cluster's scheduled backups for good (schedule_postgres_backup with suspend=true only
    pauses them). Deletes the PgBackupScheduleRequest and so its ScheduledBackup; Backups already taken stay
    unless the schedule owned them (backupOwnerReference self)."""
    ns = gw.namespace(namespace)
    async with gw.acting(f"listing backup schedules of {ns}/{cluster_name}"):
        names = [r["metadata"]["name"] for r in await gw.kube.intent_list(SCHEDULES, ns)
                 if r["spec"].get("cluster") == cluster_name]
    if schedule_name is None:
        if len(names) != 1:
            raise errors.tool_error(errors.NOT_FOUND if not names else errors.INVALID_ARGUMENT, (
                f"cluster {cluster_name!r} has no backup schedule made through cnpg-mcp" if not names else
                f"cluster {cluster_name!r} has {len(names)} schedules ({', '.join(names)}); give schedule_name"))
        schedule_name = names[0]
    elif schedule_name not in names:
        raise errors.tool_error(errors.NOT_FOUND, f"no backup schedule {schedule_name!r} of cluster {cluster_name!r} "
                                f"(its schedules: {', '.join(names) or 'none'}; list_postgres_backups shows them)")
    request = await delete_request(gw, SCHEDULES, ns, schedule_name, dry_run=dry_run,
                                   doing=f"deleting backup schedule {ns}/{schedule_name}",
                                   missing=f"no backup schedule {schedule_name!r} in {ns!r}")
    owner = request["spec"].get("backupOwnerReference", "none")
    kept = owner != "self"
    data = {"dry_run": dry_run, "deleted": not dry_run, "schedule_name": schedule_name,
            "cluster": f"{ns}/{cluster_name}", "backups_kept": kept}
    effect = ("the Backups it took stay" if kept else
              "the Backups it took are DELETED with it (backupOwnerReference self; their data in the store stays "
              "until the retention policy removes it)")
    heading = "Dry run (nothing deleted): deleting" if dry_run else "Deleted"
    return result(f"{heading} backup schedule {ns}/{schedule_name} ('{request['spec'].get('schedule')}') of cluster "
                  f"'{ns}/{cluster_name}': no more scheduled backups; {effect}.", data)


async def _restore_source(gw: Gateway, ns: str, source: str, store: str | None) -> tuple[str, str]:
    """(ObjectStore, serverName) holding the source's backups: as given, else its store request, else the
    source Cluster's archiver entry."""
    request = await _store_request_of(gw, ns, source)
    if request is not None and store in (None, request["metadata"]["name"]):
        server = (request.get("status") or {}).get("serverName") or request["spec"].get("serverName") or source
        return str(request["metadata"]["name"]), str(server)
    archiver = backup_intents.archiver_of(await gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, source))
    if archiver is not None and store in (None, archiver[0]):
        return archiver
    if store is None:
        raise errors.tool_error(errors.NOT_FOUND, f"no backup store found for cluster {source!r} in {ns!r}; give "
                                "store (the ObjectStore holding its backups)")
    return str(store), source


async def restore_postgres_cluster(
    gw: Gateway,
    name: Annotated[ClusterName, Field(description="Name of the NEW cluster (restore never overwrites one)")],
    source_cluster: Annotated[ClusterName, Field(description="The cluster whose backups are restored (it may be "
                                                             "gone)")],
    ctx: Context,
    store: Annotated[ObjectName | None, Field(
        description="The ObjectStore holding the backups; default the source's store")] = None,
    target_time: Annotated[str | None, Field(
        description="Point in time to restore to (RFC 3339, e.g. 2026-12-02T17:00:00Z); must be inside the "
                    "recoverability window")] = None,
    target_lsn: Annotated[str | None, Field(description="WAL position to restore to, e.g. 0/3000060",
                                            pattern=r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")] = None,
    target_name: Annotated[str | None, Field(description="A restore point made with pg_create_restore_point "
                                                         "(needs backup_id)", min_length=1)] = None,
    backup_id: Annotated[str | None, Field(description="The backup to start from (its backupId)",
                                           min_length=1)] = None,
    exclusive: Annotated[bool | None, Field(description="Stop just before the target instead of after it")] = None,
    instances: Annotated[int, Field(ge=1, le=10, description="Instances of the new cluster (1-10)")] = 1,
    storage_size: Annotated[str | None, Field(
        description="Storage per instance, e.g. 10Gi; default the source's (10Gi if it is gone)")] = None,
    postgres_version: Annotated[str | None, Field(
        description="PostgreSQL major version; default the source's image (a restore needs the same major "
                    "version)")] = None,
    wait: Annotated[bool, Field(description="Wait until CNPG reports the restored cluster healthy")] = False,
    timeout: Annotated[int, Field(ge=30, le=1800, description="Seconds to wait (30-1800)")] = 600,
    namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to restore a cluster's backups into a NEW cluster: the latest state, or point-in-time (a time, a WAL
    LSN or a named restore point). Never in place. Checks the target against the recoverability window
    first and refuses, writing nothing, when it is outside; dry_run shows the recovery Cluster that would
    be created. Creates a PgClusterRequest with restoreFrom."""
    ns = gw.namespace(namespace)
    target = backup_intents.recovery_target(target_time=target_time, target_lsn=target_lsn,
                                            target_name=target_name, backup_id=backup_id, exclusive=exclusive)
    async with gw.acting(f"restoring {ns}/{source_cluster} into {ns}/{name}"):
        if name == source_cluster:
            raise errors.tool_error(errors.INVALID_ARGUMENT, "restore never overwrites a cluster: give a new name")
        if await gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, name) is not None or \
                await gw.kube.intent_get_or_none(CLUSTERS, ns, name) is not None:
            raise errors.tool_error(errors.ALREADY_EXISTS, f"a cluster {name!r} exists in {ns!r}; restore creates a "
                                    "new cluster, pick another name")
        store_name, server = await _restore_source(gw, ns, source_cluster, store)
        object_store = await _object_store(gw, ns, store_name)
        window = _window(server, recovery_window(object_store, server))
        source = ((await gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, source_cluster)) or {}).get("spec")
        body = backup_intents.restore_intent(
            name, ns, source=source_cluster, store=store_name, server_name=server, target=target,
            instances=instances, storage_size=storage_size or (source or {}).get("storage", {}).get("size") or "10Gi",
            postgres_version=postgres_version, image_name=(source or {}).get("imageName"),
            requested_by=gw.requested_by())
        refusal = restore_refusal(RestoreFromSpec.model_validate(body["spec"]["restoreFrom"]), object_store, ns,
                                  _now())
        if refusal is not None:
            raise errors.tool_error(errors.NOT_RECOVERABLE, f"{refusal.message}. Nothing was created; "
                                    "list_postgres_backups shows the backups and the window.")
        created = await gw.kube.write_intent(CLUSTERS, ns, body, dry_run=dry_run)
        data: Json = {"dry_run": dry_run, "created": not dry_run, "name": name, "namespace": ns,
                      "source_cluster": source_cluster, "store": store_name, "server_name": server,
                      "target": created["spec"]["restoreFrom"].get("target"), "window": window}
        point = (f"time {target_time}" if target_time else f"LSN {target_lsn}" if target_lsn else
                 f"restore point {target_name!r}" if target_name else "the latest state")
        if dry_run:
            applied = {k: created[k] for k in ("apiVersion", "kind", "spec")}
            recovery = build_cluster({"metadata": {"name": name, "namespace": ns}, "spec": created["spec"]})
            data.update(manifest=applied, cluster_manifest=recovery)
            return result(f"Dry run (nothing created): restoring '{ns}/{source_cluster}' to {point} into a new "
                          f"cluster '{ns}/{name}' from ObjectStore {store_name} (serverName {server}); "
                          f"{window['summary']}.\nPgClusterRequest:\n```yaml\n{render.manifests_yaml([applied])}```"
                          f"\nThe recovery Cluster the operator would create:\n```yaml\n"
                          f"{render.manifests_yaml([recovery])}```", data)
        started = time.monotonic()
        if wait:
            await _ready_wait(gw, ctx, ns, name, float(timeout))
            request = await gw.kube.intent_get_or_none(CLUSTERS, ns, name)
        else:
            request = await _follow_restore(gw, ns, name)
    status = (request or {}).get("status") or {}
    state = render.intent_state(request)
    data.update(state=state, cluster_created=bool(status.get("clusterUID")),
                ready=bool(state and state["ready"]),
                waited_seconds=round(time.monotonic() - started, 1) if wait else None)
    head = f"Restore of '{ns}/{source_cluster}' to {point} into new cluster '{ns}/{name}'"
    if data["ready"]:
        text = (f"{head}: the cluster is HEALTHY ({status.get('phase')}).")
    elif state and state["reason"] in REFUSALS:
        text = (f"{head} was REFUSED by the operator ({state['reason']}): {state.get('message')}. No Cluster was "
                f"created; the PgClusterRequest {ns}/{name} stays for inspection (restoreFrom is immutable: delete "
                f"it with delete_postgres_cluster(name=\"{name}\", confirm_deletion=true) and restore again).")
    elif data["cluster_created"]:
        text = (f"{head}: Cluster created, recovering ({status.get('phase') or 'starting'})"
                + (f"; not healthy after {timeout}s" if wait else "")
                + f". Follow it with get_cluster_status(name=\"{name}\", namespace=\"{ns}\").")
    else:
        text = (f"{head}: PgClusterRequest created; the operator has NOT created the Cluster yet "
                f"({_state_line(state)}).")
    text += (f"\nTo back up the restored cluster, give it its own store: configure_postgres_backups("
             f"cluster_name=\"{name}\", ...) (it archives under its own serverName '{name}').")
    return result(text, data)


async def _follow_restore(gw: Gateway, ns: str, name: str) -> Json | None:
    """Until the operator created the Cluster or refused the restore (or OPERATOR_ANSWER_SECONDS)."""
    deadline = time.monotonic() + OPERATOR_ANSWER_SECONDS
    while True:
        request = await gw.kube.intent_get_or_none(CLUSTERS, ns, name)
        status = (request or {}).get("status") or {}
        if status.get("clusterUID") or render.ready_condition(request).get("reason") in REFUSALS \
                or time.monotonic() >= deadline:
            return request
        await anyio.sleep(0.5)


TOOLS = (
    # Destructive: archiving=false turns WAL archiving off (no point-in-time recovery from then on).
    # Idempotent: the same arguments leave the same request.
    ToolSpec("configure_postgres_backups", "Configure backups and WAL archiving", "backups",
             hints(read_only=False, destructive=True, idempotent=True), outputs.BackupStoreConfigured,
             configure_postgres_backups, (errors.NOT_FOUND, errors.CONFLICT)),
    ToolSpec("create_postgres_backup", "Back up a PostgreSQL cluster now", "backups", CREATE, outputs.BackupTaken,
             create_postgres_backup, (errors.NOT_FOUND, errors.CONFLICT, errors.ALREADY_EXISTS)),
    ToolSpec("list_postgres_backups", "List backups, schedules and the recoverability window", "backups", READ,
             outputs.BackupList, list_postgres_backups),
    # Idempotent and not destructive: the same schedule twice is one schedule; pausing takes nothing away.
    ToolSpec("schedule_postgres_backup", "Schedule backups of a PostgreSQL cluster", "backups",
             hints(read_only=False, destructive=False, idempotent=True), outputs.BackupScheduled,
             schedule_postgres_backup, (errors.NOT_FOUND, errors.CONFLICT)),
    ToolSpec("delete_postgres_backup_schedule", "Delete a backup schedule", "backups", DELETE,
             outputs.BackupScheduleDeleted, delete_postgres_backup_schedule, (errors.NOT_FOUND,)),
    ToolSpec("restore_postgres_cluster", "Restore a PostgreSQL cluster into a new cluster (point in time)",
             "backups", CREATE, outputs.ClusterRestore, restore_postgres_cluster,
             (errors.NOT_FOUND, errors.ALREADY_EXISTS, errors.NOT_RECOVERABLE)),
)
