"""Prometheus metrics of the operator, served at /metrics by `--metrics URL`.

Reconcile metrics carry controller-runtime's names and labels, so dashboards and alerts written for
Go operators work unchanged: `controller_runtime_reconcile_total{controller,result}` (result:
success, error, requeue_after), `controller_runtime_reconcile_errors_total{controller}`,
`controller_runtime_reconcile_time_seconds{controller}`, `controller_runtime_active_workers{controller}`.
A controller is an intent kind in lower case (pgrolerequest), as controller-runtime names them.
The operator's API writes are not counted twice: the collector below reads `Api.writes`, the
counter the liveness probe reports.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter as Tally
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol
from urllib.parse import urlsplit

import kopf
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: they double every family for nothing a dashboard reads
SUCCESS, ERROR, REQUEUE_AFTER = "success", "error", "requeue_after"
READY_BUCKETS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600)

RECONCILES = Counter("controller_runtime_reconcile", "Reconciliations per controller and result.",
                     ["controller", "result"])
RECONCILE_ERRORS = Counter("controller_runtime_reconcile_errors", "Reconciliations that failed, per controller.",
                           ["controller"])
RECONCILE_TIME = Histogram("controller_runtime_reconcile_time_seconds", "Duration of reconciliations.",
                           ["controller"])
ACTIVE_WORKERS = Gauge("controller_runtime_active_workers", "Reconciliations running now.", ["controller"])
INTENT_READY = Histogram("cnpg_mcp_intent_ready_seconds",
                         "From an intent's creation to its first Ready=True (as created: generation 1).",
                         ["kind"], buckets=READY_BUCKETS)
POLICY_DENIALS = Counter("cnpg_mcp_policy_denials", "Intents refused by the admin policy (Ready reason "
                         "PolicyDenied), counted once per transition.", ["kind"])
API_CONFLICTS = Counter("cnpg_mcp_operator_api_conflicts", "409 Conflict answers of the API server.", ["method"])
CONFLICT_RETRIES = Counter("cnpg_mcp_operator_conflict_retries",
                           "Read-modify-write attempts run again after a 409 (stale resourceVersion).")


def controller_name(kind: str) -> str:
    return kind.lower()


@contextmanager
def reconciling(controller: str) -> Iterator[None]:
    """Measures one handler run; TemporaryError is a requeue, any other exception an error."""
    started = time.perf_counter()
    ACTIVE_WORKERS.labels(controller=controller).inc()
    result = SUCCESS
    try:
        yield
    except kopf.TemporaryError:
        result = REQUEUE_AFTER
        raise
    except Exception:
        result = ERROR
        RECONCILE_ERRORS.labels(controller=controller).inc()
        raise
    finally:
        ACTIVE_WORKERS.labels(controller=controller).dec()
        RECONCILE_TIME.labels(controller=controller).observe(time.perf_counter() - started)
        RECONCILES.labels(controller=controller, result=result).inc()


def _created(body: Mapping[str, Any]) -> dt.datetime | None:
    stamp = (body.get("metadata") or {}).get("creationTimestamp")
    try:
        return dt.datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None
    except ValueError:
        return None


def ready_transition(body: Mapping[str, Any], before: Mapping[str, Any] | None, after: Mapping[str, Any],
                     now: dt.datetime | None = None) -> None:
    """Records what a Ready condition change means: first readiness time, a policy denial."""
    kind = controller_name(str(body.get("kind") or ""))
    was = (before or {}).get("status"), (before or {}).get("reason")
    if after.get("status") == "True" and was[0] != "True" and (body.get("metadata") or {}).get("generation") == 1:
        created = _created(body)
        if created is not None:
            INTENT_READY.labels(kind=kind).observe(max(0.0, ((now or dt.datetime.now(dt.UTC)) - created)
                                                   .total_seconds()))
    if after.get("reason") == "PolicyDenied" and was[1] != "PolicyDenied":
        POLICY_DENIALS.labels(kind=kind).inc()


class _Writes(Protocol):
    @property
    def writes(self) -> Tally[str]: ...


class WritesCollector(Collector):
    """`cnpg_mcp_operator_api_writes_total{verb,kind}` and `cnpg_mcp_operator_secrets_written_total`,
    read from the Api's own write counter ("create Secret", "patch PgRoleRequest/status", …)."""

    def __init__(self) -> None:
        self.api: _Writes | None = None

    def collect(self) -> Iterator[CounterMetricFamily]:
        writes = CounterMetricFamily("cnpg_mcp_operator_api_writes", "The operator's own API writes.",
                                     labels=["verb", "kind"])
        secrets = CounterMetricFamily("cnpg_mcp_operator_secrets_written",
                                      "Secrets the operator created, patched or deleted.")
        secret_total = 0
        for key, count in list(self.api.writes.items()) if self.api is not None else []:
            verb, _, kind = key.partition(" ")
            writes.add_metric([verb, kind], count)
            secret_total += count if kind == "Secret" else 0
        secrets.add_metric([], secret_total)
        yield writes
        yield secrets


WRITES = WritesCollector()
REGISTRY.register(WRITES)


def watch_api(api: _Writes) -> None:
    """Export this Api's write counter (called once the runtime's Api exists)."""
    WRITES.api = api


def address(url: str) -> tuple[str, int, str]:
    """`http://0.0.0.0:8081/metrics` → ("0.0.0.0", 8081, "/metrics"), like Kopf's --liveness URL."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValueError(f"--metrics needs an http URL with host and port, e.g. http://0.0.0.0:8081/metrics: {url!r}")
    return parts.hostname, parts.port, parts.path or "/metrics"


async def serve(url: str) -> web.AppRunner:
    """Serves the text exposition format at `url` on the operator's event loop; cleanup() stops it."""
    host, port, path = address(url)

    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
