"""PgOperationRequest → one day-2 operation on a Cluster, the CloudNativePG 1.30 way.

One-shot, like a Job: Pending → Running (the operator wrote CNPG's trigger, see
cnpg_mcp_api/operations.py) → Succeeded (CNPG showed the effect: the evidence is in the status) or
Failed (refused before anything was written, the Cluster vanished, or the timeout passed).
Nothing is ever written twice: a request that is Running after an operator restart resumes watching.

One running operation per Cluster: a second one is refused (Failed, reason Busy) with the name of the
running one. The operator is the only writer of operations (Kopf peering keeps one active
process), so an in-process claim per Cluster, checked against the stored requests, is the lock.

While Running, the request is re-evaluated on every Cluster event (cnpg_observers wakes it) and at
least every POLL_S seconds: Pod changes (a restarted replica) are not Cluster events.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from cnpg_mcp_api import constants, operations
from cnpg_mcp_api.models import (
    OPERATION_FAILED,
    OPERATION_FINISHED,
    OPERATION_RUNNING,
    OPERATION_SUCCEEDED,
    PgOperationRequestSpec,
)
from cnpg_mcp_operator import expiry
from cnpg_mcp_operator.handlers.common import OPERATION_REQUESTS, finish_deletion, spec_problem, verdict_status
from cnpg_mcp_operator.k8s import CLUSTERS, PODS, ApiError, retry_on_conflict
from cnpg_mcp_operator.readiness import Verdict
from cnpg_mcp_operator.runtime import Runtime
from cnpg_mcp_operator.status_writer import IntentKey, intent_key
from cnpg_mcp_operator.views import CnpgViews

log = logging.getLogger(__name__)

Json = dict[str, Any]
POLL_S = 2.0
ClusterKey = tuple[str, str]
_claims: dict[ClusterKey, str] = {}  # (namespace, cluster) → uid of the running operation
_watchers: dict[IntentKey, asyncio.Task[None]] = {}
_written: dict[str, Json] = {}  # request uid → its Running status fields, until that status is stored


class Refused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


async def reconcile(rt: Runtime, body: Json, views: CnpgViews) -> None:
    await _advance(rt, body)


async def refresh_status(rt: Runtime, body: Json, views: CnpgViews) -> None:
    """A Cluster event: a running operation's watcher is woken by cnpg_observers; make sure one runs."""
    if (body.get("status") or {}).get("phase") == OPERATION_RUNNING:
        _ensure_watcher(rt, body)


def needs_reconcile(_: Runtime, body: Json, views: CnpgViews) -> bool:
    return False  # one-shot: nothing is produced again after a CNPG event


def _pods_selector(cluster: str) -> str:
    return f"{constants.CNPG_CLUSTER_LABEL}={cluster}"


async def _advance(rt: Runtime, body: Json) -> None:
    async with rt.locks(intent_key(body)):
        body = rt.status.freshest(body)
        if body["metadata"].get("deletionTimestamp"):
            return
        status = body.get("status") or {}
        phase = status.get("phase")
        if phase in OPERATION_FINISHED:
            _schedule_ttl(rt, body)
            return
        if phase == OPERATION_RUNNING:
            _claims.setdefault(_cluster_key(body), body["metadata"]["uid"])
            _ensure_watcher(rt, body)
            return
        invalid = spec_problem(PgOperationRequestSpec, body)
        if invalid is not None:
            await _finish(rt, body, OPERATION_FAILED, Verdict(False, "Invalid", invalid.message))
            return
        uid = body["metadata"]["uid"]
        extra = _written.get(uid)  # the trigger is out, its Running status not stored yet: never write it again
        if extra is None:
            try:
                extra = _written[uid] = await _start(rt, body)
            except Refused as refused:
                await _finish(rt, body, OPERATION_FAILED, Verdict(False, refused.reason, refused.message))
                return
        spec = PgOperationRequestSpec.model_validate(body["spec"])
        what = f"{spec.type} of {spec.cluster}" + (f" ({extra['instance']})" if extra.get("instance") else "")
        body = await rt.status.write(OPERATION_REQUESTS, body, verdict_status(
            body, Verdict(False, "Running", f"{what}: asked CNPG, waiting for the effect"),
            phase=OPERATION_RUNNING, **extra))
        _written.pop(uid, None)
    _ensure_watcher(rt, body)


def _cluster_key(body: Json) -> ClusterKey:
    return body["metadata"]["namespace"], str((body.get("spec") or {}).get("cluster") or "")


async def _claim(rt: Runtime, body: Json) -> str | None:
    """Takes the Cluster for this operation; else the name of the one running there (from the stored
    requests, for a Running one this process has not seen yet, and from this process's claims).

    The claim is checked and taken after the listing, with no await in between: two requests started
    together cannot both pass."""
    namespace, cluster = _cluster_key(body)
    uid = body["metadata"]["uid"]
    others = [o for o in await rt.api.list(OPERATION_REQUESTS, namespace)
              if o["metadata"]["uid"] != uid and (o.get("spec") or {}).get("cluster") == cluster]
    claimed = _claims.get((namespace, cluster))
    if claimed not in (None, uid):
        return next((str(o["metadata"]["name"]) for o in others if o["metadata"]["uid"] == claimed),
                    "another operation")
    running = next((str(o["metadata"]["name"]) for o in others
                    if (o.get("status") or {}).get("phase") == OPERATION_RUNNING), None)
    if running is None:
        _claims[(namespace, cluster)] = uid
    return running


async def _start(rt: Runtime, body: Json) -> Json:
    """Claims the Cluster, checks the operation against it, writes CNPG's trigger; returns the status
    fields of a Running operation. Raises Refused when nothing was written."""
    namespace = body["metadata"]["namespace"]
    spec = PgOperationRequestSpec.model_validate(body["spec"])
    key = _cluster_key(body)
    busy = await _claim(rt, body)
    if busy is not None:
        raise Refused("Busy", f"operation {busy} is running on cluster {spec.cluster}; one operation runs at "
                              "a time: create this request again once it has finished")
    try:
        return await retry_on_conflict(lambda: _trigger_once(rt, namespace, spec))
    except BaseException:  # refused or failed: nothing was written, the Cluster is free again
        _claims.pop(key, None)
        raise


async def _trigger_once(rt: Runtime, namespace: str, spec: PgOperationRequestSpec) -> Json:
    """One read-check-write attempt (a 409 on the Cluster's resourceVersion makes retry_on_conflict redo it)."""
    cluster = await rt.api.get(CLUSTERS, namespace, spec.cluster)
    if cluster is None:
        raise Refused("ClusterNotFound", f'Cluster "{spec.cluster}" not found in {namespace}')
    instance = operations.resolve_instance(spec.type, spec.instance, cluster)
    problem = operations.refusal(spec.type, instance, cluster)
    if problem is not None:
        raise Refused("Refused", problem)
    now = expiry.now()
    pods = await rt.api.list(PODS, namespace, label_selector=_pods_selector(spec.cluster))
    live = {p["metadata"]["name"]: p for p in pods}
    trigger = operations.trigger(spec.type, instance, cluster, now)
    evidence: dict[str, str] = dict(trigger.written)
    evidence["previousPrimary"] = operations.current_primary(cluster) or ""
    if trigger.target == "pod":
        pod = live.get(trigger.name)
        if pod is None:
            raise Refused("Refused", f"instance {trigger.name} has no Pod right now; try again when it runs")
        evidence["podUID"] = str(pod["metadata"]["uid"])
        evidence["instancesBefore"] = ",".join(sorted(live))
        if trigger.action == "delete":
            await rt.api.delete(PODS, namespace, trigger.name, uid=evidence["podUID"])
        else:
            await rt.api.patch(PODS, namespace, trigger.name, trigger.patch)
    else:
        subresource = "status" if trigger.target == "cluster-status" else None
        written = await rt.api.patch(CLUSTERS, namespace, trigger.name, trigger.patch, subresource=subresource)
        evidence["resourceVersion"] = str(written["metadata"].get("resourceVersion") or "")
    log.info("operation %s on %s/%s: trigger written (%s)", spec.type, namespace, spec.cluster, trigger.target)
    return {"instance": instance, "clusterUID": cluster["metadata"]["uid"], "startedAt": now,
            "evidence": {k: v for k, v in evidence.items() if v}}


async def _finish(rt: Runtime, body: Json, phase: str, verdict: Verdict, **extra: Any) -> Json:
    body = await rt.status.write(OPERATION_REQUESTS, body, verdict_status(
        body, verdict, phase=phase, finishedAt=expiry.now(), **extra))
    if _claims.get(_cluster_key(body)) == body["metadata"]["uid"]:
        _claims.pop(_cluster_key(body), None)
    _schedule_ttl(rt, body)
    return body


def _schedule_ttl(rt: Runtime, body: Json) -> None:
    finished_at = (body.get("status") or {}).get("finishedAt")
    if finished_at:
        ttl = int((body.get("spec") or {}).get("ttlSecondsAfterFinished", 86400))
        expiry.schedule(rt, OPERATION_REQUESTS, body, finished_at, ttl)


def _ensure_watcher(rt: Runtime, body: Json) -> None:
    key = intent_key(body)
    task = _watchers.get(key)
    if task is not None and not task.done():
        return
    _watchers[key] = asyncio.get_running_loop().create_task(_watch(rt, body))


async def _watch(rt: Runtime, body: Json) -> None:
    key = intent_key(body)
    try:
        while True:
            rt.wakeups.arm(key)
            async with rt.locks(key):
                body = rt.status.freshest(body)
                if body["metadata"].get("deletionTimestamp") or (body.get("status") or {}).get("phase") != \
                        OPERATION_RUNNING:
                    return
                body = await _evaluate(rt, body)
                if (body.get("status") or {}).get("phase") != OPERATION_RUNNING:
                    return
            await rt.wakeups.wait(key, POLL_S)
    except asyncio.CancelledError:
        raise
    except ApiError as exc:
        log.warning("watching operation %s/%s failed (it resumes on the next event): %s", key[1], key[2], exc)
    finally:
        rt.wakeups.disarm(key)
        if _watchers.get(key) is asyncio.current_task():
            _watchers.pop(key, None)


async def _evaluate(rt: Runtime, body: Json) -> Json:
    """One look at CNPG: Succeeded with the evidence, Failed on timeout, or a fresher Running message."""
    namespace = body["metadata"]["namespace"]
    spec = PgOperationRequestSpec.model_validate(body["spec"])
    status = body.get("status") or {}
    started: dict[str, str] = dict(status.get("evidence") or {})
    cluster = await rt.api.get(CLUSTERS, namespace, spec.cluster)
    if cluster is None or cluster["metadata"]["uid"] != status.get("clusterUID"):
        return await _finish(rt, body, OPERATION_FAILED, Verdict(
            False, "ClusterDeleted", f"Cluster {spec.cluster} was deleted while the operation ran"))
    pods = await rt.api.list(PODS, namespace, label_selector=_pods_selector(spec.cluster))
    seen = operations.progress(spec.type, status.get("instance"), cluster, pods, started)
    evidence = {**started, **{k: v for k, v in seen.evidence.items() if v}}
    if seen.done:
        return await _finish(rt, body, OPERATION_SUCCEEDED, Verdict(True, "Succeeded", seen.message),
                             evidence=evidence)
    started_at = expiry.parse(str(status.get("startedAt") or expiry.now()))
    if datetime.now(UTC) - started_at > timedelta(seconds=spec.timeout_seconds):
        return await _finish(rt, body, OPERATION_FAILED, Verdict(
            False, "Timeout", f"no effect within {spec.timeout_seconds}s: {seen.message}"), evidence=evidence)
    return await rt.status.write(OPERATION_REQUESTS, body, verdict_status(
        body, Verdict(False, "Running", seen.message), keep_generation=True, phase=OPERATION_RUNNING,
        evidence=evidence))


async def finalize(rt: Runtime, body: Json, views: CnpgViews) -> None:
    """Nothing to undo (an operation CNPG has started is not rolled back); stop watching, free the Cluster."""
    key = intent_key(body)
    expiry.cancel(key)
    task = _watchers.pop(key, None)
    if task is not None:
        task.cancel()
    if _claims.get(_cluster_key(body)) == body["metadata"]["uid"]:
        _claims.pop(_cluster_key(body), None)
    _written.pop(body["metadata"]["uid"], None)
    await finish_deletion(rt, OPERATION_REQUESTS, body)
