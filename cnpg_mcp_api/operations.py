"""Day-2 operations the CloudNativePG 1.30 way, as pure functions over a Cluster and its Pods.

Shared by the operator (which writes the trigger and watches for the effect) and the gateway (which
refuses early and names the switchover target). Each mechanism is the one CNPG's own code uses:

- switchover: the Cluster *status* gets targetPrimary, targetPrimaryTimestamp and phase
  "Switchover in progress", written with optimistic locking (internal/cmd/plugin/promote);
- restart: annotation kubectl.kubernetes.io/restartedAt on the Cluster (all instances); one replica:
  its Pod is deleted; the primary alone: status phase "Primary instance is being restarted in-place"
  (internal/cmd/plugin/restart);
- reload: annotation cnpg.io/reloadedAt (internal/cmd/plugin/reload);
- hibernate / resume: annotation cnpg.io/hibernation on|off; CNPG reports progress in the condition
  cnpg.io/hibernation (Hibernated when every Pod is gone) and removes it when off;
- fence / unfence: annotation cnpg.io/fencedInstances, a JSON list ("*" = all);
- rebuildReplica: Pod annotation alpha.cnpg.io/unrecoverable: "true" (CNPG deletes that instance's Pod
  and PVCs and creates a new one; it never does so for the current or target primary).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from cnpg_mcp_api import constants

Json = dict[str, Any]
PHASE_HEALTHY = constants.CNPG_HEALTHY_PHASE


# ------------------------------------------------------------------------------ reading a Cluster


def _status(cluster: Mapping[str, Any]) -> Mapping[str, Any]:
    return cluster.get("status") or {}


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}


def fenced_instances(cluster: Mapping[str, Any]) -> list[str]:
    """The cnpg.io/fencedInstances list (sorted); ValueError when it is not a JSON list of names."""
    raw = _annotations(cluster).get(constants.CNPG_FENCED_INSTANCES_ANNOTATION)
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"annotation {constants.CNPG_FENCED_INSTANCES_ANNOTATION} is not JSON: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"annotation {constants.CNPG_FENCED_INSTANCES_ANNOTATION} is not a JSON list of names")
    return sorted(set(value))


def is_fenced(cluster: Mapping[str, Any], instance: str) -> bool:
    try:
        fenced = fenced_instances(cluster)
    except ValueError:
        return False
    return constants.CNPG_FENCE_ALL in fenced or instance in fenced


def hibernation_requested(cluster: Mapping[str, Any]) -> bool:
    return _annotations(cluster).get(constants.CNPG_HIBERNATION_ANNOTATION) == "on"


def hibernation_condition(cluster: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in _status(cluster).get("conditions") or []:
        if condition.get("type") == constants.CNPG_HIBERNATION_CONDITION:
            return condition  # type: ignore[no-any-return]
    return None


def instance_names(cluster: Mapping[str, Any]) -> list[str]:
    return [str(n) for n in _status(cluster).get("instanceNames") or []]


def current_primary(cluster: Mapping[str, Any]) -> str | None:
    value = _status(cluster).get("currentPrimary")
    return str(value) if value else None


def target_primary(cluster: Mapping[str, Any]) -> str | None:
    value = _status(cluster).get("targetPrimary")
    return str(value) if value else None


def healthy_instances(cluster: Mapping[str, Any]) -> list[str]:
    return [str(n) for n in (_status(cluster).get("instancesStatus") or {}).get("healthy") or []]


def best_replica(cluster: Mapping[str, Any]) -> str | None:
    """The switchover target when none is named: a healthy, unfenced replica, lowest serial first.

    CNPG's status carries no replication lag; among healthy replicas the oldest (lowest serial) one
    has been streaming longest."""
    primaries = {current_primary(cluster), target_primary(cluster)}
    healthy = set(healthy_instances(cluster))
    candidates = [n for n in instance_names(cluster)
                  if n not in primaries and n in healthy and not is_fenced(cluster, n)]
    return min(candidates, key=_serial) if candidates else None


def _serial(instance: str) -> tuple[int, str]:
    tail = instance.rsplit("-", 1)[-1]
    return (int(tail), instance) if tail.isdigit() else (1 << 30, instance)


def is_healthy(cluster: Mapping[str, Any]) -> bool:
    status = _status(cluster)
    return status.get("phase") == PHASE_HEALTHY and status.get("readyInstances") == status.get("instances")


# ----------------------------------------------------------------------------------- refusals


def resolve_instance(op_type: str, instance: str | None, cluster: Mapping[str, Any]) -> str | None:
    """The instance the operation acts on: the one named, or for a switchover the best replica."""
    if op_type == "switchover" and not instance:
        return best_replica(cluster)
    return instance or None


def refusal(op_type: str, instance: str | None, cluster: Mapping[str, Any]) -> str | None:
    """Why CNPG would not (or must not) do this operation now; None when it may proceed.

    `instance` is the resolved one (resolve_instance)."""
    name = (cluster.get("metadata") or {}).get("name", "")
    names = instance_names(cluster)
    primary = current_primary(cluster)
    hibernated = hibernation_requested(cluster)
    if op_type == "resume":
        return None if hibernated else f"cluster {name} is not hibernated: nothing to resume"
    if hibernated and op_type != "hibernate":
        return f"cluster {name} is hibernated (no instance runs): resume it first"
    try:
        fenced = fenced_instances(cluster)
    except ValueError as exc:
        if op_type in ("fence", "unfence", "switchover"):
            return f"{exc}; fix or remove it first"
        fenced = []
    if instance and op_type != "unfence" and names and instance not in names:
        return (f"instance {instance} does not exist in cluster {name} (instances: {', '.join(names)})")
    if op_type == "switchover":
        if not instance:
            return f"cluster {name} has no healthy, unfenced replica to switch over to"
        if instance in (primary, target_primary(cluster)):
            return f"{instance} is already the primary of cluster {name}"
        if is_fenced(cluster, instance):
            return f"{instance} is fenced and cannot be promoted: unfence it first"
    if op_type == "rebuildReplica" and instance in (primary, target_primary(cluster)):
        return (f"{instance} is the current or target primary of cluster {name}; CNPG never rebuilds it "
                "(switch over first)")
    if op_type == "unfence" and instance and constants.CNPG_FENCE_ALL in fenced:
        return f"every instance of cluster {name} is fenced (\"*\"): unfence all of them (no instance)"
    if op_type == "unfence" and instance and instance not in fenced:
        return f"{instance} is not fenced"
    if op_type == "unfence" and not instance and not fenced:
        return f"no instance of cluster {name} is fenced"
    return None


# ------------------------------------------------------------------------------------ triggers


@dataclass(frozen=True)
class Trigger:
    """The one write that asks CNPG for the operation."""

    target: Literal["cluster", "cluster-status", "pod"]
    action: Literal["patch", "delete"]
    name: str  # the Cluster or the Pod
    patch: Json = field(default_factory=dict)
    # The value written (annotation value, target primary...), recorded as evidence of the request.
    written: dict[str, str] = field(default_factory=dict)


def _annotate(cluster_name: str, key: str, value: str, resource_version: str | None = None) -> Trigger:
    metadata: Json = {"annotations": {key: value}}
    if resource_version:
        metadata["resourceVersion"] = resource_version  # optimistic lock (read-modify-write of a list)
    return Trigger("cluster", "patch", cluster_name, {"metadata": metadata}, {key: value})


def _status_phase(cluster: Mapping[str, Any], now: str, phase: str, reason: str, **fields: str) -> Json:
    """A status write as CNPG's PatchWithOptimisticLock + SetClusterReadyCondition do it: the phase,
    the Ready condition following it, under the Cluster's resourceVersion."""
    conditions = [dict(c) for c in _status(cluster).get("conditions") or [] if c.get("type") != "Ready"]
    conditions.append({"type": "Ready", "status": "False", "reason": "ClusterIsNotReady",
                       "message": "Cluster Is Not Ready", "lastTransitionTime": now})
    return {"metadata": {"resourceVersion": (cluster.get("metadata") or {}).get("resourceVersion")},
            "status": {**fields, "phase": phase, "phaseReason": reason, "conditions": conditions}}


def trigger(op_type: str, instance: str | None, cluster: Mapping[str, Any], now: str) -> Trigger:
    """The write for this operation (instance resolved, refusal() already None)."""
    name = str((cluster.get("metadata") or {}).get("name"))
    rv = (cluster.get("metadata") or {}).get("resourceVersion")
    if op_type == "switchover":
        assert instance is not None
        patch = _status_phase(cluster, now, constants.CNPG_PHASE_SWITCHOVER, f"Switching over to {instance}",
                              targetPrimary=instance, targetPrimaryTimestamp=now)
        return Trigger("cluster-status", "patch", name, patch, {"targetPrimary": instance})
    if op_type == "restart" and instance and instance == current_primary(cluster):
        patch = _status_phase(cluster, now, constants.CNPG_PHASE_INPLACE_PRIMARY_RESTART, "Requested by the user")
        return Trigger("cluster-status", "patch", name, patch, {"phase": constants.CNPG_PHASE_INPLACE_PRIMARY_RESTART})
    if op_type in ("restart", "rebuildReplica") and instance:
        if op_type == "restart":
            return Trigger("pod", "delete", instance)
        return Trigger("pod", "patch", instance,
                       {"metadata": {"annotations": {constants.CNPG_UNRECOVERABLE_ANNOTATION: "true"}}},
                       {constants.CNPG_UNRECOVERABLE_ANNOTATION: "true"})
    if op_type == "restart":
        return _annotate(name, constants.CNPG_RESTARTED_AT_ANNOTATION, now)
    if op_type == "reload":
        return _annotate(name, constants.CNPG_RELOADED_AT_ANNOTATION, now)
    if op_type in ("hibernate", "resume"):
        return _annotate(name, constants.CNPG_HIBERNATION_ANNOTATION, "on" if op_type == "hibernate" else "off")
    if op_type in ("fence", "unfence"):
        fenced = set(fenced_instances(cluster))
        chosen = {instance or constants.CNPG_FENCE_ALL}
        if op_type == "fence":
            fenced |= chosen
        else:
            fenced = set() if not instance else fenced - chosen
        return _annotate(name, constants.CNPG_FENCED_INSTANCES_ANNOTATION, json.dumps(sorted(fenced)), rv)
    raise ValueError(f"unknown operation type {op_type!r}")


# ------------------------------------------------------------------------------------ progress


@dataclass(frozen=True)
class Progress:
    done: bool
    message: str
    evidence: dict[str, str] = field(default_factory=dict)


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return ((pod.get("status") or {}).get("phase") == "Running"
            and any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions))


def _live(pods: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    return {str(p["metadata"]["name"]): p for p in pods if not p["metadata"].get("deletionTimestamp")}


def progress(op_type: str, instance: str | None, cluster: Mapping[str, Any], pods: Sequence[Mapping[str, Any]],
             started: Mapping[str, str]) -> Progress:
    """Has CNPG shown the effect? `started`: the evidence recorded when the trigger was written
    (e.g. the restartedAt value, the replaced Pod's uid)."""
    status = _status(cluster)
    phase = str(status.get("phase") or "")
    live = _live(pods)
    if op_type == "switchover":
        primary = current_primary(cluster)
        evidence: dict[str, str] = {"currentPrimary": primary or "",
                                    "previousPrimary": started.get("previousPrimary", "")}
        if primary == instance and phase == PHASE_HEALTHY:
            return Progress(True, f"{instance} is the primary (CNPG status.currentPrimary)", evidence)
        return Progress(False, f"switching over to {instance}: CNPG reports {phase or 'no phase'}", evidence)
    if op_type == "hibernate":
        condition = hibernation_condition(cluster) or {}
        evidence = {"hibernation": f"{condition.get('status', '')}/{condition.get('reason', '')}".strip("/"),
                    "pods": str(len(live))}
        if condition.get("status") == "True" and condition.get("reason") == constants.CNPG_HIBERNATED_REASON:
            return Progress(True, f"hibernated: {condition.get('message') or 'every Pod is gone'}", evidence)
        return Progress(False, f"hibernating: {condition.get('message') or 'waiting for CNPG'}", evidence)
    if op_type == "resume":
        evidence = {"readyInstances": str(status.get("readyInstances", 0)),
                    "instances": str(status.get("instances", 0))}
        running = [n for n, p in live.items() if _pod_ready(p)]
        evidence["readyPods"] = ", ".join(sorted(running))
        if hibernation_condition(cluster) is None and is_healthy(cluster) and len(running) >= int(
                status.get("instances") or 0):
            return Progress(True, "resumed: every instance is ready again", evidence)
        return Progress(False, f"resuming: {evidence['readyInstances']}/{evidence['instances']} ready", evidence)
    if op_type == "restart" and not instance:
        value = started.get(constants.CNPG_RESTARTED_AT_ANNOTATION, "")
        restarted = [n for n, p in live.items()
                     if _annotations(p).get(constants.CNPG_RESTARTED_AT_ANNOTATION) == value and _pod_ready(p)]
        evidence = {"restartedAt": value, "restartedPods": ", ".join(sorted(restarted))}
        wanted = int(status.get("instances") or 0)
        if wanted and len(restarted) >= wanted and is_healthy(cluster):
            return Progress(True, f"all {wanted} instances restarted", evidence)
        return Progress(False, f"restarting: {len(restarted)}/{wanted} instances restarted", evidence)
    if op_type in ("restart", "rebuildReplica") and instance:
        old_uid = started.get("podUID", "")
        pod = live.get(instance)
        if op_type == "restart" and started.get("phase") == constants.CNPG_PHASE_INPLACE_PRIMARY_RESTART:
            # The primary restarts in place (same Pod): done when CNPG left that phase again.
            evidence = {"clusterPhase": phase}
            if phase == PHASE_HEALTHY and started.get("resourceVersion") != (
                    (cluster.get("metadata") or {}).get("resourceVersion")):
                return Progress(True, f"primary {instance} restarted in place", evidence)
            return Progress(False, f"restarting primary {instance} in place: {phase}", evidence)
        replaced = pod is None or str(pod["metadata"].get("uid")) != old_uid
        evidence = {}
        if pod is not None and replaced:
            evidence["newPodUID"] = str(pod["metadata"].get("uid"))
        if op_type == "rebuildReplica":
            new = [n for n in live if n not in started.get("instancesBefore", "").split(",")]
            if new:
                evidence["newInstances"] = ", ".join(sorted(new))
        if replaced and (pod is None or _pod_ready(pod)) and is_healthy(cluster) and (
                pod is not None or op_type == "rebuildReplica"):
            what = "recreated" if op_type == "restart" else "rebuilt"
            return Progress(True, f"instance {instance} {what} and ready", evidence)
        return Progress(False, f"waiting for {instance} to come back", evidence)
    if op_type == "reload":
        value = started.get(constants.CNPG_RELOADED_AT_ANNOTATION, "")
        stored = _annotations(cluster).get(constants.CNPG_RELOADED_AT_ANNOTATION, "")
        evidence = {"reloadedAt": stored}
        if stored == value and is_healthy(cluster):
            return Progress(True, "configuration reload requested; the cluster is healthy", evidence)
        return Progress(False, f"reloading: CNPG reports {phase or 'no phase'}", evidence)
    if op_type in ("fence", "unfence"):
        targets = [instance] if instance else list(live)
        want_ready = op_type == "unfence"
        matching = [n for n in targets if n in live and _pod_ready(live[n]) == want_ready]
        raw = _annotations(cluster).get(constants.CNPG_FENCED_INSTANCES_ANNOTATION, "")
        evidence = {"fencedInstances": raw or "[]",
                    ("readyPods" if want_ready else "stoppedPods"): ", ".join(sorted(matching))}
        if targets and len(matching) == len(targets):
            state = "ready again" if want_ready else "fenced (PostgreSQL stopped, Pod not ready)"
            return Progress(True, f"{', '.join(sorted(targets))}: {state}", evidence)
        return Progress(False, f"{op_type}: {len(matching)}/{len(targets)} instances done", evidence)
    raise ValueError(f"unknown operation type {op_type!r}")
