"""Instance Pods: CNPG's part (create `<cluster>-N` with CNPG's labels, scale, relabel on switchover)
and the kubelet's part (report them Running, finish their deletion) on the simulator's Node.

No container runs: a Pod is an API object whose status the simulator sets, and whose log is served
by the simulator's kubelet endpoint (kubelet.py) from logs.py. The one real PostgreSQL server plays
every instance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster.simulator.common import (
    CLUSTER_LABEL,
    INSTANCE_NAME_LABEL,
    INSTANCE_ROLE_LABEL,
    LEGACY_ROLE_LABEL,
    POD_ROLE_INSTANCE,
    POD_ROLE_LABEL,
    POSTGRES_PORT,
    RESTARTED_AT_ANNOTATION,
    ROLE_PRIMARY,
    ROLE_REPLICA,
    UNRECOVERABLE_ANNOTATION,
    Json,
    api_error_text,
    now_rfc3339,
    owner_reference,
)
from devcluster.simulator.context import WatchSpec
from devcluster.simulator.kube import to_dict

if TYPE_CHECKING:
    from devcluster.simulator.context import Context

log = logging.getLogger("cnpg-simulator")
CONTAINER = "postgres"  # CNPG's instance container name
SIMULATED_IMAGE = "cnpg-simulator.invalid/postgresql:simulated"  # nothing is pulled or run
SIMULATED_ANNOTATION = "cnpg-mcp.io/simulated-by"
NODE_IP = "127.0.0.1"


# ================================================================================= pure


def instance_labels(cluster_name: str, instance: str, primary: bool) -> dict[str, str]:
    role = ROLE_PRIMARY if primary else ROLE_REPLICA
    return {CLUSTER_LABEL: cluster_name, INSTANCE_NAME_LABEL: instance, POD_ROLE_LABEL: POD_ROLE_INSTANCE,
            INSTANCE_ROLE_LABEL: role, LEGACY_ROLE_LABEL: role}


def instance_pod_body(cluster: Mapping[str, Any], instance: str, primary: bool, node_name: str) -> Json:
    """The instance Pod as CNPG names and labels it, bound to the simulator's Node."""
    name, namespace = cluster["metadata"]["name"], cluster["metadata"]["namespace"]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": instance, "namespace": namespace,
            "labels": instance_labels(name, instance, primary),
            "annotations": {SIMULATED_ANNOTATION: "cnpg-simulator", **_restarted_at(cluster)},
            "ownerReferences": [owner_reference(cluster)],
        },
        "spec": {
            "nodeName": node_name,
            "hostname": instance,
            "containers": [{
                "name": CONTAINER,
                "image": (cluster.get("spec") or {}).get("imageName") or SIMULATED_IMAGE,
                "ports": [{"name": "postgresql", "containerPort": POSTGRES_PORT, "protocol": "TCP"}],
            }],
        },
    }


def _restarted_at(cluster: Mapping[str, Any]) -> dict[str, str]:
    """CNPG copies the Cluster's restartedAt onto every instance Pod it creates (a rolling restart's mark)."""
    value = ((cluster.get("metadata") or {}).get("annotations") or {}).get(RESTARTED_AT_ANNOTATION)
    return {RESTARTED_AT_ANNOTATION: value} if value else {}


def running_pod_status(pod: Mapping[str, Any], now: str) -> Json:
    """What a kubelet reports once the container started and its readiness probe passed."""
    container = ((pod.get("spec") or {}).get("containers") or [{}])[0]
    uid = (pod.get("metadata") or {}).get("uid", "")
    conditions = [{"type": kind, "status": "True", "lastTransitionTime": now}
                  for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                               "PodScheduled")]
    return {
        "phase": "Running", "hostIP": NODE_IP, "hostIPs": [{"ip": NODE_IP}], "podIP": NODE_IP,
        "podIPs": [{"ip": NODE_IP}], "startTime": now, "qosClass": "BestEffort", "conditions": conditions,
        "containerStatuses": [{
            "name": container.get("name", CONTAINER), "image": container.get("image", SIMULATED_IMAGE),
            "imageID": "", "containerID": f"simulated://{uid}", "ready": True, "started": True,
            "restartCount": 0, "state": {"running": {"startedAt": now}},
        }],
    }


def is_running(pod: Mapping[str, Any]) -> bool:
    return ((pod.get("status") or {}).get("phase")) == "Running"


# ============================================================================ CNPG's part


def ensure_instance_pods(ctx: Context, cluster: Json, wanted: Sequence[str], primary: str) -> str | None:
    """Creates the missing instance Pods, deletes the extra ones, relabels primary/replica.

    Returns a problem text when the API refused something (reported in the Cluster's status)."""
    namespace, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
    core = ctx.kube.core()
    pods = core.list_namespaced_pod(namespace, label_selector=f"{CLUSTER_LABEL}={name}").items
    existing = {pod.metadata.name: pod for pod in pods}
    problems: list[str] = []

    def attempt(action: Callable[[], Any], what: str) -> None:
        try:
            action()
        except ApiException as exc:
            if exc.status != 404:
                problems.append(f"{what}: {api_error_text(exc)}")

    for instance in wanted:
        pod = existing.get(instance)
        labels = instance_labels(name, instance, instance == primary)
        if pod is None:
            body = instance_pod_body(cluster, instance, instance == primary, ctx.node_name)
            attempt(partial(ctx.kube.create_if_missing, partial(core.create_namespaced_pod, namespace, body),
                            f"Pod {namespace}/{instance}"), f"Pod {instance}")
        elif pod.metadata.deletion_timestamp is None and any(
                (pod.metadata.labels or {}).get(k) != v for k, v in labels.items()):
            attempt(partial(core.patch_namespaced_pod, instance, namespace, {"metadata": {"labels": labels}},
                            _content_type="application/merge-patch+json"),
                    f"Pod {instance}")
    for instance, pod in existing.items():
        if instance not in wanted and pod.metadata.deletion_timestamp is None:
            log.info("scaling down: deleting Pod %s/%s", namespace, instance)
            attempt(partial(core.delete_namespaced_pod, instance, namespace, grace_period_seconds=0),
                    f"Pod {instance}")
    return "; ".join(problems) or None


# ========================================================================== kubelet's part


class InstancePodHandler:
    """The kubelet of the simulator's Node: Pods bound to it become Running; deletions complete."""

    kind: ClassVar[str] = "pod"
    worker_group: ClassVar[str] = "kubelet"  # a kubelet works beside the operator, not in its queue

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx

    def watches(self) -> Sequence[WatchSpec]:
        def factory(api: Any) -> tuple[Callable[..., Any], Json]:
            return (client.CoreV1Api(api).list_pod_for_all_namespaces,
                    {"field_selector": f"spec.nodeName={self._ctx.node_name}"})
        return [WatchSpec("pods", factory, self._event)]

    def _event(self, event_type: str, pod: Json) -> None:
        meta = pod["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        labels = meta.get("labels") or {}
        if event_type == "DELETED":
            self._ctx.logs.forget(namespace, name)
            if labels.get(CLUSTER_LABEL):  # CNPG recreates a deleted instance Pod
                self._ctx.enqueue(("cluster", namespace, labels[CLUSTER_LABEL]))
            return
        primary = labels.get(INSTANCE_ROLE_LABEL) == ROLE_PRIMARY
        if is_running(pod) and not self._ctx.logs.knows(namespace, name):  # running before a restart
            self._ctx.logs.started(namespace, name, labels.get(CLUSTER_LABEL, ""), primary=primary)
        self._ctx.logs.set_primary(namespace, name, primary)
        annotations = meta.get("annotations") or {}
        if labels.get(CLUSTER_LABEL) and annotations.get(UNRECOVERABLE_ANNOTATION) == "true":
            self._ctx.enqueue(("cluster", namespace, labels[CLUSTER_LABEL]))  # CNPG's part: rebuild it
        if meta.get("deletionTimestamp") or not is_running(pod):
            self._ctx.enqueue((self.kind, namespace, name))

    def reconcile(self, namespace: str, name: str) -> bool:
        core = self._ctx.kube.core()
        try:
            pod = to_dict(self._ctx.kube.api, core.read_namespaced_pod(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            # The container "stopped": confirm the deletion, as a kubelet does after the grace period.
            try:
                # Options in the body (the API server reads them from there when a body is sent).
                core.delete_namespaced_pod(name, namespace, body={
                    "gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}})
                log.info("Pod %s/%s stopped and deleted", namespace, name)
            except ApiException as exc:
                if exc.status not in (404, 409):
                    raise
            return True
        if not is_running(pod):
            core.patch_namespaced_pod_status(name, namespace, {"status": running_pod_status(pod, now_rfc3339())},
                                             _content_type="application/merge-patch+json")
            labels = meta.get("labels") or {}
            self._ctx.logs.started(namespace, name, labels.get(CLUSTER_LABEL, ""),
                                   primary=labels.get(INSTANCE_ROLE_LABEL) == ROLE_PRIMARY)
            log.info("Pod %s/%s running", namespace, name)
            if labels.get(CLUSTER_LABEL):  # CNPG's rolling restart goes on once this instance is back
                self._ctx.enqueue(("cluster", namespace, labels[CLUSTER_LABEL]))
        return True
