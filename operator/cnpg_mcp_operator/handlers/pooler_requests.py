"""PgPoolerRequest → a CNPG Pooler named like the request and owned by it (ownerReference UID).

Type, instances, pool mode, paused and the PgBouncer parameters are kept in line; the cluster is immutable
in both. A name that is a Cluster's in the namespace is refused (Conflict): CNPG names the Pooler's
Deployment and Service after it, and a Cluster's Services and Pods start with the Cluster's name. The status
mirrors CNPG's phase and instance count. Deleting the request deletes the Pooler (garbage collection), and
CNPG's Deployment and Service with it.
"""

from __future__ import annotations

from typing import Any

from cnpg_mcp_api.models import PgPoolerRequestSpec
from cnpg_mcp_operator.builders.pooler import build_pooler, pooler_patch
from cnpg_mcp_operator.drift import owned_by
from cnpg_mcp_operator.handlers.common import (
    POOLER_REQUESTS,
    create_or_get,
    finish_deletion,
    produce_again,
    spec_problem,
    verdict_status,
)
from cnpg_mcp_operator.k8s import POOLERS
from cnpg_mcp_operator.pooler_readiness import pooler_verdict
from cnpg_mcp_operator.readiness import Verdict
from cnpg_mcp_operator.runtime import Runtime
from cnpg_mcp_operator.status_writer import intent_key
from cnpg_mcp_operator.views import CnpgViews

Json = dict[str, Any]
REFUSED = ("Conflict", "ClusterNotFound")


def _mirrored(pooler: Json | None) -> Json:
    status = (pooler or {}).get("status") or {}
    if pooler is None:
        return {}
    meta = pooler["metadata"]
    return {"pooler": meta["name"], "poolerUID": meta["uid"], "phase": status.get("phase") or None,
            "instances": status.get("instances"), "service": f"{meta['name']}.{meta['namespace']}:5432"}


async def reconcile(rt: Runtime, body: Json, views: CnpgViews) -> None:
    await _update(rt, body, views, produce=True)


async def refresh_status(rt: Runtime, body: Json, views: CnpgViews) -> None:
    await _update(rt, body, views, produce=False)


def needs_reconcile(_: Runtime, body: Json, views: CnpgViews) -> bool:
    meta = body["metadata"]
    return produce_again(body, views.pooler(meta["namespace"], meta["name"]), REFUSED)


async def _update(rt: Runtime, body: Json, views: CnpgViews, *, produce: bool) -> None:
    async with rt.locks(intent_key(body)):
        body = rt.status.freshest(body)
        if body["metadata"].get("deletionTimestamp"):
            return
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        invalid = spec_problem(PgPoolerRequestSpec, body)
        if invalid is not None:
            await rt.status.write(POOLER_REQUESTS, body, verdict_status(body, invalid))
            return
        spec = PgPoolerRequestSpec.model_validate(body["spec"])
        pooler = views.pooler(namespace, name)
        if pooler is None and not produce:
            return
        refusal = None
        if views.cluster(namespace, name) is not None:
            refusal = Verdict(False, "Conflict", f"a Cluster named {name!r} exists in {namespace}: a Pooler cannot "
                                                 "have a Cluster's name; use another name for this request")
        elif pooler is None and views.cluster(namespace, spec.cluster) is None:
            refusal = Verdict(False, "ClusterNotFound", f'Cluster "{spec.cluster}" not found in {namespace}')
        if refusal is not None and (pooler is None or refusal.reason == "Conflict"):
            await rt.status.write(POOLER_REQUESTS, body, verdict_status(body, refusal))
            return
        desired = build_pooler(body)
        if pooler is None:
            pooler = await create_or_get(rt, POOLERS, namespace, desired)
        if pooler is not None and not owned_by(pooler, body["metadata"]["uid"]):
            verdict = Verdict(False, "Conflict", f"Pooler {name} exists and does not belong to this request")
            await rt.status.write(POOLER_REQUESTS, body, verdict_status(body, verdict))
            return
        if pooler is not None and produce:
            patch = pooler_patch(desired["spec"], pooler.get("spec") or {})
            if patch:
                pooler = await rt.api.patch(POOLERS, namespace, name, patch)
        verdict = pooler_verdict(pooler, spec.instances)
        await rt.status.write(POOLER_REQUESTS, body,
                              verdict_status(body, verdict, keep_generation=not produce, **_mirrored(pooler)))


async def finalize(rt: Runtime, body: Json, views: CnpgViews) -> None:
    """The Pooler is owned by the request: the garbage collector deletes it (and CNPG's Deployment and Service)."""
    await finish_deletion(rt, POOLER_REQUESTS, body)
