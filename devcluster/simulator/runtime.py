"""The simulator's runtime: list+watch per handler, a work queue and its workers per worker group,
failure isolation.

The "operator" worker reconciles one CNPG key at a time; DatabaseRoles have a group of their own with
several workers (a burst of role intents would otherwise wait in one line: ~5 API round trips each),
as CNPG's controllers reconcile different objects concurrently; a queue never hands one key to two
workers at once (workqueue.py). The "kubelet" worker (Pod status, Pod deletion) runs beside them, as
a kubelet does.
Failure isolation: a key whose reconcile fails or raises is retried with exponential, capped backoff
in the queue's retry lane, which only runs when no fresh work waits (workqueue.py); a reconcile
cannot wait forever on PostgreSQL (lock and statement timeouts, pg.py); and the echo of the
simulator's own writes does not enqueue work again (kube.py). So one Cluster that cannot be
processed never delays the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import psycopg
from kubernetes import watch
from kubernetes.client.exceptions import ApiException

from devcluster.simulator.common import Key, api_error_text, now_rfc3339, pg_error_text
from devcluster.simulator.context import Context, Handler, WatchSpec
from devcluster.simulator.kube import Kube, to_dict
from devcluster.simulator.kubelet import NODE_NAME, KubeletServer, KubeletTls, register_node
from devcluster.simulator.logs import LogStore
from devcluster.simulator.pg import Postgres
from devcluster.simulator.registry import build_handlers
from devcluster.simulator.workqueue import WorkQueue, retry_delay

log = logging.getLogger("cnpg-simulator")
READY_LINE = "cnpg-simulator ready"
WATCH_TIMEOUT_S = 240
# A broken watch is re-listed after at most this long: with the reconcile retry cap (30 s) a watch that
# failed for the whole of an etcd outage slept up to 30 s after the API came back, and what the fault
# tests then measured was this wait, not the operator's recovery.
WATCH_RETRY_MAX_S = 3.0
SLOW_RECONCILE_S = 5.0


def worker_group(handler: Handler) -> str:
    """Handlers of one group share a queue and its workers; the default group is "operator"."""
    return str(getattr(handler, "worker_group", "operator"))


def group_workers(handlers: Sequence[Handler]) -> int:
    """How many workers a group runs: the most any of its handlers asks for (`workers`, default 1)."""
    return max((int(getattr(handler, "workers", 1)) for handler in handlers), default=1)


class Simulator:
    """Watches → a work queue per worker group → its worker reconciles keys one at a time."""

    def __init__(self, kubeconfig: Path, pg: Postgres, namespaces: Sequence[str] | None,
                 kubelet_tls: KubeletTls) -> None:
        self._namespaces = list(namespaces) if namespaces else None
        self.kube = Kube(kubeconfig)
        self.logs = LogStore(pg.server.log_file)
        self.ctx = Context(kube=self.kube, pg=pg, enqueue=self.enqueue, logs=self.logs, node_name=NODE_NAME)
        self.handlers: dict[str, Handler] = build_handlers(self.ctx)
        self.queues: dict[str, WorkQueue[Key]] = {
            group: WorkQueue() for group in sorted({worker_group(h) for h in self.handlers.values()})}
        self.kubelet = KubeletServer(self.logs, kubelet_tls)
        self.stopping = threading.Event()

    # ---------------------------------------------------------------------------- worker
    def enqueue(self, key: Key) -> None:
        self.queues[worker_group(self.handlers[key[0]])].add(key)

    def work(self, queue: WorkQueue[Key]) -> None:
        while not self.stopping.is_set():
            key = queue.claim(timeout=1.0)
            if key is not None:
                try:
                    self.process(queue, key)
                finally:
                    queue.release(key)

    def process(self, queue: WorkQueue[Key], key: Key) -> bool:
        """Reconciles one key; on failure schedules its retry. Never raises (the worker must live)."""
        kind, namespace, name = key
        started = time.monotonic()
        error: str | None = None
        try:
            done = self.handlers[kind].reconcile(namespace, name)
        except ApiException as exc:  # transient (409, API restart...) or refused
            done, error = False, api_error_text(exc)
        except psycopg.Error as exc:
            done, error = False, pg_error_text(exc)
        except Exception:  # a bug: keep the worker alive, say where
            log.exception("%s %s/%s: unexpected error", kind, namespace, name)
            done, error = False, "unexpected error"
        elapsed = time.monotonic() - started
        if elapsed > SLOW_RECONCILE_S:
            log.warning("%s %s/%s: reconcile took %.1fs", kind, namespace, name, elapsed)
        if done:
            queue.succeeded(key)
            return True
        delay = queue.failed(key)
        log.warning("%s %s/%s: not done%s; retry %d in %.1fs", kind, namespace, name,
                    f" ({error})" if error else "", queue.failures(key), delay)
        return False

    # --------------------------------------------------------------------------- watches
    def watch(self, spec: WatchSpec, ready: threading.Event) -> None:
        """List, then watch from the list's resourceVersion; relist on 410/errors. Never returns early."""
        api = self.kube.new_api_client()
        list_fn, kwargs = spec.factory(api)
        name, handle, replay = spec.name, spec.handle, spec.replay
        failures = 0
        while not self.stopping.is_set():
            try:
                listing = to_dict(api, list_fn(**kwargs))
                version = listing["metadata"]["resourceVersion"]
                for item in listing.get("items") or []:
                    if replay and self._wanted(item):
                        handle("ADDED", to_dict(api, item))
                ready.set()
                while not self.stopping.is_set():
                    stream = watch.Watch().stream(
                        list_fn, resource_version=version, timeout_seconds=WATCH_TIMEOUT_S,
                        allow_watch_bookmarks=True, deserialize=False,
                        _request_timeout=(10, WATCH_TIMEOUT_S + 30), **kwargs)
                    for event in stream:
                        obj = event.get("object") or {}
                        version = (obj.get("metadata") or {}).get("resourceVersion") or version
                        if event["type"] in ("ADDED", "MODIFIED", "DELETED") and self._wanted(obj):
                            handle(event["type"], obj)
                    failures = 0
            except ApiException as exc:
                if exc.status != 410:
                    log.warning("watch %s: %s", name, api_error_text(exc))
                    failures += 1
            except Exception as exc:  # a watch must survive connection errors
                log.warning("watch %s: %s", name, " ".join(str(exc).split())[:300])
                failures += 1
            if failures:
                self.stopping.wait(retry_delay(failures, cap=WATCH_RETRY_MAX_S))

    def _wanted(self, obj: Mapping[str, Any]) -> bool:
        return self._namespaces is None or (obj.get("metadata") or {}).get("namespace") in self._namespaces

    def run(self) -> None:
        self.kubelet.start()
        register_node(self.kube, NODE_NAME, self.kubelet.port, now_rfc3339())
        readies: list[threading.Event] = []
        for handler in self.handlers.values():
            for spec in handler.watches():
                ready = threading.Event()
                readies.append(ready)
                threading.Thread(target=self.watch, args=(spec, ready), name=f"watch-{spec.name}",
                                 daemon=True).start()
        for ready in readies:
            while not ready.wait(0.5):
                if self.stopping.is_set():
                    return
        workers = [threading.Thread(target=self.work, args=(queue,), name=f"worker-{group}-{index}", daemon=True)
                   for group, queue in self.queues.items()
                   for index in range(group_workers([h for h in self.handlers.values() if worker_group(h) == group]))]
        for worker in workers:
            worker.start()
        print(READY_LINE, flush=True)
        log.info("all watches established; kubelet endpoint on port %d", self.kubelet.port)
        self.stopping.wait()
        log.info("stopping")
        for worker in workers:
            worker.join(timeout=10)
        self.kubelet.stop()
        log.info("stopped")
