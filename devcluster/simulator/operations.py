"""Day-2 operations as CNPG's cluster controller plays them (called from clusters.py on every Cluster
reconcile; the triggers are the ones `kubectl cnpg` writes):

- switchover: status.targetPrimary ≠ currentPrimary → clusters.cluster_status moves currentPrimary and
  ensure_instance_pods moves the role labels, so the -rw/-ro Services (selecting cnpg.io/instanceRole)
  follow the new primary;
- in-place primary restart: phase "Primary instance is being restarted in-place" → back to healthy;
- kubectl.kubernetes.io/restartedAt: a rolling restart, one instance at a time, replicas first; each
  recreated Pod carries the value (CNPG copies it onto the Pods); the primary restarts in place (its Pod
  gets the value, CNPG's default primaryUpdateMethod restart);
- cnpg.io/reloadedAt: the real PostgreSQL re-reads its configuration (pg_reload_conf);
- cnpg.io/hibernation: on → every instance Pod is deleted and the condition cnpg.io/hibernation goes
  DeletingPods/WaitingPodsDeletion → Hibernated (True); off → the condition is removed, Pods come back;
- cnpg.io/fencedInstances: PostgreSQL "stops" on the fenced instances: their Pods stay Running but
  not ready (what CNPG's readiness probe reports), and they leave status.instancesStatus.healthy;
- alpha.cnpg.io/unrecoverable on a Pod: that instance is deleted and created again (CNPG also drops
  its PVCs and gives the new instance the next serial; the simulator has no PVCs and keeps the name);
  never the current or target primary.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubernetes.client.exceptions import ApiException

from devcluster.simulator.common import (
    CLUSTER_LABEL,
    FENCE_ALL,
    FENCED_INSTANCES_ANNOTATION,
    HIBERNATED_REASON,
    HIBERNATION_ANNOTATION,
    HIBERNATION_CONDITION,
    RELOADED_AT_ANNOTATION,
    RESTARTED_AT_ANNOTATION,
    UNRECOVERABLE_ANNOTATION,
    Json,
    now_rfc3339,
    upsert_condition,
)
from devcluster.simulator.kube import to_dict

if TYPE_CHECKING:
    from devcluster.simulator.context import Context

log = logging.getLogger("cnpg-simulator")
RESTARTED_AT = RESTARTED_AT_ANNOTATION
UNRECOVERABLE = UNRECOVERABLE_ANNOTATION


# ============================================================================== pure


def annotations_of(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def hibernation_requested(cluster: Mapping[str, Any]) -> bool:
    return annotations_of(cluster).get(HIBERNATION_ANNOTATION) == "on"


def is_fenced(cluster: Mapping[str, Any], instance: str) -> bool:
    """CNPG's Cluster.IsInstanceFenced: a malformed annotation fences nothing."""
    try:
        fenced = json.loads(annotations_of(cluster).get(FENCED_INSTANCES_ANNOTATION) or "[]")
    except ValueError:
        return False
    return isinstance(fenced, list) and (FENCE_ALL in fenced or instance in fenced)


def pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def pod_running(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")


def readiness_patch(pod: Mapping[str, Any], ready: bool, now: str) -> Json:
    """The Pod status a kubelet reports when the readiness probe starts failing (fenced) or passes again."""
    value = "True" if ready else "False"
    status = pod.get("status") or {}
    conditions = [dict(c, status=value, lastTransitionTime=now) if c.get("type") in ("Ready", "ContainersReady")
                  else dict(c) for c in status.get("conditions") or []]
    containers = [dict(c, ready=ready) for c in status.get("containerStatuses") or []]
    return {"status": {"conditions": conditions, "containerStatuses": containers}}


def next_restart(pods: Sequence[Mapping[str, Any]], value: str, primary: str) -> tuple[str, bool] | None:
    """(instance, in_place) to restart next for restartedAt=value, or None: done or one still coming back.

    One at a time, replicas first (lowest name first), the primary last and in place."""
    if any(not pod_running(p) or not pod_ready(p) for p in pods):
        return None  # a restart is in flight (or an instance is down): wait, as CNPG's rolling update does
    stale = sorted(str(p["metadata"]["name"]) for p in pods if annotations_of(p).get(RESTARTED_AT) != value)
    replicas = [name for name in stale if name != primary]
    if replicas:
        return replicas[0], False
    return (primary, True) if primary in stale else None


def hibernation_status(conditions: Sequence[Mapping[str, Any]], pods: Sequence[Mapping[str, Any]], *,
                       generation: int, now: str) -> list[Json]:
    """CNPG's cnpg.io/hibernation condition while hibernation is on (pkg/reconciler/hibernation/status.go)."""
    if not pods:
        status, reason, message = "True", HIBERNATED_REASON, "Cluster has been hibernated"
    elif deleting := [p for p in pods if p["metadata"].get("deletionTimestamp")]:
        status, reason = "False", "WaitingPodsDeletion"
        message = f"Waiting for {deleting[0]['metadata']['name']} to be deleted"
    else:
        status, reason, message = "False", "DeletingPods", "Hibernation is in progress"
    return upsert_condition(conditions, type_=HIBERNATION_CONDITION, status=status, reason=reason,
                            message=message, generation=generation, now=now)


def adjust_status(cluster: Mapping[str, Any], status: Json, pods: Sequence[Mapping[str, Any]]) -> Json:
    """The Cluster status once the operations are applied: readiness counted from the Pods (a fenced or
    restarting instance is not ready), the hibernation condition."""
    generation = int(cluster["metadata"].get("generation", 1))
    now = now_rfc3339()
    conditions = list(status.get("conditions") or [])
    if hibernation_requested(cluster):
        status["conditions"] = hibernation_status(conditions, pods, generation=generation, now=now)
        status["readyInstances"] = 0
        status["instancesStatus"] = None
        return status
    status["conditions"] = [c for c in conditions if c.get("type") != HIBERNATION_CONDITION]
    healthy = (status.get("instancesStatus") or {}).get("healthy")
    if healthy:
        # Only what an operation did makes an instance unready here: a fenced instance (Running, not ready)
        # or one being deleted (restart, rebuild). A Pod still starting counts as before.
        down = {str(p["metadata"]["name"]) for p in pods
                if p["metadata"].get("deletionTimestamp") or (pod_running(p) and not pod_ready(p))}
        ready = [name for name in healthy if name not in down]
        status["readyInstances"] = len(ready)
        status["instancesStatus"] = {"healthy": ready} if ready else None
    return status


# ============================================================================= acting


@dataclass
class Outcome:
    pods: list[Json] = field(default_factory=list)
    busy: bool = False  # something is still in flight: reconcile again when a Pod changes


def apply(ctx: Context, cluster: Json, primary: str) -> Outcome:
    """Plays the operations the Cluster (and its Pods) ask for; returns the Pods as they are now."""
    namespace, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
    core = ctx.kube.core()
    pods = [to_dict(ctx.kube.api, p) for p in core.list_namespaced_pod(
        namespace, label_selector=f"{CLUSTER_LABEL}={name}").items]
    outcome = Outcome(pods=pods)
    if hibernation_requested(cluster):
        return outcome  # ensure_instance_pods was asked for no Pod at all
    status = cluster.get("status") or {}
    _reload(ctx, cluster)
    _fence(ctx, cluster, pods)
    protected = {status.get("currentPrimary"), status.get("targetPrimary")}
    for pod in pods:
        pod_name = pod["metadata"]["name"]
        if annotations_of(pod).get(UNRECOVERABLE) == "true" and not pod["metadata"].get("deletionTimestamp"):
            if pod_name in protected:
                log.info("refusing to delete protected instance %s/%s even if unrecoverable", namespace, pod_name)
                continue
            log.info("deleting unrecoverable instance %s/%s (Pod; a new one replaces it)", namespace, pod_name)
            _delete_pod(ctx, namespace, pod_name)
            outcome.busy = True
    value = annotations_of(cluster).get(RESTARTED_AT)
    if value and not outcome.busy:
        step = next_restart(pods, value, primary)
        if step is not None:
            instance, in_place = step
            outcome.busy = True
            if in_place:
                log.info("restarting primary %s/%s in place (restartedAt %s)", namespace, instance, value)
                core.patch_namespaced_pod(instance, namespace, {"metadata": {"annotations": {RESTARTED_AT: value}}},
                                          _content_type="application/merge-patch+json")
                ctx.logs.started(namespace, instance, name, primary=True)
            else:
                log.info("restarting replica %s/%s (restartedAt %s)", namespace, instance, value)
                _delete_pod(ctx, namespace, instance)
        elif any(annotations_of(p).get(RESTARTED_AT) != value for p in pods):
            outcome.busy = True
    return outcome


def _delete_pod(ctx: Context, namespace: str, name: str) -> None:
    try:
        ctx.kube.core().delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    except ApiException as exc:
        if exc.status != 404:
            raise


_reloaded: dict[tuple[str, str], str] = {}


def _reload(ctx: Context, cluster: Json) -> None:
    """A new cnpg.io/reloadedAt: the real PostgreSQL re-reads postgresql.conf."""
    key = (cluster["metadata"]["namespace"], cluster["metadata"]["name"])
    value = annotations_of(cluster).get(RELOADED_AT_ANNOTATION)
    if value and _reloaded.get(key) != value:
        ctx.pg.query_one("SELECT pg_reload_conf()", [])
        _reloaded[key] = value
        log.info("Cluster %s/%s: configuration reloaded (reloadedAt %s)", *key, value)


def _fence(ctx: Context, cluster: Json, pods: list[Json]) -> None:
    """Fenced instances stop PostgreSQL: their Pods report not ready; unfenced ones ready again."""
    core = ctx.kube.core()
    now = now_rfc3339()
    for pod in pods:
        if not pod_running(pod):
            continue
        want_ready = not is_fenced(cluster, pod["metadata"]["name"])
        if pod_ready(pod) != want_ready:
            patch = readiness_patch(pod, want_ready, now)
            core.patch_namespaced_pod_status(pod["metadata"]["name"], pod["metadata"]["namespace"], patch,
                                             _content_type="application/merge-patch+json")
            pod["status"].update(patch["status"])
            log.info("instance %s/%s %s", pod["metadata"]["namespace"], pod["metadata"]["name"],
                     "ready again (unfenced)" if want_ready else "fenced: PostgreSQL stopped, Pod not ready")
