"""PgClusterRequest → a CNPG Cluster of the same name, owned fields kept in line.

The Cluster gets no ownerReference (garbage collection must never delete data); our label
`cnpg-mcp.io/request` marks it as managed. Only the fields we own are ever patched (instances,
the parameters we set, resources), with a merge patch that leaves every other field alone.
Deletion follows spec.deletionPolicy: Retain (default) lets go of the Cluster, Delete deletes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import PgClusterRequestSpec
from cnpg_mcp_operator.builders.cluster import build_cluster, build_cluster_patch
from cnpg_mcp_operator.handlers.common import (
    CLUSTER_REQUESTS,
    plain,
    ready_reason,
    spec_problem,
    verdict_status,
)
from cnpg_mcp_operator.k8s import CLUSTERS
from cnpg_mcp_operator.readiness import Verdict, cluster_verdict
from cnpg_mcp_operator.registry import REGISTRY
from cnpg_mcp_operator.runtime import Runtime, runtime_of
from cnpg_mcp_operator.status_writer import intent_key
from cnpg_mcp_operator.views import CnpgViews, IndexEntry

log = logging.getLogger(__name__)

Json = dict[str, Any]
GROUP, VERSION, PLURAL = CLUSTER_REQUESTS.group, CLUSTER_REQUESTS.version, CLUSTER_REQUESTS.plural
REQUEST_LABEL = constants.REQUEST_LABEL


@kopf.index(GROUP, VERSION, PLURAL, registry=REGISTRY)
def cluster_requests(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> IndexEntry:
    """(namespace, cluster name) → the PgClusterRequest (for the Cluster observer)."""
    return {(namespace or "", name): plain(body)}


@kopf.on.resume(GROUP, VERSION, PLURAL, registry=REGISTRY)
@kopf.on.create(GROUP, VERSION, PLURAL, registry=REGISTRY)
@kopf.on.update(GROUP, VERSION, PLURAL, registry=REGISTRY)
async def reconcile_cluster_request(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    await reconcile(runtime_of(memo), plain(body), CnpgViews.from_kwargs(kwargs))


@kopf.on.delete(GROUP, VERSION, PLURAL, registry=REGISTRY)
async def delete_cluster_request(body: kopf.Body, memo: Any, **kwargs: Any) -> None:
    await finalize(runtime_of(memo), plain(body), CnpgViews.from_kwargs(kwargs))


def _is_ours(cluster: Mapping[str, Any], name: str) -> bool:
    return bool(((cluster.get("metadata") or {}).get("labels") or {}).get(REQUEST_LABEL) == name)


def _desired_instances(body: Mapping[str, Any]) -> int:
    return int((body.get("spec") or {}).get("instances") or 3)


def _extra(name: str, cluster: Mapping[str, Any] | None) -> Json:
    status = (cluster or {}).get("status") or {}
    return {"cluster": name, "phase": status.get("phase"), "readyInstances": status.get("readyInstances"),
            "instances": status.get("instances"), "currentPrimary": status.get("currentPrimary")}


async def reconcile(rt: Runtime, body: Json, views: CnpgViews) -> None:
    async with rt.locks(intent_key(body)):
        body = rt.status.freshest(body)
        if body["metadata"].get("deletionTimestamp"):
            return
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        invalid = spec_problem(PgClusterRequestSpec, body)
        if invalid is not None:
            await rt.status.write(CLUSTER_REQUESTS, body, verdict_status(body, invalid))
            return
        cluster = views.cluster(namespace, name)
        if cluster is None:
            cluster = await rt.api.create(CLUSTERS, namespace, build_cluster(body))
            if cluster is not None:
                log.info("PgClusterRequest %s/%s: Cluster created", namespace, name)
            else:  # created meanwhile (or our cache lags): look at the real one
                cluster = await rt.api.get(CLUSTERS, namespace, name)
        conflict = None
        if cluster is not None and not _is_ours(cluster, name):
            adoptable = (body.get("spec") or {}).get("adoptExisting") and REQUEST_LABEL not in (
                cluster["metadata"].get("labels") or {})
            if adoptable:
                cluster = await rt.api.patch(CLUSTERS, namespace, name,
                                             {"metadata": {"labels": {REQUEST_LABEL: name}}})
                log.info("PgClusterRequest %s/%s: existing Cluster adopted", namespace, name)
            else:
                conflict = (f"Cluster {name} already exists and is not managed by this request "
                            "(set spec.adoptExisting to take it over)")
        if cluster is not None and conflict is None:
            patch = build_cluster_patch(body, cluster)
            if patch:
                cluster = await rt.api.patch(CLUSTERS, namespace, name, patch)
                log.info("PgClusterRequest %s/%s: owned Cluster fields updated", namespace, name)
        verdict = Verdict(False, "Conflict", conflict) if conflict else cluster_verdict(
            _desired_instances(body), cluster)
        await rt.status.write(CLUSTER_REQUESTS, body, verdict_status(body, verdict, **_extra(name, cluster)))


async def refresh_status(rt: Runtime, body: Json, views: CnpgViews) -> None:
    """Mirror CNPG's view of the Cluster (called by the Cluster observer)."""
    async with rt.locks(intent_key(body)):
        body = rt.status.freshest(body)
        if body["metadata"].get("deletionTimestamp") or ready_reason(body) in (None, "Conflict", "Invalid"):
            return
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        cluster = views.cluster(namespace, name)
        if cluster is not None and not _is_ours(cluster, name):
            return
        verdict = cluster_verdict(_desired_instances(body), cluster)
        await rt.status.write(CLUSTER_REQUESTS, body,
                              verdict_status(body, verdict, keep_generation=True, **_extra(name, cluster)))


def needs_reconcile(body: Mapping[str, Any], cluster: Mapping[str, Any] | None) -> bool:
    """After a Cluster event: was our Cluster deleted or changed under us (then produce again)?"""
    if body["metadata"].get("deletionTimestamp") or ready_reason(body) in (None, "Conflict"):
        return False
    if cluster is None:
        return True
    return _is_ours(cluster, body["metadata"]["name"]) and bool(build_cluster_patch(body, cluster))


async def finalize(rt: Runtime, body: Json, views: CnpgViews) -> None:
    async with rt.locks(intent_key(body)):
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        cluster = views.cluster(namespace, name) or await rt.api.get(CLUSTERS, namespace, name)
        if cluster is not None and _is_ours(cluster, name):
            if (body.get("spec") or {}).get("deletionPolicy") == "Delete":
                await rt.api.delete(CLUSTERS, namespace, name)
                log.info("PgClusterRequest %s/%s: Cluster deleted (deletionPolicy Delete)", namespace, name)
            else:
                await rt.api.patch(CLUSTERS, namespace, name, {"metadata": {"labels": {REQUEST_LABEL: None}}})
                log.info("PgClusterRequest %s/%s: Cluster retained and released", namespace, name)
        rt.status.forget(body)
