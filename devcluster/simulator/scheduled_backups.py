"""ScheduledBackup: Backups on a six-field cron schedule, as CNPG's scheduled backup controller does.

`immediate` takes one at once the first time; then one per due run, named
`<scheduledbackup>-<YYYYMMDDhhmmss>` with labels `cnpg.io/scheduled-backup` and `cnpg.io/cluster`,
the schedule's method/pluginConfiguration/target/online, and an owner per `backupOwnerReference`
(none, self, cluster). Status: lastCheckTime, lastScheduleTime, nextScheduleTime. `suspend` stops
it. A timer enqueues the object at its next run (runs missed while the simulator was down are not
made up: one Backup at most per reconcile).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar

from cnpg_mcp_api import cron
from devcluster.simulator.common import API_VERSION, CLUSTER_LABEL, GROUP, VERSION, Json, owner_reference
from devcluster.simulator.context import Context, OwnKindHandler

log = logging.getLogger(__name__)
SCHEDULED_BACKUP_LABEL = "cnpg.io/scheduled-backup"  # pkg/utils/labels_annotations.go
IMMEDIATE_BACKUP_LABEL = "cnpg.io/immediateBackup"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def backup_body(scheduled: Mapping[str, Any], cluster: Mapping[str, Any] | None, moment: datetime,
                immediate: bool) -> Json:
    """The Backup a ScheduledBackup makes at `moment`."""
    meta, spec = scheduled["metadata"], scheduled.get("spec") or {}
    cluster_name = (spec.get("cluster") or {}).get("name")
    labels = {SCHEDULED_BACKUP_LABEL: meta["name"], CLUSTER_LABEL: cluster_name}
    if immediate:
        labels[IMMEDIATE_BACKUP_LABEL] = "true"
    body_meta: Json = {"name": f"{meta['name']}-{moment.strftime('%Y%m%d%H%M%S')}", "namespace": meta["namespace"],
                       "labels": labels}
    owner = spec.get("backupOwnerReference") or "none"
    if owner == "self":
        body_meta["ownerReferences"] = [owner_reference(scheduled)]
    elif owner == "cluster" and cluster is not None:
        body_meta["ownerReferences"] = [owner_reference(cluster)]
    backup_spec = {"cluster": {"name": cluster_name}, "method": spec.get("method") or "barmanObjectStore"}
    for key in ("pluginConfiguration", "target", "online", "onlineConfiguration"):
        if spec.get(key) is not None:
            backup_spec[key] = spec[key]
    return {"apiVersion": API_VERSION, "kind": "Backup", "metadata": body_meta, "spec": backup_spec}


class ScheduledBackupHandler(OwnKindHandler):
    kind: ClassVar[str] = "scheduledbackup"
    plural: ClassVar[str] = "scheduledbackups"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._timers: dict[tuple[str, str], threading.Timer] = {}

    def _wake_at(self, namespace: str, name: str, when: datetime) -> None:
        previous = self._timers.pop((namespace, name), None)
        if previous is not None:
            previous.cancel()
        delay = max(0.0, (when - datetime.now(UTC)).total_seconds()) + 0.05
        timer = threading.Timer(delay, partial(self._ctx.enqueue, (self.kind, namespace, name)))
        timer.daemon = True
        self._timers[(namespace, name)] = timer
        timer.start()

    def _create_backup(self, scheduled: Json, cluster: Json | None, moment: datetime, immediate: bool) -> None:
        body = backup_body(scheduled, cluster, moment, immediate)
        custom = self._ctx.kube.custom()
        self._ctx.kube.create_if_missing(
            partial(custom.create_namespaced_custom_object, GROUP, VERSION, scheduled["metadata"]["namespace"],
                    "backups", body),
            f"Backup {scheduled['metadata']['namespace']}/{body['metadata']['name']}")

    def reconcile(self, namespace: str, name: str) -> bool:
        ctx = self._ctx
        scheduled = ctx.kube.get(self.plural, namespace, name)
        if scheduled is None or scheduled["metadata"].get("deletionTimestamp"):
            timer = self._timers.pop((namespace, name), None)
            if timer is not None:
                timer.cancel()
            return True
        spec, status = scheduled.get("spec") or {}, scheduled.get("status") or {}
        now = datetime.now(UTC).replace(microsecond=0)
        try:
            schedule = cron.parse(str(spec.get("schedule") or ""))
        except cron.CronError as exc:
            ctx.kube.patch_status(self.plural, scheduled, {"lastCheckTime": rfc3339(now), "error": str(exc)})
            return True
        owned: Json = {"lastCheckTime": rfc3339(now), "error": None}
        if spec.get("suspend"):
            ctx.kube.patch_status(self.plural, scheduled, {**owned, "nextScheduleTime": None})
            return True
        cluster_name = (spec.get("cluster") or {}).get("name")
        cluster = ctx.kube.get("clusters", namespace, str(cluster_name))
        last = status.get("lastScheduleTime")
        if last is None and spec.get("immediate"):
            self._create_backup(scheduled, cluster, now, immediate=True)
            owned["lastScheduleTime"] = last = rfc3339(now)
        since = parse_time(last) if last else parse_time(scheduled["metadata"]["creationTimestamp"])
        due = schedule.next_runs(since, 1)
        if due and due[0] <= now:
            self._create_backup(scheduled, cluster, due[0], immediate=False)
            owned["lastScheduleTime"] = rfc3339(due[0])
            due = schedule.next_runs(now, 1)
        if due:
            owned["nextScheduleTime"] = rfc3339(due[0])
            self._wake_at(namespace, name, due[0])
        ctx.kube.patch_status(self.plural, scheduled, owned)
        return True
