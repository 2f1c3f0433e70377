"""PgBackupStoreRequest → a Barman Cloud ObjectStore named like the request (owned by it) and, with
spec.cluster, that Cluster's WAL archiving into it through the Barman Cloud plugin.

The archiver is an entry of Cluster.spec.plugins (name barman-cloud.cloudnative-pg.io,
isWALArchiver, parameters barmanObjectName + serverName). That list is atomic for the API server
and an entry cannot carry an ownerReference, so the entry and the annotation recording the owning
request's UID (cnpg-mcp.io/wal-archiver-owner) are written in one resourceVersion-guarded PATCH,
and only that UID removes the entry again. A Cluster on the deprecated in-tree
spec.backup.barmanObjectStore, or archiving through another plugin or store, is a Conflict.
The status mirrors the store's recoverability window for the Cluster's serverName.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnpg_mcp_api.conditions import ready_reason
from cnpg_mcp_api.models import PgBackupStoreRequestSpec
from cnpg_mcp_operator.backup_readiness import recovery_window, store_verdict
from cnpg_mcp_operator.builders.backup import (
    ARCHIVER_OWNER_ANNOTATION,
    ArchiverConflict,
    archiver_entry,
    build_object_store,
    plugins_with_archiver,
    plugins_without_archiver,
    server_name_of,
)
from cnpg_mcp_operator.drift import merge_patch, owned_by
from cnpg_mcp_operator.handlers.common import (
    BACKUP_STORE_REQUESTS,
    create_or_get,
    run_deletion,
    spec_problem,
    verdict_status,
)
from cnpg_mcp_operator.k8s import CLUSTERS, OBJECT_STORES, retry_on_conflict
from cnpg_mcp_operator.readiness import Verdict
from cnpg_mcp_operator.runtime import Runtime
from cnpg_mcp_operator.status_writer import intent_key
from cnpg_mcp_operator.views import CnpgViews

Json = dict[str, Any]
OPTIONAL_STORE_KEYS = ("retentionPolicy",)


def _archiver_owner(cluster: Mapping[str, Any] | None) -> str | None:
    return ((cluster or {}).get("metadata", {}).get("annotations") or {}).get(ARCHIVER_OWNER_ANNOTATION)


def _archives(cluster: Mapping[str, Any] | None, uid: str, entry: Json) -> bool:
    """Is our entry in place and recorded as ours (read from the index, no API call)?"""
    if cluster is None or _archiver_owner(cluster) != uid:
        return False
    return entry in ((cluster.get("spec") or {}).get("plugins") or [])


async def _turn_on_archiving(rt: Runtime, namespace: str, cluster_name: str, uid: str, entry: Json) -> None:
    """Writes our archiver entry and ownership record in one guarded PATCH (re-read on 409)."""
    async def attempt() -> None:
        cluster = await rt.api.get(CLUSTERS, namespace, cluster_name)
        if cluster is None:
            return
        owner = _archiver_owner(cluster)
        if owner and owner != uid:
            raise ArchiverConflict("another PgBackupStoreRequest manages this Cluster's WAL archiving")
        plugins = plugins_with_archiver(cluster, entry)
        if plugins is None and owner == uid:
            return
        metadata = {"resourceVersion": cluster["metadata"]["resourceVersion"],
                    "annotations": {ARCHIVER_OWNER_ANNOTATION: uid}}
        spec_patch = {"plugins": plugins} if plugins is not None else {}
        await rt.api.patch(CLUSTERS, namespace, cluster_name, {"metadata": metadata, "spec": spec_patch})

    await retry_on_conflict(attempt)


async def _turn_off_archiving(rt: Runtime, namespace: str, cluster_name: str, uid: str, store: str) -> None:
    async def attempt() -> None:
        cluster = await rt.api.get(CLUSTERS, namespace, cluster_name)
        if cluster is None or _archiver_owner(cluster) != uid:
            return
        plugins = plugins_without_archiver(cluster, store)
        patch: Json = {"metadata": {"resourceVersion": cluster["metadata"]["resourceVersion"],
                                    "annotations": {ARCHIVER_OWNER_ANNOTATION: None}}}
        if plugins is not None:
            patch["spec"] = {"plugins": plugins}
        await rt.api.patch(CLUSTERS, namespace, cluster_name, patch)

    await retry_on_conflict(attempt)


async def reconcile(rt: Runtime, body: Json, views: CnpgViews) -> None:
    await _update(rt, body, views, produce=True)


async def refresh_status(rt: Runtime, body: Json, views: CnpgViews) -> None:
    await _update(rt, body, views, produce=False)


def needs_reconcile(_: Runtime, body: Json, views: CnpgViews) -> bool:
    """After a Cluster event: is the archiver entry missing (Cluster appeared, someone removed it)?"""
    meta = body["metadata"]
    if meta.get("deletionTimestamp") or ready_reason(body) in ("Invalid",):
        return False
    spec = body.get("spec") or {}
    cluster_name = spec.get("cluster")
    if views.object_store(meta["namespace"], meta["name"]) is None:
        return True
    if (body.get("status") or {}).get("observedGeneration") != meta.get("generation"):
        return True
    if not cluster_name:
        return False
    server = spec.get("serverName") or cluster_name
    return not _archives(views.cluster(meta["namespace"], cluster_name), meta["uid"],
                         archiver_entry(meta["name"], server))


async def _update(rt: Runtime, body: Json, views: CnpgViews, *, produce: bool) -> None:
    async with rt.locks(intent_key(body)):
        body = rt.status.freshest(body)
        if body["metadata"].get("deletionTimestamp"):
            return
        if not produce and ready_reason(body) in ("Conflict", "Invalid"):
            return  # a refusal stands until a reconcile (spec or Cluster change) decides again
        namespace, name, uid = body["metadata"]["namespace"], body["metadata"]["name"], body["metadata"]["uid"]
        invalid = spec_problem(PgBackupStoreRequestSpec, body)
        if invalid is not None:
            await rt.status.write(BACKUP_STORE_REQUESTS, body, verdict_status(body, invalid))
            return
        spec = PgBackupStoreRequestSpec.model_validate(body["spec"])
        store = views.object_store(namespace, name)
        desired = build_object_store(body)
        if store is None and produce:
            store = await create_or_get(rt, OBJECT_STORES, namespace, desired)
        if store is not None and not owned_by(store, uid):
            verdict = Verdict(False, "Conflict", f"ObjectStore {name} exists and does not belong to this request")
            await rt.status.write(BACKUP_STORE_REQUESTS, body, verdict_status(body, verdict))
            return
        if store is not None and produce:
            patch = merge_patch(desired["spec"], store.get("spec") or {}, OPTIONAL_STORE_KEYS)
            if patch:
                store = await rt.api.patch(OBJECT_STORES, namespace, name, {"spec": patch})
        server = server_name_of(spec)
        cluster = views.cluster(namespace, spec.cluster) if spec.cluster else None
        archiving = False
        if spec.cluster and cluster is not None and server:
            entry = archiver_entry(name, server)
            archiving = _archives(cluster, uid, entry)
            if not archiving and produce:
                try:
                    await _turn_on_archiving(rt, namespace, spec.cluster, uid, entry)
                except ArchiverConflict as exc:
                    verdict = Verdict(False, "Conflict", f"Cluster {spec.cluster}: {exc}")
                    await rt.status.write(BACKUP_STORE_REQUESTS, body, verdict_status(body, verdict))
                    return
                archiving = True
        verdict = store_verdict(store, spec.cluster, cluster, archiving)
        extra: Json = {"objectStore": name if store is not None else None, "cluster": spec.cluster,
                       "serverName": server, "archiving": archiving if spec.cluster else None,
                       **recovery_window(store, server)}
        await rt.status.write(BACKUP_STORE_REQUESTS, body,
                              verdict_status(body, verdict, keep_generation=not produce,
                                             **{k: v for k, v in extra.items() if v is not None}))


async def finalize(rt: Runtime, body: Json, views: CnpgViews) -> None:
    """Turn the Cluster's archiving into this store off (only our own entry); the ObjectStore goes by
    garbage collection. The data in the bucket is never touched."""
    async def step(current: Json) -> Verdict | None:
        meta = current["metadata"]
        cluster_name = (current.get("spec") or {}).get("cluster")
        if cluster_name:
            await _turn_off_archiving(rt, meta["namespace"], cluster_name, meta["uid"], meta["name"])
        return None

    async def done(_: Json) -> None:
        return None

    await run_deletion(rt, BACKUP_STORE_REQUESTS, body, step, done)
