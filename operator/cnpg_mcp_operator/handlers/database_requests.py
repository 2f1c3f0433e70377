"""PgDatabaseRequest → a CNPG Database named like the request and owned by it.

The status mirrors the Database's `applied`/`message` for the current generation. Deletion
deletes the Database (CNPG drops the PostgreSQL database when the reclaim policy is delete),
waits until CNPG has let it go, and reports what blocks it meanwhile (Blocked); switching
spec.databaseReclaimPolicy to retain while blocked releases the database instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cnpg_mcp_api.conditions import ready_reason
from cnpg_mcp_api.models import PgDatabaseRequestSpec
from cnpg_mcp_operator.builders.database import build_database
from cnpg_mcp_operator.deletion import ReleaseWording, release_plan
from cnpg_mcp_operator.drift import merge_patch, owned_by
from cnpg_mcp_operator.handlers.common import (
    DATABASE_REQUESTS,
    apply_release,
    produce_again,
    run_deletion,
    spec_problem,
    verdict_status,
)
from cnpg_mcp_operator.k8s import DATABASES
from cnpg_mcp_operator.readiness import Verdict, crd_applied_verdict
from cnpg_mcp_operator.runtime import Runtime
from cnpg_mcp_operator.status_writer import intent_key
from cnpg_mcp_operator.views import CnpgViews

log = logging.getLogger(__name__)

Json = dict[str, Any]
OPTIONAL_DATABASE_KEYS = ("extensions", "schemas")


def _names(body: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = body["metadata"]
    return meta["namespace"], meta["name"], str((body.get("spec") or {}).get("cluster") or "")


def _verdict(body: Mapping[str, Any], database: Mapping[str, Any] | None, views: CnpgViews) -> Verdict:
    namespace, _, cluster_name = _names(body)
    return crd_applied_verdict("Database", database, views.cluster(namespace, cluster_name) is not None,
                               cluster_name)


async def reconcile(rt: Runtime, body: Json, views: CnpgViews) -> None:
    async with rt.locks(intent_key(body)):
        body = rt.status.freshest(body)
        if body["metadata"].get("deletionTimestamp"):
            return
        namespace, name, cluster_name = _names(body)
        invalid = spec_problem(PgDatabaseRequestSpec, body)
        if invalid is not None:
            await rt.status.write(DATABASE_REQUESTS, body, verdict_status(body, invalid))
            return
        if views.cluster(namespace, cluster_name) is None:
            verdict = Verdict(False, "ClusterNotFound", f'Cluster "{cluster_name}" not found in {namespace}')
            await rt.status.write(DATABASE_REQUESTS, body, verdict_status(body, verdict))
            return
        desired = build_database(body)
        database = views.database(namespace, name)
        conflict = None
        if database is None:
            database = await rt.api.create(DATABASES, namespace, desired)
            if database is None:
                database = await rt.api.get(DATABASES, namespace, name)
        if database is not None and not owned_by(database, body["metadata"]["uid"]):
            conflict = f"Database {name} exists and does not belong to this request"
        elif database is not None:
            patch = merge_patch(desired.get("spec") or {}, database.get("spec") or {}, OPTIONAL_DATABASE_KEYS)
            if patch:
                database = await rt.api.patch(DATABASES, namespace, name, {"spec": patch})
        verdict = Verdict(False, "Conflict", conflict) if conflict else _verdict(body, database, views)
        await rt.status.write(DATABASE_REQUESTS, body,
                              verdict_status(body, verdict, database=name, applied=verdict.ready))


async def refresh_status(rt: Runtime, body: Json, views: CnpgViews) -> None:
    async with rt.locks(intent_key(body)):
        body = rt.status.freshest(body)
        if body["metadata"].get("deletionTimestamp") or ready_reason(body) in (None, "Conflict", "Invalid"):
            return
        namespace, name, _ = _names(body)
        database = views.database(namespace, name)
        if database is not None and not owned_by(database, body["metadata"]["uid"]):
            return
        verdict = _verdict(body, database, views)
        await rt.status.write(DATABASE_REQUESTS, body,
                              verdict_status(body, verdict, keep_generation=True, database=name,
                                             applied=verdict.ready))


def needs_reconcile(_: Runtime, body: Json, views: CnpgViews) -> bool:
    """After a CNPG event: must the Database be (re)created, e.g. once its Cluster appeared?"""
    meta = body["metadata"]
    return produce_again(body, views.database(meta["namespace"], meta["name"]), ("ClusterNotFound",))


RETAIN_HINT = "set spec.databaseReclaimPolicy: retain to keep the database and finish the deletion"


def release_wording(name: str) -> ReleaseWording:
    return ReleaseWording(asked=f"deleting Database {name}", cannot="CNPG cannot drop the database",
                          waiting=f"waiting for CNPG to release Database {name}", hint=RETAIN_HINT)


async def finalize(rt: Runtime, body: Json, views: CnpgViews) -> None:
    """Delete the Database, wait (bounded, see run_deletion) until CNPG lets it go."""
    async def step(current: Json) -> Verdict | None:
        return await _finalize_step(rt, current, views)

    async def done(_: Json) -> None:
        return None

    await run_deletion(rt, DATABASE_REQUESTS, body, step, done)


async def _finalize_step(rt: Runtime, body: Json, views: CnpgViews) -> Verdict | None:
    namespace, name, cluster_name = _names(body)
    database = views.database(namespace, name)
    if database is None or not owned_by(database, body["metadata"]["uid"]):
        return None
    # the request's current policy wins, also while CNPG is deleting: retain releases a blocked drop
    policy = str((body.get("spec") or {}).get("databaseReclaimPolicy") or "retain")
    plan = release_plan(database, policy_field="databaseReclaimPolicy", policy=policy,
                        cluster_exists=views.cluster(namespace, cluster_name) is not None,
                        wording=release_wording(name))
    return await apply_release(rt, DATABASES, database, plan)
