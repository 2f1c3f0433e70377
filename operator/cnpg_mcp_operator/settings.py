"""Kopf start-up: the operator's identity on the objects it handles, timeouts, and the shared runtime.

Kopf's bookkeeping lives under this project's domain: its finalizer is `cnpg-mcp.io/finalizer`,
and its progress and diff-base annotations are `cnpg-mcp.io/*`. CNPG objects never get any of them
(they are only indexed and observed, see handlers/cnpg_observers.py).
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from cnpg_mcp_api import constants
from cnpg_mcp_operator.config import OperatorConfig
from cnpg_mcp_operator.registry import REGISTRY
from cnpg_mcp_operator.runtime import Runtime, runtime_of

log = logging.getLogger(__name__)

COMPONENT = "cnpg-mcp-operator"


def apply_settings(settings: kopf.OperatorSettings) -> None:
    settings.peering.standalone = True  # one replica (Recreate); Kopf has no leader election
    settings.persistence.finalizer = constants.FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=constants.KOPF_ANNOTATIONS_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=constants.KOPF_ANNOTATIONS_PREFIX, key="last-handled-configuration")
    # Our own Events (events.py) are posted explicitly; Kopf's per-handler chatter only when it matters.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = COMPONENT
    settings.posting.event_name_prefix = "cnpg-mcp-event-"
    # Finite watch requests: a silently stalled connection is replaced instead of waited on forever.
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    # Handlers raise TemporaryError with their own short delays; unexpected errors retry soon too.
    settings.execution.default_backoff = 5


@kopf.on.startup(registry=REGISTRY)
async def start_operator(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    apply_settings(settings)
    config = memo.get("config")
    if not isinstance(config, OperatorConfig):
        raise kopf.PermanentError("the operator was started without its configuration")
    memo["runtime"] = await Runtime.start(config)
    log.info("cnpg-mcp-operator started: namespaces=%s, role backend=%s, privileged namespaces=%s",
             ",".join(config.namespaces) or "*", memo["runtime"].role_backend.value,
             ",".join(sorted(config.allowed_privileged_namespaces)) or "-")


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
