"""PgBackupRequest → one CNPG Backup named like the request and owned by it.

The Backup is immutable and one-shot: it is created once and never again (a Backup deleted by
someone is reported, not retaken). The status mirrors its phase, backupId and times. Once the
backup has finished (completed or failed), the request deletes itself after
spec.ttlSecondsAfterFinished with propagation Orphan: the garbage collector then drops the
ownerReference and keeps the Backup (deleting a Backup never deletes the data in the store anyway).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from cnpg_mcp_api.conditions import ready_reason
from cnpg_mcp_api.models import PgBackupRequestSpec
from cnpg_mcp_operator.backup_readiness import backup_finished, backup_status_fields, backup_verdict
from cnpg_mcp_operator.builders.backup import build_backup
from cnpg_mcp_operator.drift import owned_by
from cnpg_mcp_operator.handlers.common import (
    BACKUP_REQUESTS,
    create_or_get,
    finish_deletion,
    spec_problem,
    verdict_status,
)
from cnpg_mcp_operator.k8s import BACKUPS
from cnpg_mcp_operator.readiness import Verdict
from cnpg_mcp_operator.runtime import Runtime
from cnpg_mcp_operator.status_writer import IntentKey, intent_key
from cnpg_mcp_operator.views import CnpgViews

log = logging.getLogger(__name__)

Json = dict[str, Any]
REFUSED = ("Conflict", "Invalid", "BackupDeleted")
_expiries: dict[IntentKey, asyncio.TimerHandle] = {}
_running: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


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
            backup = await create_or_get(rt, BACKUPS, namespace, build_backup(body))
        if backup is None:
            return  # created and deleted at once: the observer brings us back
        if not owned_by(backup, uid):
            verdict = Verdict(False, "Conflict", f"Backup {name} exists and does not belong to this request")
            await rt.status.write(BACKUP_REQUESTS, body, verdict_status(body, verdict))
            return
        extra: Json = {"backup": name, "backupUID": backup["metadata"]["uid"], **backup_status_fields(backup)}
        if backup_finished(backup):
            extra["finishedAt"] = status.get("finishedAt") or _now()
        body = await rt.status.write(BACKUP_REQUESTS, body,
                                     verdict_status(body, backup_verdict(backup), keep_generation=not produce,
                                                    **extra))
        if "finishedAt" in extra:
            _schedule_expiry(rt, body, extra["finishedAt"], spec.ttl_seconds_after_finished)


def _schedule_expiry(rt: Runtime, body: Json, finished_at: str, ttl_seconds: int) -> None:
    """Delete the request (orphaning its Backup) ttl_seconds after the backup finished. The timer lives
    in this process; after a restart the resume handler schedules it again."""
    key = intent_key(body)
    meta = body["metadata"]
    due = _parse(finished_at) + timedelta(seconds=ttl_seconds)
    delay = max(0.0, (due - datetime.now(UTC)).total_seconds())
    if key in _expiries:
        _expiries.pop(key).cancel()
    loop = asyncio.get_running_loop()

    def start() -> None:
        task = loop.create_task(_expire(rt, key, meta["uid"]))
        _running.add(task)
        task.add_done_callback(_running.discard)

    _expiries[key] = loop.call_later(delay, start)


async def _expire(rt: Runtime, key: IntentKey, uid: str) -> None:
    _expiries.pop(key, None)
    _, namespace, name = key
    try:
        current = await rt.api.get(BACKUP_REQUESTS, namespace, name)
        if current is None or current["metadata"]["uid"] != uid or current["metadata"].get("deletionTimestamp"):
            return
        log.info("PgBackupRequest %s/%s finished its TTL; deleting it (the Backup stays)", namespace, name)
        await rt.api.delete(BACKUP_REQUESTS, namespace, name, propagation="Orphan")
    except Exception as exc:  # a timer task has nobody to report to but the log
        log.warning("TTL cleanup of PgBackupRequest %s/%s failed: %s", namespace, name, exc)


async def finalize(rt: Runtime, body: Json, views: CnpgViews) -> None:
    """Nothing to release: the Backup goes with the request (background) or stays (orphan)."""
    timer = _expiries.pop(intent_key(body), None)
    if timer is not None:
        timer.cancel()

    await finish_deletion(rt, BACKUP_REQUESTS, body)
