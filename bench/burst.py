"""Burst: N PgRoleRequests created at once → all Ready; operator CPU; time split; API writes per intent.

    .venv/bin/python -m bench.burst [--count 1000]

Starts its own sandbox (bench/sandbox.py). Writes are counted from watch events in the burst's
namespace (every accepted write changes a resourceVersion, so shows up once): intent updates
(finalizer, Kopf's annotations, status), Secrets, DatabaseRole spec writes, the operator's Events.
The time split per intent: operator = created → DatabaseRole exists; simulator = DatabaseRole
exists → its status.applied; then operator again = applied → intent Ready.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kubernetes import client

from bench.common import Row, cpu_seconds, percentile, print_table
from bench.roles_latency import NamespaceWatcher
from bench.sandbox import GROUP, VERSION, Sandbox

CLUSTER = "bench"


@dataclass
class BurstResult:
    namespace: str
    rows: list[Row]


def _median_gap(later: dict[str, float], earlier: dict[str, float]) -> float:
    gaps = [later[n] - earlier[n] for n in later if n in earlier]
    return statistics.median(gaps) if gaps else float("nan")


def run(sandbox: Sandbox, count: int, workers: int = 16, timeout: float = 600.0) -> BurstResult:
    namespace = sandbox.new_namespace(f"bench-burst-{count}")
    sandbox.ready_cluster_request(namespace, CLUSTER)
    custom = client.CustomObjectsApi(sandbox.api)
    watcher = NamespaceWatcher(sandbox.api, namespace)
    watcher.start()
    suffix = secrets.token_hex(2)
    names = [f"{CLUSTER}-r{suffix}-{i:05d}" for i in range(count)]
    created_at: dict[str, float] = {}

    def create(index_name: tuple[int, str]) -> None:
        index, name = index_name
        created_at[name] = time.monotonic()
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "pgrolerequests", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "PgRoleRequest", "metadata": {"name": name},
            "spec": {"cluster": CLUSTER, "roleName": f"bench_{suffix}_{index:05d}"}})

    operator_cpu, simulator_cpu = cpu_seconds(sandbox.operator_pid), _simulator_cpu(sandbox)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(create, enumerate(names)))
    created_all = time.monotonic() - started
    deadline = started + timeout
    while time.monotonic() < deadline and len(watcher.ready_at) < count:
        time.sleep(0.1)
    all_ready = max(watcher.ready_at.values(), default=time.monotonic()) - started
    time.sleep(5.0)  # trailing writes of the last intents (Kopf's annotations, Events)
    operator_cpu = cpu_seconds(sandbox.operator_pid) - operator_cpu
    simulator_cpu = _simulator_cpu(sandbox) - simulator_cpu
    watcher.stop()

    latencies = [watcher.ready_at[n] - created_at[n] for n in names if n in watcher.ready_at]
    writes = dict(watcher.writes)
    per_kind = ", ".join(f"{kind} {value / count:.2f}" for kind, value in sorted(writes.items()))
    ready = len(latencies)
    note = f"{ready}/{count} Ready; created in {created_all:.1f}s"
    rows = [
        Row(f"burst {count} roles: all Ready", all_ready, "s", 20.0 if count == 1000 else None, note),
        Row(f"burst {count} roles: intent→Ready p50", statistics.median(latencies) if latencies else float("nan"),
            "s", note=f"p99 {percentile(latencies, 0.99) if latencies else float('nan'):.1f}s"),
        Row("  operator: created→DatabaseRole p50", _median_gap(watcher.produced_at, created_at), "s"),
        Row("  simulator: DatabaseRole→applied p50", _median_gap(watcher.applied_at, watcher.produced_at), "s"),
        Row("  operator: applied→intent Ready p50", _median_gap(watcher.ready_at, watcher.applied_at), "s"),
        Row("operator CPU per role intent", operator_cpu / count * 1000, "ms",
            note=f"{operator_cpu:.1f}s in all; simulator {simulator_cpu:.1f}s"),
        # The goal counts the finalizer, the Secret, the DatabaseRole and one status write; Events apart
        # (≤ 1 per Ready transition: one for a role CNPG applies within the operator's grace).
        Row("operator API writes per role intent", sum(writes.values()) / count, "writes", note=per_kind),
        Row("  without Events", (sum(writes.values()) - writes.get("Event", 0)) / count, "writes", 4.0),
        Row("  Events", writes.get("Event", 0) / count, "Events", 1.0),
    ]
    return BurstResult(namespace, rows)


def _simulator_cpu(sandbox: Sandbox) -> float:
    return cpu_seconds(sandbox.simulator.pid) if sandbox.simulator is not None else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--keep", action="store_true", help="keep the sandbox folder (logs)")
    args = parser.parse_args(argv)
    with Sandbox.start(keep=args.keep) as sandbox:
        print_table(run(sandbox, args.count).rows)
    return 0




if __name__ == "__main__":
    raise SystemExit(main())
