"""PgBackupRequest → one CNPG Backup named like the request and owned by it.

The Backup is immutable and one-shot: it is created once and never again (a Backup deleted by
someone is reported, not retaken). The status mirrors its phase, backupId and times. Once the
backup has finished (completed or failed), the request deletes itself after
spec.ttlSecondsAfterFinished with propagation Orphan: the garbage collector then drops the
ownerReference and keeps the Backup (deleting a Backup never deletes the data in the store anyway).
"""

from __future__ import annotations

import logging
from typing import Any

from cnpg_mcp_api.conditions import ready_reason
from cnpg_mcp_api.models import PgBackupRequestSpec
from cnpg_mcp_operator import expiry
from cnpg_mcp_operator.backup_readiness import backup_finished, backup_status_fields, backup_verdict
from cnpg_mcp_operator.builders.backup import build_backup
from cnpg_mcp_operator.drift import owned_by
from cnpg_mcp_operator.handlers.common import (
    BACKUP_REQUESTS,
    create_or_get,
    finish_deletion,
    refusal_verdict,
    spec_problem,
    verdict_status,
)
from cnpg_mcp_operator.k8s import BACKUPS, ApiError
from cnpg_mcp_operator.readiness import Verdict
from cnpg_mcp_operator.runtime import Runtime
from cnpg_mcp_operator.status_writer import intent_key
from cnpg_mcp_operator.views import CnpgViews

log = logging.getLogger(__name__)

Json = dict[str, Any]
REFUSED = ("Conflict", "Invalid", "BackupDeleted")


async def reconcile(rt: Runtime, body: Json, views: CnpgViews) -> None:
    await _update(rt, body, views, produce=True)


async def refresh_status(rt: Runtime, body: Json, views: CnpgViews) -> None:
    await _update(rt, body, views, produce=False)


def needs_reconcile(_: Runtime, body: Json, views: CnpgViews) -> bool:
    """Not produced yet (its Cluster was missing): try again."""
    return (not body["metadata"].get("deletionTimestamp") and not (body.get("status") or {}).get("backupUID")
            and ready_reason(body) not in REFUSED)


async def _update(rt: Runtime, body: Json, views: CnpgViews, *, produce: bool) -> None:
    async with rt.locks(intent_key(body)):
        body = rt.status.freshest(body)
        if body["metadata"].get("deletionTimestamp"):
            return
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        uid = body["metadata"]["uid"]
        status = body.get("status") or {}
        invalid = spec_problem(PgBackupRequestSpec, body)
        if invalid is not None:
            await rt.status.write(BACKUP_REQUESTS, body, verdict_status(body, invalid))
            return
        spec = PgBackupRequestSpec.model_validate(body["spec"])
        backup = views.backup(namespace, name)
        if backup is None and status.get("backupUID"):
            verdict = Verdict(False, "BackupDeleted", f"Backup {name} was deleted; create a new request to back up")
            await rt.status.write(BACKUP_REQUESTS, body, verdict_status(body, verdict, keep_generation=not produce))
            return
        if backup is None and not produce:
            return
        if backup is None:
            if views.cluster(namespace, spec.cluster) is None:
                verdict = Verdict(False, "ClusterNotFound", f'Cluster "{spec.cluster}" not found in {namespace}')
                await rt.status.write(BACKUP_REQUESTS, body, verdict_status(body, verdict))
                return
            try:
                backup = await create_or_get(rt, BACKUPS, namespace, build_backup(body))
            except ApiError as exc:  # e.g. method volumeSnapshot without the VolumeSnapshot CRD
                await rt.status.write(BACKUP_REQUESTS, body, verdict_status(body, refusal_verdict(exc, "Backup")))
                return
        if backup is None:
            return  # created and deleted at once: the observer brings us back
        if not owned_by(backup, uid):
            verdict = Verdict(False, "Conflict", f"Backup {name} exists and does not belong to this request")
            await rt.status.write(BACKUP_REQUESTS, body, verdict_status(body, verdict))
            return
        extra: Json = {"backup": name, "backupUID": backup["metadata"]["uid"], **backup_status_fields(backup)}
        if backup_finished(backup):
            extra["finishedAt"] = status.get("finishedAt") or expiry.now()
        body = await rt.status.write(BACKUP_REQUESTS, body,
                                     verdict_status(body, backup_verdict(backup), keep_generation=not produce,
                                                    **extra))
        if "finishedAt" in extra:
            _schedule_expiry(rt, body, extra["finishedAt"], spec.ttl_seconds_after_finished)


def _schedule_expiry(rt: Runtime, body: Json, finished_at: str, ttl_seconds: int) -> None:
    """Delete the request (orphaning its Backup) ttl_seconds after the backup finished."""
    expiry.schedule(rt, BACKUP_REQUESTS, body, finished_at, ttl_seconds, propagation="Orphan",
                    note=" (the Backup stays)")


async def finalize(rt: Runtime, body: Json, views: CnpgViews) -> None:
    """Nothing to release: the Backup goes with the request (background) or stays (orphan)."""
    expiry.cancel(intent_key(body))

    await finish_deletion(rt, BACKUP_REQUESTS, body)
