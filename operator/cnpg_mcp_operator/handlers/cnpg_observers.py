"""Watching CNPG's objects without touching them, and waking the intents they belong to.

Cluster, Database and DatabaseRole are only indexed (@kopf.index) and observed (@kopf.on.event):
neither writes a Kopf annotation or finalizer on them. On every event the owning intents get
their status recomputed (a write only if it changed), waiting deletions are woken, and intents
that could not be produced before (their Cluster was missing) are reconciled now. This is what
makes the operator watch-driven: no timer, no polling.

The password Secrets the operator produced are watched too, through a server-side label selector
(only Secrets labelled as ours ever reach this process): when one is deleted while its
PgRoleRequest still wants it, the request is reconciled, which reports SecretMissing (see
role_requests.py); a request refused (Conflict) because that Secret was another's tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable, Mapping
from typing import Any

import kopf

from cnpg_mcp_api import constants
from cnpg_mcp_api.conditions import ready_reason
from cnpg_mcp_operator.backup_readiness import (
    BACKUP_STATUS_READ,
    OBJECT_STORE_STATUS_READ,
    SCHEDULED_BACKUP_STATUS_READ,
)
from cnpg_mcp_operator.builders.backup import ARCHIVER_OWNER_ANNOTATION
from cnpg_mcp_operator.drift import owned_by
from cnpg_mcp_operator.handlers import role_requests
from cnpg_mcp_operator.handlers.common import ROLE_REQUESTS
from cnpg_mcp_operator.handlers.intents import INTENT_KINDS
from cnpg_mcp_operator.handlers.kinds import IntentKind
from cnpg_mcp_operator.k8s import (
    BACKUPS,
    CLUSTERS,
    DATABASE_ROLES,
    DATABASES,
    OBJECT_STORES,
    POOLERS,
    SCHEDULED_BACKUPS,
    SECRETS,
    ApiError,
    Resource,
)
from cnpg_mcp_operator.managed_roles import OWNERS_ANNOTATION
from cnpg_mcp_operator.pooler_readiness import POOLER_STATUS_READ
from cnpg_mcp_operator.readiness import APPLIED_STATUS_READ, CLUSTER_STATUS_READ
from cnpg_mcp_operator.registry import REGISTRY
from cnpg_mcp_operator.runtime import Runtime, runtime_of
from cnpg_mcp_operator.status_writer import intent_key
from cnpg_mcp_operator.views import CnpgViews, IndexEntry, every, project

log = logging.getLogger(__name__)

Json = dict[str, Any]


# ---------------------------------------------------------------------------------- indexes

# (kind, index id = the handlers' kwarg, annotations read, status fields read): see CnpgViews.
CNPG_INDEXES = (
    (CLUSTERS, "cnpg_clusters", (OWNERS_ANNOTATION, ARCHIVER_OWNER_ANNOTATION), CLUSTER_STATUS_READ),
    (DATABASE_ROLES, "cnpg_database_roles", (), APPLIED_STATUS_READ),
    (DATABASES, "cnpg_databases", (), APPLIED_STATUS_READ),
    (BACKUPS, "cnpg_backups", (), BACKUP_STATUS_READ),
    (SCHEDULED_BACKUPS, "cnpg_scheduled_backups", (), SCHEDULED_BACKUP_STATUS_READ),
    (OBJECT_STORES, "cnpg_object_stores", (), OBJECT_STORE_STATUS_READ),
    (POOLERS, "cnpg_poolers", (), POOLER_STATUS_READ),
)


def _register_index(resource: Resource, index: str, annotations: tuple[str, ...], status: tuple[str, ...]) -> None:
    # A coroutine: Kopf runs it on its event loop instead of a thread-pool hop per object (kinds.py).
    async def by_name(body: kopf.Body, namespace: str | None, name: str, **_: Any) -> IndexEntry:
        return {(namespace or "", name): project(body, annotations=annotations, status=status)}
    kopf.index(resource.group, resource.version, resource.plural, id=index, registry=REGISTRY)(by_name)


for _resource, _index, _annotations, _status in CNPG_INDEXES:
    _register_index(_resource, _index, _annotations, _status)


# -------------------------------------------------------------------------------- observers


async def _all(jobs: Iterable[Awaitable[None]]) -> None:
    """Runs the intents' updates concurrently (so managed.roles edits batch up); logs failures."""
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for result in results:
        if isinstance(result, ApiError) and result.namespace_terminating:
            continue  # its intents are going away too; their deletion handlers clean up
        if isinstance(result, BaseException):
            log.warning("updating an intent after a CNPG event failed: %s", result)


@kopf.on.event(CLUSTERS.group, CLUSTERS.version, CLUSTERS.plural, registry=REGISTRY)
async def cluster_changed(namespace: str | None, name: str, memo: Any, **kwargs: Any) -> None:
    """Every intent targeting this Cluster: produce again where needed, else refresh its status."""
    rt = runtime_of(memo)
    views = CnpgViews.from_kwargs(kwargs)
    jobs: list[Awaitable[None]] = []
    for kind in INTENT_KINDS:
        for request in every(kwargs[kind.cluster_index], (namespace or "", name)):
            rt.wakeups.notify(intent_key(request))  # a deletion waiting for CNPG looks again
            update = kind.reconcile if kind.needs_reconcile(rt, request, views) else kind.refresh_status
            jobs.append(update(rt, request, views))
    await _all(jobs)


def _owner(index: Mapping[Any, Iterable[Json]], namespace: str, obj: Mapping[str, Any]) -> Json | None:
    """The intent that owns a CNPG object (same name, ownerReference to its uid)."""
    name = obj["metadata"]["name"]
    for request in every(index, (namespace, name)):
        if owned_by(obj, request["metadata"]["uid"]):
            return request
    return None


async def _still_wanted(rt: Runtime, resource: Resource, request: Json) -> Json | None:
    """The intent as the API server has it now, unless it is going away (e.g. its namespace is
    being deleted, which removes the CNPG objects before our cache sees the intent's deletion)."""
    meta = request["metadata"]
    if meta.get("deletionTimestamp"):
        return None
    fresh = await rt.api.get(resource, meta["namespace"], meta["name"])
    if fresh is None or fresh["metadata"].get("deletionTimestamp"):
        return None
    return fresh


def _observe_produced(kind: IntentKind, produced: Resource) -> None:
    """The CNPG object an intent produces one-to-one changed: refresh the owner's status, wake its
    waiting deletion; deleted under a live owner: produce it again."""
    async def produced_changed(type: str, body: kopf.Body, namespace: str | None, memo: Any,
                               **kwargs: Any) -> None:
        rt = runtime_of(memo)
        request = _owner(kwargs[kind.index], namespace or "", body)
        if request is None:
            return
        rt.wakeups.notify(intent_key(request))
        views = CnpgViews.from_kwargs(kwargs)
        if type != "DELETED":
            await kind.refresh_status(rt, request, views)
        elif (fresh := await _still_wanted(rt, kind.resource, request)) is not None:
            await _all([kind.reconcile(rt, fresh, views)])

    kopf.on.event(produced.group, produced.version, produced.plural, id=f"{produced.plural}_changed",
                  registry=REGISTRY)(produced_changed)


for _kind in INTENT_KINDS:
    if _kind.produces is not None:
        _observe_produced(_kind, _kind.produces)


# ---------------------------------------------------------------------------- role Secrets

# Our Secrets carry both labels (builders/role.py); the API server filters the watch by them.
OUR_SECRETS_SELECTOR = f"{constants.MANAGED_BY_LABEL}={constants.MANAGED_BY_VALUE},{constants.REQUEST_LABEL}"


def select_our_secrets(settings: kopf.OperatorSettings) -> None:
    """Server-side filtering: other Secrets (and their values) never reach the operator."""
    settings.watching.label_selectors[SECRETS.version, SECRETS.plural] = OUR_SECRETS_SELECTOR


@kopf.on.startup(registry=REGISTRY)
def watch_only_our_secrets(settings: kopf.OperatorSettings, **_: Any) -> None:
    select_our_secrets(settings)  # startup handlers run before Kopf starts any watch


@kopf.on.event(SECRETS.version, SECRETS.plural, registry=REGISTRY,
               labels={constants.MANAGED_BY_LABEL: constants.MANAGED_BY_VALUE,
                       constants.REQUEST_LABEL: kopf.PRESENT})
async def role_secret_changed(type: str, body: kopf.Body, namespace: str | None, memo: Any,
                              **kwargs: Any) -> None:
    """A password Secret was deleted: its live request reports it (SecretMissing), and requests
    refused because that Secret belonged to another request (Conflict) may now produce their own."""
    if type != "DELETED":
        return
    namespace = namespace or ""
    labels = body.get("metadata", {}).get("labels") or {}
    secret_name = str(body.get("metadata", {}).get("name") or "")
    request_name = str(labels.get(constants.REQUEST_LABEL) or "")
    affected = [r for r in every(kwargs["role_requests"], (namespace, request_name))
                if owned_by(body, r["metadata"]["uid"])]
    cluster_name = str(labels.get(constants.CNPG_CLUSTER_LABEL) or "")
    affected += [r for r in every(kwargs["role_requests_by_cluster"], (namespace, cluster_name))
                 if ready_reason(r) == "Conflict" and role_requests.secret_name_of(r) == secret_name]
    if not affected:
        return  # its request is gone too (our own cleanup, or the garbage collector's)
    rt = runtime_of(memo)
    views = CnpgViews.from_kwargs(kwargs)
    fresh = [f for r in affected if (f := await _still_wanted(rt, ROLE_REQUESTS, r)) is not None]
    await _all([role_requests.reconcile(rt, f, views) for f in fresh])
