"""PgClusterRequest → a CNPG Cluster of the same name, owned fields kept in line.

The Cluster gets no ownerReference (garbage collection must never delete data); our label
`cnpg-mcp.io/request` marks it as managed. Only the fields we own are ever patched (instances,
the parameters we set, resources), with a merge patch that leaves every other field alone; an
adopted Cluster only in the fields the request sets explicitly. status.clusterUID records the Cluster
produced or adopted: if it disappears, the request reports ClusterDeleted and creates it again only
when the recreate annotation gets a new value (an empty Cluster must never appear silently).
Deletion follows spec.deletionPolicy: Retain (default) lets go of the Cluster, Delete deletes it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import kopf

from cnpg_mcp_api import constants
from cnpg_mcp_api.conditions import ready_condition, ready_reason
from cnpg_mcp_api.models import RECREATE_ANNOTATION, PgClusterRequestSpec
from cnpg_mcp_operator.backup_readiness import restore_refusal
from cnpg_mcp_operator.builders.cluster import (
    build_cluster,
    build_cluster_patch,
    cluster_changes_for,
    desired_instances,
)
from cnpg_mcp_operator.builders.readonly import owner_uid
from cnpg_mcp_operator.handlers import readonly_queries
from cnpg_mcp_operator.handlers.common import (
    CLUSTER_REQUESTS,
    ROLE_REQUESTS,
    UNPROCESSABLE,
    refusal_verdict,
    spec_problem,
    verdict_status,
)
from cnpg_mcp_operator.k8s import CLUSTERS, ApiError
from cnpg_mcp_operator.readiness import Verdict, cluster_verdict
from cnpg_mcp_operator.registry import REGISTRY
from cnpg_mcp_operator.runtime import Runtime, runtime_of
from cnpg_mcp_operator.status_writer import intent_key
from cnpg_mcp_operator.views import CnpgViews, every, plain

log = logging.getLogger(__name__)

Json = dict[str, Any]
REQUEST_LABEL = constants.REQUEST_LABEL


# Index, reconcile and delete handlers: handlers/intents.py. This one is the kind's own.
@kopf.on.event(CLUSTER_REQUESTS.group, CLUSTER_REQUESTS.version, CLUSTER_REQUESTS.plural, registry=REGISTRY)
async def recreate_annotation_changed(body: kopf.Body, memo: Any, type: str | None, **kwargs: Any) -> None:
    """Kopf leaves annotations under its own prefix (cnpg-mcp.io/) out of its diffs, so a new value of
    the recreate annotation never fires on.update: watch for it here (acknowledged, or acted upon)."""
    if type == "DELETED" or _recreate_asked(body) is None:
        return
    await reconcile(runtime_of(memo), plain(body), CnpgViews.from_kwargs(kwargs))


def _is_ours(cluster: Mapping[str, Any], name: str) -> bool:
    return bool(((cluster.get("metadata") or {}).get("labels") or {}).get(REQUEST_LABEL) == name)


def _extra(name: str, cluster: Mapping[str, Any] | None) -> Json:
    status = (cluster or {}).get("status") or {}
    return {"cluster": name, "phase": status.get("phase"), "readyInstances": status.get("readyInstances"),
            "instances": status.get("instances"), "currentPrimary": status.get("currentPrimary")}


def _recreate_asked(body: Mapping[str, Any]) -> str | None:
    """The recreate annotation's value when it is new (not yet acknowledged in status), else None."""
    value = (((body.get("metadata") or {}).get("annotations") or {}).get(RECREATE_ANNOTATION))
    acknowledged = (body.get("status") or {}).get("recreateAcknowledged")
    return value if value and value != acknowledged else None


async def _report_refusal(rt: Runtime, body: Json, exc: ApiError, cluster: Json | None, extra: Json) -> None:
    """CloudNativePG refused the Cluster built from the spec (422): only a spec change can help, so the
    request says so instead of retrying in silence. Any other error is raised again."""
    verdict = refusal_verdict(exc, "Cluster")
    name = body["metadata"]["name"]
    await rt.status.write(CLUSTER_REQUESTS, body, verdict_status(body, verdict, **_extra(name, cluster), **extra))


def _deleted_verdict(name: str, uid: str) -> Verdict:
    return Verdict(False, "ClusterDeleted",
                   f"Cluster {name} (uid {uid}) was deleted and is NOT recreated automatically; to create it "
                   f"again (empty, no data), set annotation {RECREATE_ANNOTATION} to a new value")


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
        # Every value of the recreate annotation is acknowledged once seen, used or not: only a value
        # set after the Cluster was deleted recreates it (a stale one never does).
        recreate = _recreate_asked(body)
        acknowledged: Json = {"recreateAcknowledged": recreate} if recreate else {}
        produced_uid = (body.get("status") or {}).get("clusterUID")
        cluster = views.cluster(namespace, name)
        if cluster is None and produced_uid:  # the cache may lag: only the API server says "deleted"
            cluster = await rt.api.get(CLUSTERS, namespace, name)
        if cluster is None and produced_uid and not recreate:
            await rt.status.write(CLUSTER_REQUESTS, body, verdict_status(
                body, _deleted_verdict(name, produced_uid), **_extra(name, None)))
            return
        restore = PgClusterRequestSpec.model_validate(body.get("spec") or {}).restore_from
        if cluster is None and restore is not None and not produced_uid:
            store = views.object_store(namespace, restore.store)
            refusal = restore_refusal(restore, store, namespace, datetime.now(UTC))
            if refusal is not None:
                await rt.status.write(CLUSTER_REQUESTS, body, verdict_status(body, refusal))
                return
        if cluster is None:
            try:
                cluster = await rt.api.create(CLUSTERS, namespace, build_cluster(body))
            except ApiError as exc:
                return await _report_refusal(rt, body, exc, None, acknowledged)
            if cluster is not None:
                log.info("PgClusterRequest %s/%s: Cluster %s", namespace, name,
                         "recreated on request" if produced_uid else "created")
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
        refused = None
        applied: Json = {}
        if cluster is not None and conflict is None:
            changes = cluster_changes_for(body, cluster)
            if changes.refusals:
                refused = "; ".join(changes.refusals) + ". Nothing was changed on the Cluster."
            elif changes.patch:
                try:
                    cluster = await rt.api.patch(CLUSTERS, namespace, name, {"spec": changes.patch})
                except ApiError as exc:
                    if exc.status != UNPROCESSABLE:  # 422: CNPG's validating webhook (or the CRD) refused the change
                        raise
                    refused = f"CloudNativePG refused the change: {exc.message}. Nothing was changed on the Cluster."
                else:
                    applied["lastChange"] = changes.summary()
                    log.info("PgClusterRequest %s/%s: owned Cluster fields updated: %s", namespace, name,
                             changes.summary())
        extra = {**_extra(name, cluster), **acknowledged, **applied}
        if cluster is not None and conflict is None:
            extra["clusterUID"] = cluster["metadata"]["uid"]
        readonly = await readonly_queries.sync(rt, body, cluster if conflict is None else None)
        if readonly is not None:
            extra["readOnlyQueries"] = readonly
        verdict = Verdict(False, "Conflict", conflict) if conflict else Verdict(
            False, "Refused", refused) if refused else cluster_verdict(desired_instances(body, cluster), cluster)
        await rt.status.write(CLUSTER_REQUESTS, body, verdict_status(body, verdict, **extra))


async def refresh_status(rt: Runtime, body: Json, views: CnpgViews) -> None:
    """Mirror CNPG's view of the Cluster (called by the Cluster observer)."""
    async with rt.locks(intent_key(body)):
        body = rt.status.freshest(body)
        if body["metadata"].get("deletionTimestamp") or ready_reason(body) in (
                None, "Conflict", "Invalid", "ClusterDeleted", "NotRecoverable", "Refused"):
            return
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        cluster = views.cluster(namespace, name)
        if cluster is not None and not _is_ours(cluster, name):
            return
        verdict = cluster_verdict(desired_instances(body, cluster), cluster)
        await rt.status.write(CLUSTER_REQUESTS, body,
                              verdict_status(body, verdict, keep_generation=True, **_extra(name, cluster)))


def needs_reconcile(_: Runtime, body: Json, views: CnpgViews) -> bool:
    """After a Cluster event: was our Cluster deleted (report it) or changed under us (correct it)?"""
    reason = ready_reason(body)
    if body["metadata"].get("deletionTimestamp") or reason in (None, "Conflict", "NotRecoverable", "Refused"):
        return False
    cluster = views.cluster(body["metadata"]["namespace"], body["metadata"]["name"])
    if cluster is None or reason == "ClusterDeleted":
        return True
    return _is_ours(cluster, body["metadata"]["name"]) and (
        bool(build_cluster_patch(body, cluster)) or readonly_queries.pending(body))


async def finalize(rt: Runtime, body: Json, views: CnpgViews) -> None:
    async with rt.locks(intent_key(body)):
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        await readonly_queries.withdraw(rt, body)
        cluster = views.cluster(namespace, name) or await rt.api.get(CLUSTERS, namespace, name)
        if cluster is not None and _is_ours(cluster, name):
            if (body.get("spec") or {}).get("deletionPolicy") == "Delete":
                await rt.api.delete(CLUSTERS, namespace, name)
                log.info("PgClusterRequest %s/%s: Cluster deleted (deletionPolicy Delete)", namespace, name)
            else:
                await rt.api.patch(CLUSTERS, namespace, name, {"metadata": {"labels": {REQUEST_LABEL: None}}})
                log.info("PgClusterRequest %s/%s: Cluster retained and released", namespace, name)
        rt.status.forget(body)


def _owned_by_a_cluster_request(body: kopf.Body, **_: Any) -> bool:
    return owner_uid(body, CLUSTER_REQUESTS.kind) is not None


@kopf.on.event(ROLE_REQUESTS.group, ROLE_REQUESTS.version, ROLE_REQUESTS.plural, id="readonly_role_changed",
               registry=REGISTRY, when=_owned_by_a_cluster_request)
async def readonly_role_changed(type: str | None, body: kopf.Body, namespace: str | None, memo: Any,
                                **kwargs: Any) -> None:
    """The read-only PgRoleRequest a PgClusterRequest owns became Ready (project the credentials), stopped
    being Ready, or was deleted while still wanted (create it again): reconcile its owner."""
    owner = owner_uid(body, CLUSTER_REQUESTS.kind)
    if owner is None:
        return
    request = plain(body)
    parent = next((p for p in every(kwargs.get("cluster_requests"), (namespace or "", str(
        (request.get("spec") or {}).get("cluster") or ""))) if p["metadata"]["uid"] == owner), None)
    if parent is None or parent["metadata"].get("deletionTimestamp"):
        return
    child_ready = ready_condition(request).get("status") == "True"
    reported = bool(((parent.get("status") or {}).get("readOnlyQueries") or {}).get("ready"))
    if type == "DELETED" or child_ready != reported:
        await reconcile(runtime_of(memo), parent, CnpgViews.from_kwargs(kwargs))
