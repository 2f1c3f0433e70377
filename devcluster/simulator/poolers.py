"""Pooler: the part of CNPG's pooler controller the simulation plays (internal/controller/pooler_*.go,
pkg/specs/pgbouncer/).

A Deployment and a ClusterIP Service, both named like the Pooler and owned by it, with CNPG's labels
(`cnpg.io/poolerName`, `cnpg.io/cluster`, `cnpg.io/podRole: pooler`); the Service listens on 5432 (port
name `pgbouncer`) and selects `cnpg.io/poolerName`. No PgBouncer runs: the Deployment's status is set
as if its Pods were ready (no deployment controller runs in the sandbox). The Pooler's status is CNPG's:
`instances` (the Deployment's replicas), `phase` active | paused (`pgbouncer.paused`) | inactive when the
Cluster is missing (`Cluster "<name>" not found`, retried with backoff).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import partial
from typing import Any, ClassVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster.simulator.common import CLUSTER_LABEL, POD_ROLE_LABEL, POSTGRES_PORT, Json, owner_reference
from devcluster.simulator.context import OwnKindHandler

log = logging.getLogger("cnpg-simulator")
POOLER_NAME_LABEL = "cnpg.io/poolerName"  # pkg/utils/labels_annotations.go PgbouncerNameLabel
POD_ROLE_POOLER = "pooler"
PGBOUNCER_PORT_NAME = "pgbouncer"  # pkg/management/pgbouncer/config/config.go (PgBouncerPort = 5432)


def pooler_labels(pooler: Mapping[str, Any]) -> dict[str, str]:
    cluster = str(((pooler.get("spec") or {}).get("cluster") or {}).get("name") or "")
    return {CLUSTER_LABEL: cluster, POOLER_NAME_LABEL: pooler["metadata"]["name"], POD_ROLE_LABEL: POD_ROLE_POOLER,
            "app.kubernetes.io/name": "postgresql", "app.kubernetes.io/instance": cluster,
            "app.kubernetes.io/component": "pooler", "app.kubernetes.io/managed-by": "cloudnative-pg"}


def desired_replicas(pooler: Mapping[str, Any]) -> int:
    instances = (pooler.get("spec") or {}).get("instances")
    return 1 if instances is None else int(instances)


def deployment_body(pooler: Mapping[str, Any]) -> Json:
    meta = pooler["metadata"]
    selector = {POOLER_NAME_LABEL: meta["name"]}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": pooler_labels(pooler),
                     "ownerReferences": [owner_reference(pooler)]},
        "spec": {"replicas": desired_replicas(pooler), "selector": {"matchLabels": selector},
                 "template": {"metadata": {"labels": {**pooler_labels(pooler), **selector}},
                              "spec": {"containers": [{"name": "pgbouncer",
                                                       "image": "cnpg-simulator.invalid/pgbouncer:simulated",
                                                       "ports": [{"name": PGBOUNCER_PORT_NAME,
                                                                  "containerPort": POSTGRES_PORT}]}]}}},
    }


def service_body(pooler: Mapping[str, Any]) -> Json:
    meta = pooler["metadata"]
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": pooler_labels(pooler),
                     "ownerReferences": [owner_reference(pooler)]},
        "spec": {"type": "ClusterIP", "selector": {POOLER_NAME_LABEL: meta["name"]},
                 "ports": [{"name": PGBOUNCER_PORT_NAME, "port": POSTGRES_PORT, "targetPort": PGBOUNCER_PORT_NAME,
                            "protocol": "TCP"}]},
    }


def pooler_status(pooler: Mapping[str, Any], replicas: int | None, cluster_exists: bool) -> Json:
    """The status keys CNPG's pooler controller owns."""
    spec = pooler.get("spec") or {}
    cluster = str((spec.get("cluster") or {}).get("name") or "")
    status: Json = {"instances": replicas}
    if not cluster_exists:
        status.update(phase="inactive", phaseReason=f'Cluster "{cluster}" not found')
    elif (spec.get("pgbouncer") or {}).get("paused"):
        status.update(phase="paused", phaseReason="pgbouncer is paused")
    else:
        status.update(phase="active", phaseReason=None)
    return status


class PoolerHandler(OwnKindHandler):
    kind: ClassVar[str] = "pooler"
    plural: ClassVar[str] = "poolers"

    def reconcile(self, namespace: str, name: str) -> bool:
        ctx = self._ctx
        pooler = ctx.kube.get(self.plural, namespace, name)
        if pooler is None or pooler["metadata"].get("deletionTimestamp"):
            return True  # the Deployment and Service go by garbage collection
        cluster_name = str(((pooler.get("spec") or {}).get("cluster") or {}).get("name") or "")
        if ctx.kube.get("clusters", namespace, cluster_name) is None:
            ctx.kube.patch_status(self.plural, pooler, pooler_status(pooler, None, cluster_exists=False))
            return False  # CNPG waits for the Cluster too
        core, apps = ctx.kube.core(), client.AppsV1Api(ctx.kube.api)
        ctx.kube.create_if_missing(partial(core.create_namespaced_service, namespace, service_body(pooler)),
                                   f"Service {namespace}/{name}")
        replicas = desired_replicas(pooler)
        try:
            deployment = apps.read_namespaced_deployment(name, namespace)
            if deployment.spec.replicas != replicas:
                apps.patch_namespaced_deployment(name, namespace, {"spec": {"replicas": replicas}})
        except ApiException as exc:
            if exc.status != 404:
                raise
            ctx.kube.create_if_missing(partial(apps.create_namespaced_deployment, namespace, deployment_body(pooler)),
                                       f"Deployment {namespace}/{name}")
        # The deployment controller's and kubelet's part: every replica up and ready.
        current = apps.read_namespaced_deployment(name, namespace)
        apps.patch_namespaced_deployment_status(name, namespace, {"status": {
            "observedGeneration": current.metadata.generation, "replicas": replicas, "readyReplicas": replicas,
            "availableReplicas": replicas, "updatedReplicas": replicas}})
        ctx.kube.patch_status(self.plural, pooler, pooler_status(pooler, replicas, cluster_exists=True))
        return True
