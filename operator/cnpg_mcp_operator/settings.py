"""Kopf start-up: the operator's identity on the objects it handles, timeouts, and the shared runtime.

Kopf's bookkeeping lives under this project's domain: its finalizer is `cnpg-mcp.io/finalizer`,
and its progress annotations are `cnpg-mcp.io/*`; its diff base is kept in memory (diffbase.py).
CNPG objects never get any of them (they are only indexed and observed, see handlers/cnpg_observers.py).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import kopf

from cnpg_mcp_api import constants
from cnpg_mcp_operator import metrics
from cnpg_mcp_operator.config import OperatorConfig
from cnpg_mcp_operator.diffbase import MemoryDiffBaseStorage, UnmarkedProgressStorage
from cnpg_mcp_operator.k8s import FIELD_MANAGER, Api, ApiError
from cnpg_mcp_operator.registry import REGISTRY
from cnpg_mcp_operator.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)

COMPONENT = FIELD_MANAGER  # one name for the operator: field manager, Event source
PEERING_API_VERSION = "kopf.dev/v1"  # the group/version Kopf looks for first (deploy/operator/peering-crds.yaml)


def apply_settings(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    # Standalone, peering name and priority come from kopf.operator() (see __main__.py).
    settings.peering.lifetime = config.peering_lifetime
    settings.persistence.finalizer = constants.FINALIZER
    settings.persistence.progress_storage = UnmarkedProgressStorage(prefix=constants.KOPF_ANNOTATIONS_PREFIX)
    # In memory, not an annotation: one API write less per intent, and no handler reads the diff
    # (diffbase.py says why this is safe).
    settings.persistence.diffbase_storage = MemoryDiffBaseStorage(prefix=constants.KOPF_ANNOTATIONS_PREFIX)
    # How long Kopf waits for the watch event of its own patch before handling an older body anyway.
    # Kopf's 5 s default is shorter than the watch lag under a burst (1,000 intents at once on 2 cores):
    # it then sees an intent without its diff-base annotation, runs the create handler a second time and
    # writes the annotation again (bench/burst.py: 325 creations processed for 200 intents, 2.6 Kopf
    # patches per intent instead of 2). The wait ends as soon as the event arrives.
    settings.persistence.consistency_timeout = 60
    # Our own Events (events.py) are posted explicitly; Kopf's per-handler chatter only when it matters.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = COMPONENT
    settings.posting.event_name_prefix = "cnpg-mcp-event-"
    # Finite watch requests: a silently stalled connection is replaced instead of waited on forever.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    # Kopf retries a failed API request (its watches' lists included) after 1, 1, 2, 3, 5, 8, 13, 21 s:
    # after an etcd or API-server outage the operator could sleep up to 21 s before it looked again.
    # The same ~55 s of patience in steps of at most 5 s, so it is back within 5 s of the API.
    settings.networking.error_backoffs = (1, 1, 2, 3, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5)
    settings.networking.connect_timeout = 10
    # Handlers raise TemporaryError with their own short delays; unexpected errors retry soon too.
    settings.execution.default_backoff = 5


@kopf.on.startup(registry=REGISTRY)
async def start_operator(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    config = memo.get("config")
    if not isinstance(config, OperatorConfig):
        raise kopf.PermanentError("the operator was started without its configuration")
    apply_settings(settings, config)
    memo["runtime"] = await Runtime.start(config)
    metrics.watch_api(memo["runtime"].api)
    if config.peering is not None:
        await ensure_peering_objects(memo["runtime"].api, config)
    log.info("cnpg-mcp-operator started: namespaces=%s, role backend=%s, privileged namespaces=%s, peering=%s",
             ",".join(config.namespaces) or "*", memo["runtime"].role_backend.value,
             ",".join(sorted(config.allowed_privileged_namespaces)) or "-",
             f"{config.peering} (priority {config.peering_priority})" if config.peering else "standalone")


async def ensure_peering_objects(api: Api, config: OperatorConfig) -> None:
    """Create the peering object(s) Kopf will join if missing: a fresh install needs no second apply.

    With --peering, Kopf keeps the operator paused until it sees its peering object, so a missing
    object (no right to create it) is logged loudly rather than failing the start.
    """
    name = str(config.peering)
    kind = "ClusterKopfPeering" if config.clusterwide else "KopfPeering"
    targets: list[tuple[str, dict[str, str]]]
    if config.clusterwide:
        targets = [(f"/apis/{PEERING_API_VERSION}/clusterkopfpeerings", {})]
    else:
        targets = [(f"/apis/{PEERING_API_VERSION}/namespaces/{quote(ns, safe='')}/kopfpeerings",
                    {"namespace": ns}) for ns in config.namespaces]
    for path, meta in targets:
        body = {"apiVersion": PEERING_API_VERSION, "kind": kind, "metadata": {"name": name, **meta}}
        try:
            await api.request("POST", path, body=body)  # not a reconciliation write: uncounted on purpose
        except ApiError as exc:
            if not exc.conflict:
                log.error("cannot create the peering object %s (%s): the operator stays paused until it exists",
                          name, exc)


@kopf.on.login(registry=REGISTRY)
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Kopf's own connection: in-cluster credentials, else $KUBECONFIG (set from --kubeconfig)."""
    return kopf.login_via_client(**kwargs)


@kopf.on.cleanup(registry=REGISTRY)
async def stop_operator(memo: Any, **_: Any) -> None:
    if "runtime" in memo:
        runtime = runtime_of(memo)
        log.info("cnpg-mcp-operator stopping; API writes: %d %s", runtime.api.total_writes,
                 dict(runtime.api.writes))
        await runtime.api.close()


@kopf.on.probe(id="writes", registry=REGISTRY)
def report_writes(memo: Any, **_: Any) -> dict[str, int]:
    """The operator's own API writes by verb and kind (read by bench/roles_latency.py)."""
    if "runtime" not in memo:
        return {}
    runtime = runtime_of(memo)
    return {"total": runtime.api.total_writes, **runtime.api.writes}
