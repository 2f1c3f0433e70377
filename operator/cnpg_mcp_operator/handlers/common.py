"""What the intent handlers share: the intent resources, the status shape, the policy gate."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

import kopf
from pydantic import BaseModel, ValidationError

from cnpg_mcp_api import constants
from cnpg_mcp_api.conditions import READY, ready_reason
from cnpg_mcp_api.policy import role_request_violations
from cnpg_mcp_operator.builders.status import make_condition
from cnpg_mcp_operator.deletion import Plan
from cnpg_mcp_operator.k8s import ApiError, Resource
from cnpg_mcp_operator.readiness import Verdict
from cnpg_mcp_operator.runtime import Runtime
from cnpg_mcp_operator.status_writer import intent_key

Json = dict[str, Any]

CLUSTER_REQUESTS = Resource(constants.GROUP, constants.VERSION, constants.CLUSTER_REQUEST_PLURAL,
                            constants.CLUSTER_REQUEST_KIND)
ROLE_REQUESTS = Resource(constants.GROUP, constants.VERSION, constants.ROLE_REQUEST_PLURAL,
                         constants.ROLE_REQUEST_KIND)
DATABASE_REQUESTS = Resource(constants.GROUP, constants.VERSION, constants.DATABASE_REQUEST_PLURAL,
                             constants.DATABASE_REQUEST_KIND)
BACKUP_STORE_REQUESTS = Resource(constants.GROUP, constants.VERSION, constants.BACKUP_STORE_REQUEST_PLURAL,
                                 constants.BACKUP_STORE_REQUEST_KIND)
BACKUP_REQUESTS = Resource(constants.GROUP, constants.VERSION, constants.BACKUP_REQUEST_PLURAL,
                           constants.BACKUP_REQUEST_KIND)
BACKUP_SCHEDULE_REQUESTS = Resource(constants.GROUP, constants.VERSION, constants.BACKUP_SCHEDULE_REQUEST_PLURAL,
                                    constants.BACKUP_SCHEDULE_REQUEST_KIND)
POOLER_REQUESTS = Resource(constants.GROUP, constants.VERSION, constants.POOLER_REQUEST_PLURAL,
                           constants.POOLER_REQUEST_KIND)
OPERATION_REQUESTS = Resource(constants.GROUP, constants.VERSION, constants.OPERATION_REQUEST_PLURAL,
                              constants.OPERATION_REQUEST_KIND)

UNPROCESSABLE = 422  # an admission webhook (CloudNativePG's) or the CRD refused the object


def refusal_verdict(exc: ApiError, kind: str) -> Verdict:
    """CloudNativePG refused the object built from the spec (422): only a spec change can help, so the
    intent reports Invalid with CNPG's reason instead of retrying in silence. Any other error is raised again."""
    if exc.status != UNPROCESSABLE:
        raise exc
    return Verdict(False, "Invalid", f"CloudNativePG refused the {kind}: {exc.message}")


def verdict_status(body: Mapping[str, Any], verdict: Verdict, *, keep_generation: bool = False,
                   **extra: Any) -> Json:
    """The status an intent should have for this verdict.

    observedGeneration moves only when a handler has acted on the current spec; observers that
    merely mirror CNPG keep the recorded one (keep_generation=True).
    """
    status = body.get("status") or {}
    generation = int(body["metadata"].get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0) if keep_generation else generation
    condition = make_condition(
        READY, verdict.ready, verdict.reason, verdict.message,
        observed_generation=observed, previous=status.get("conditions") or [],
    )
    others = [c for c in status.get("conditions") or [] if c.get("type") != READY]
    return {"observedGeneration": observed, "conditions": [*others, condition], "message": verdict.message,
            **extra}


# A deletion waits for CNPG inside one handler call at most this long (woken by the observers on
# every CNPG change), then hands back to Kopf, which calls it again with the intent as it is now:
# that is how a change made while waiting (e.g. reclaimPolicy switched to retain) is seen.
DELETION_ATTEMPT_S = 15.0
DELETION_RETRY_S = 1.0

DeletionStep = Callable[[Json], Awaitable[Verdict | None]]


async def run_deletion(rt: Runtime, resource: Resource, body: Json, step: DeletionStep,
                       done: Callable[[Json], Awaitable[None]], *, attempt_s: float = DELETION_ATTEMPT_S) -> None:
    """Runs `step` (None: nothing of ours is left) until it finishes, then `done`, under the intent's lock.

    While it does not finish, the step's verdict (Deleting / Blocked with the reason) is the
    intent's status; after DELETION_ATTEMPT_S the handler raises kopf.TemporaryError, so no
    deletion loops forever on a stale body.
    """
    key = intent_key(body)
    deadline = time.monotonic() + attempt_s
    try:
        while True:
            async with rt.locks(key):
                rt.wakeups.arm(key)  # a CNPG change seen from here on ends the wait below at once
                body = rt.status.freshest(body)
                verdict = await step(body)
                if verdict is None:
                    await done(body)
                    rt.status.forget(body)
                    return
                await rt.status.write(resource, body, verdict_status(body, verdict, keep_generation=True))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise kopf.TemporaryError(f"{verdict.reason}: {verdict.message}", delay=DELETION_RETRY_S)
            await rt.wakeups.wait(key, remaining)
    finally:
        rt.wakeups.disarm(key)


async def finish_deletion(rt: Runtime, resource: Resource, body: Json) -> None:
    """A deletion with nothing to release: what the intent owns goes by garbage collection (or is kept,
    with propagation Orphan)."""
    async def step(_: Json) -> Verdict | None:
        return None

    async def done(_: Json) -> None:
        return None

    await run_deletion(rt, resource, body, step, done)


async def create_or_get(rt: Runtime, resource: Resource, namespace: str, desired: Mapping[str, Any]) -> Json | None:
    """Creates `desired`; when it exists already (409: created meanwhile, or our cache lags), reads it."""
    created = await rt.api.create(resource, namespace, desired)
    return created if created is not None else await rt.api.get(resource, namespace, desired["metadata"]["name"])


async def apply_release(rt: Runtime, resource: Resource, obj: Mapping[str, Any], plan: Plan) -> Verdict | None:
    """Performs a release plan's writes on `obj` (deletion.release_plan); returns its verdict."""
    namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
    for write in plan.writes:
        if write.patch is not None:
            await rt.api.patch(resource, namespace, name, write.patch)
        else:
            await rt.api.delete(resource, namespace, name)
    return plan.verdict


def policy_denial(rt: Runtime, body: Mapping[str, Any], cluster: Mapping[str, Any] | None,
                  joinable_roles: Collection[str] | None = None) -> str | None:
    """The operator's own check of the admin policy (the CRD's CEL rules are the first gate).

    joinable_roles: the roles Ready requests of the namespace produced in this cluster (see policy.py).
    """
    namespace = body["metadata"]["namespace"]
    violations = role_request_violations(
        body.get("spec") or {},
        allow_privileged=rt.privileged_allowed(namespace),
        bootstrap_owner=bootstrap_owner(cluster),
        joinable_roles=joinable_roles,
    )
    if not violations:
        return None
    return "refused by policy: " + "; ".join(violations)


def _initdb(cluster: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The Cluster's initdb bootstrap section ({} for CNPG's default), None if it bootstraps otherwise."""
    if cluster is None:
        return None
    bootstrap = (cluster.get("spec") or {}).get("bootstrap") or {}
    if bootstrap and "initdb" not in bootstrap:
        return None
    initdb: Mapping[str, Any] = bootstrap.get("initdb") or {}
    return initdb


def bootstrap_database(cluster: Mapping[str, Any] | None) -> str:
    """The Cluster's bootstrap database (CNPG's default "app"): the dbname in role Secrets."""
    initdb = _initdb(cluster) or {}
    return str(initdb.get("database") or "app")


def bootstrap_owner(cluster: Mapping[str, Any] | None) -> str | None:
    """The owner of the Cluster's bootstrap database (CNPG's default: the database name, "app")."""
    initdb = _initdb(cluster)
    if initdb is None:
        return None
    return str(initdb.get("owner") or bootstrap_database(cluster))


def spec_problem(model: type[BaseModel], body: Mapping[str, Any]) -> Verdict | None:
    """An `Invalid` verdict when the spec does not fit the typed model (e.g. an older CRD is installed).

    The CRD normally refuses such specs first; this keeps the operator from retrying forever.
    """
    try:
        model.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        problems = "; ".join(
            f"spec.{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()[:3]
        )
        return Verdict(False, "Invalid", f"invalid spec: {problems}")
    return None


def produce_again(body: Mapping[str, Any], produced: Mapping[str, Any] | None, retry_reasons: Collection[str]) -> bool:
    """After a CNPG event, for a request that produces one object: produce again when that object is missing, the
    spec changed since the last reconcile, or the last verdict was one the event may lift (its Cluster appeared)."""
    meta = body["metadata"]
    if meta.get("deletionTimestamp"):
        return False
    return (produced is None or (body.get("status") or {}).get("observedGeneration") != meta.get("generation")
            or ready_reason(body) in retry_reasons)
