"""PgBackupScheduleRequest → a CNPG ScheduledBackup named like the request and owned by it.

Schedule, suspend, immediate, method, target and owner policy are kept in line (the cluster is
immutable in both). The status mirrors CNPG's lastScheduleTime and nextScheduleTime. Deleting the
request deletes the ScheduledBackup (garbage collection); the Backups it made stay unless
backupOwnerReference made them its own.
"""

from __future__ import annotations

from typing import Any

from cnpg_mcp_api.conditions import ready_reason
from cnpg_mcp_api.models import PgBackupScheduleRequestSpec
from cnpg_mcp_operator.backup_readiness import scheduled_backup_verdict
from cnpg_mcp_operator.builders.backup import build_scheduled_backup
from cnpg_mcp_operator.drift import merge_patch, owned_by
from cnpg_mcp_operator.handlers.common import (
    BACKUP_SCHEDULE_REQUESTS,
    create_or_get,
    finish_deletion,
    produce_again,
    refusal_verdict,
    spec_problem,
    verdict_status,
)
from cnpg_mcp_operator.k8s import SCHEDULED_BACKUPS, ApiError
from cnpg_mcp_operator.readiness import Verdict
from cnpg_mcp_operator.runtime import Runtime
from cnpg_mcp_operator.status_writer import intent_key
from cnpg_mcp_operator.views import CnpgViews

Json = dict[str, Any]
OPTIONAL_KEYS = ("target", "online", "pluginConfiguration")


def _mirrored(scheduled: Json | None) -> Json:
    status = (scheduled or {}).get("status") or {}
    # None removes a time CNPG no longer reports (a suspended schedule has no next run)
    return {key: status.get(key) or None for key in ("lastScheduleTime", "nextScheduleTime")}


async def reconcile(rt: Runtime, body: Json, views: CnpgViews) -> None:
    await _update(rt, body, views, produce=True)


async def refresh_status(rt: Runtime, body: Json, views: CnpgViews) -> None:
    await _update(rt, body, views, produce=False)


def needs_reconcile(_: Runtime, body: Json, views: CnpgViews) -> bool:
    meta = body["metadata"]
    if ready_reason(body) == "Invalid":  # only a spec change helps (it reconciles on its own)
        return False
    return produce_again(body, views.scheduled_backup(meta["namespace"], meta["name"]), ("ClusterNotFound",))


async def _update(rt: Runtime, body: Json, views: CnpgViews, *, produce: bool) -> None:
    async with rt.locks(intent_key(body)):
        body = rt.status.freshest(body)
        if body["metadata"].get("deletionTimestamp") or (not produce and ready_reason(body) == "Invalid"):
            return  # a refused spec stays reported until the spec changes
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        invalid = spec_problem(PgBackupScheduleRequestSpec, body)
        if invalid is not None:
            await rt.status.write(BACKUP_SCHEDULE_REQUESTS, body, verdict_status(body, invalid))
            return
        spec = PgBackupScheduleRequestSpec.model_validate(body["spec"])
        scheduled = views.scheduled_backup(namespace, name)
        if scheduled is None and not produce:
            return
        if views.cluster(namespace, spec.cluster) is None and scheduled is None:
            verdict = Verdict(False, "ClusterNotFound", f'Cluster "{spec.cluster}" not found in {namespace}')
            await rt.status.write(BACKUP_SCHEDULE_REQUESTS, body, verdict_status(body, verdict))
            return
        desired = build_scheduled_backup(body)
        try:
            if scheduled is None:
                scheduled = await create_or_get(rt, SCHEDULED_BACKUPS, namespace, desired)
            if scheduled is not None and not owned_by(scheduled, body["metadata"]["uid"]):
                verdict = Verdict(False, "Conflict",
                                  f"ScheduledBackup {name} exists and does not belong to this request")
                await rt.status.write(BACKUP_SCHEDULE_REQUESTS, body, verdict_status(body, verdict))
                return
            if scheduled is not None and produce:
                patch = merge_patch(desired["spec"], scheduled.get("spec") or {}, OPTIONAL_KEYS)
                if patch:
                    scheduled = await rt.api.patch(SCHEDULED_BACKUPS, namespace, name, {"spec": patch})
        except ApiError as exc:  # e.g. method volumeSnapshot without the VolumeSnapshot CRD
            verdict = refusal_verdict(exc, "ScheduledBackup")
            await rt.status.write(BACKUP_SCHEDULE_REQUESTS, body, verdict_status(body, verdict))
            return
        verdict = scheduled_backup_verdict(scheduled, spec.suspend)
        await rt.status.write(BACKUP_SCHEDULE_REQUESTS, body,
                              verdict_status(body, verdict, keep_generation=not produce, scheduledBackup=name,
                                             **_mirrored(scheduled)))


async def finalize(rt: Runtime, body: Json, views: CnpgViews) -> None:
    """The ScheduledBackup is owned by the request: the garbage collector deletes it."""
    await finish_deletion(rt, BACKUP_SCHEDULE_REQUESTS, body)
