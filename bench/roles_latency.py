"""Benchmark (not a test): PgRoleRequest intent → Ready latency, total time, API writes per intent.

Runs against a live control plane with the operator and the CNPG simulator (e.g. `make cluster`
plus `cnpg-mcp-operator --all-namespaces --liveness http://127.0.0.1:8080/healthz`):

    KUBECONFIG=.devcluster/kubeconfig python bench/roles_latency.py --probe http://127.0.0.1:8080/healthz

For each batch size (default 100, then 1000) it creates a fresh namespace and a PgClusterRequest,
then creates that many PgRoleRequests as fast as the API server takes them and records, from watch
events, when each one first reports Ready=True. API writes are counted two ways:
- by watching every object the operator writes in the namespace (each accepted write changes a
  resourceVersion and shows up as one watch event): intent updates (status, finalizer, Kopf's
  annotations), Secrets, DatabaseRole spec writes (not the simulator's status writes), Events;
- from the operator's own write counter (its liveness probe, `--probe`), when given.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client, config, watch

GROUP, VERSION = "cnpg-mcp.io", "v1alpha1"
COMPONENT = "cnpg-mcp-operator"


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


def _probe_writes(url: str | None) -> int | None:
    if not url:
        return None
    import json  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    with urllib.request.urlopen(url, timeout=5) as response:
        return int((json.loads(response.read()).get("writes") or {}).get("total") or 0)


class NamespaceWatcher:
    """Counts writes per kind in one namespace and records when each PgRoleRequest became Ready."""

    def __init__(self, api: Any, namespace: str) -> None:
        self.api, self.namespace = api, namespace
        self.writes: Counter[str] = Counter()
        self.ready_at: dict[str, float] = {}
        self.produced_at: dict[str, float] = {}  # DatabaseRole first seen (the operator's output)
        self.applied_at: dict[str, float] = {}  # DatabaseRole status.applied (the simulator's answer)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._generations: dict[str, int] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        custom, core = client.CustomObjectsApi(self.api), client.CoreV1Api(self.api)
        sources: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
            ("intent", custom.list_namespaced_custom_object,
             {"group": GROUP, "version": VERSION, "namespace": self.namespace, "plural": "pgrolerequests"}),
            ("databaserole", custom.list_namespaced_custom_object,
             {"group": "postgresql.cnpg.io", "version": "v1", "namespace": self.namespace,
              "plural": "databaseroles"}),
            ("secret", core.list_namespaced_secret, {"namespace": self.namespace}),
            ("event", core.list_namespaced_event, {"namespace": self.namespace}),
        ]
        ready = []
        for kind, list_fn, kwargs in sources:
            started = threading.Event()
            ready.append(started)
            thread = threading.Thread(target=self._run, args=(kind, list_fn, kwargs, started), daemon=True)
            thread.start()
            self._threads.append(thread)
        for started in ready:
            started.wait(30)

    def stop(self) -> None:
        self._stop.set()

    def _run(self, kind: str, list_fn: Callable[..., Any], kwargs: dict[str, Any],
             started: threading.Event) -> None:
        listing = list_fn(**kwargs)
        version = listing["metadata"]["resourceVersion"] if isinstance(listing, dict) \
            else listing.metadata.resource_version
        started.set()
        while not self._stop.is_set():
            stream = watch.Watch().stream(list_fn, resource_version=version, timeout_seconds=30,
                                          allow_watch_bookmarks=False, deserialize=False, **kwargs)
            for event in stream:
                obj = event.get("object") or {}
                version = (obj.get("metadata") or {}).get("resourceVersion") or version
                self._count(kind, event["type"], obj)
                if self._stop.is_set():
                    break

    def _count(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        with self._lock:
            if kind == "intent":
                if event_type == "MODIFIED":
                    self.writes["intent update"] += 1
                for condition in (obj.get("status") or {}).get("conditions") or []:
                    if condition.get("type") == "Ready" and condition.get("status") == "True":
                        self.ready_at.setdefault(meta.get("name", ""), time.monotonic())
            elif kind == "databaserole":
                now, name = time.monotonic(), meta.get("name", "")
                self.produced_at.setdefault(name, now)
                if (obj.get("status") or {}).get("applied") is True:
                    self.applied_at.setdefault(name, now)
                generation = int(meta.get("generation") or 0)
                previous = self._generations.get(meta.get("name", ""))
                self._generations[meta.get("name", "")] = generation
                if event_type == "ADDED" or (event_type == "MODIFIED" and previous != generation):
                    self.writes["DatabaseRole spec"] += 1
            elif event_type not in ("ADDED", "MODIFIED"):
                return
            elif kind == "secret":
                if (meta.get("labels") or {}).get("app.kubernetes.io/managed-by") == "cnpg-mcp":
                    self.writes["Secret"] += 1
            elif (obj.get("reportingComponent") or (obj.get("source") or {}).get("component")) == COMPONENT:
                self.writes["Event"] += 1


def run_batch(api: Any, count: int, probe: str | None, timeout: float, workers: int) -> dict[str, Any]:
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    namespace = f"bench-roles-{count}-{secrets.token_hex(3)}"
    core.create_namespace({"metadata": {"name": namespace}})
    cluster = "bench"
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "pgclusterrequests", {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "PgClusterRequest", "metadata": {"name": cluster},
        "spec": {"instances": 1}})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "pgclusterrequests", cluster)
        if any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (body.get("status") or {}).get("conditions") or []):
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"the bench cluster in {namespace} did not become Ready; is the operator running?")

    watcher = NamespaceWatcher(api, namespace)
    watcher.start()
    writes_before = _probe_writes(probe)
    suffix = secrets.token_hex(2)
    names = [f"{cluster}-r{suffix}-{i:04d}" for i in range(count)]
    created_at: dict[str, float] = {}

    def create(index_name: tuple[int, str]) -> None:
        index, name = index_name
        created_at[name] = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "pgrolerequests", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "PgRoleRequest", "metadata": {"name": name},
            "spec": {"cluster": cluster, "roleName": f"bench_{suffix}_{count}_{index:04d}"}})

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(create, enumerate(names)))
    created_all = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline and len(watcher.ready_at) < count:
        time.sleep(0.1)
    finished = max(watcher.ready_at.values(), default=time.monotonic())
    time.sleep(3.0)  # trailing writes (Kopf's annotations, Events) of the last intents
    if probe:
        time.sleep(10.0)  # Kopf caches probe results for 10 s
    writes_after = _probe_writes(probe)
    watcher.stop()

    latencies = [watcher.ready_at[n] - created_at[n] for n in names if n in watcher.ready_at]
    result: dict[str, Any] = {
        "namespace": namespace, "count": count, "ready": len(latencies),
        "create_s": created_all - started, "total_s": finished - started,
        "p50_s": statistics.median(latencies) if latencies else float("nan"),
        "p99_s": _percentile(latencies, 0.99) if latencies else float("nan"),
        "watched_writes": dict(watcher.writes),
        "watched_writes_per_intent": sum(watcher.writes.values()) / count,
    }
    if writes_before is not None and writes_after is not None:
        result["operator_writes_per_intent"] = (writes_after - writes_before) / count
    core.delete_namespace(namespace)  # the operator drops every role and clears its finalizers
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--counts", default="100,1000", help="comma-separated batch sizes")
    parser.add_argument("--probe", default=None, help="the operator's liveness URL (for its write counter)")
    parser.add_argument("--timeout", type=float, default=900.0, help="per batch, seconds")
    parser.add_argument("--workers", type=int, default=16, help="parallel create calls")
    args = parser.parse_args(argv)
    api = config.new_client_from_config(config_file=args.kubeconfig)
    for count in (int(c) for c in args.counts.split(",")):
        result = run_batch(api, count, args.probe, args.timeout, args.workers)
        print(f"{count} PgRoleRequests: {result['ready']}/{count} Ready; "
              f"created in {result['create_s']:.1f}s; all Ready after {result['total_s']:.1f}s; "
              f"intent→Ready p50 {result['p50_s']:.2f}s "
              f"p99 {result['p99_s']:.2f}s", flush=True)
        print(f"  writes per intent (watched): {result['watched_writes_per_intent']:.2f} "
              f"{result['watched_writes']}", flush=True)
        if "operator_writes_per_intent" in result:
            print(f"  writes per intent (operator's own counter): {result['operator_writes_per_intent']:.2f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
