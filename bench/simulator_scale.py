"""How the CNPG simulator copes with many Clusters: time to healthy, failure isolation, memory.

Starts its own control plane, PostgreSQL and simulator (nothing else runs), creates N Clusters
(default 300, 1 instance each, spread over namespaces), then reports:
- how long until every Cluster was processed, and how many are healthy or blocked (and why);
- the latency of ONE more Cluster created while the blocked ones are retrying (failure isolation);
- the simulator's RSS.

    .venv/bin/python bench/simulator_scale.py [--clusters 300] [--namespaces 10]

With a /24 Service range (3 Services per Cluster) only ~80 Clusters get their Services; the others
report "range is full" in status.phaseReason and back off, which is exactly the isolation case.
"""

from __future__ import annotations

import argparse
import collections
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from kubernetes import client

from devcluster import controlplane
from devcluster.postgres import PostgresServer
from devcluster.simulator import launch_simulator, stop_simulator

GROUP, VERSION = "postgresql.cnpg.io", "v1"
HEALTHY = "Cluster in healthy state"


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cluster_body(name: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Cluster", "metadata": {"name": name},
            "spec": {"instances": 1, "storage": {"size": "1Gi"},
                     "bootstrap": {"initdb": {"database": f"db_{name}".replace("-", "_"),
                                              "owner": f"db_{name}".replace("-", "_")}}}}


def states(custom: Any) -> dict[tuple[str, str], tuple[str, str]]:
    items = custom.list_cluster_custom_object(GROUP, VERSION, "clusters")["items"]
    return {(c["metadata"]["namespace"], c["metadata"]["name"]):
            ((c.get("status") or {}).get("phase") or "", (c.get("status") or {}).get("phaseReason") or "")
            for c in items}


def processed(state: tuple[str, str]) -> bool:
    phase, reason = state
    return phase == HEALTHY or bool(phase and reason and reason != "Creating primary")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=300)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--keep-log", type=Path, help="copy the simulator's log there at the end")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sim-bench-") as tmp:
        base = Path(tmp)
        plane = controlplane.start(base / "controlplane")
        postgres = PostgresServer.start(base / "postgres")
        simulator = launch_simulator(plane.kubeconfig, postgres, base / "cnpg-simulator.log")
        api = plane.api_client()
        try:
            core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
            print(f"simulator RSS at start: {rss_mib(simulator.pid):.0f} MiB")
            for index in range(args.namespaces):
                core.create_namespace({"metadata": {"name": f"bench-{index}"}})
            started = time.monotonic()
            for index in range(args.clusters):
                custom.create_namespaced_custom_object(GROUP, VERSION, f"bench-{index % args.namespaces}",
                                                       "clusters", cluster_body(f"pg-{index}"))
            print(f"{args.clusters} Clusters created in {time.monotonic() - started:.1f}s")
            deadline = started + args.timeout
            while time.monotonic() < deadline:
                seen = states(custom)
                if len(seen) == args.clusters and all(processed(s) for s in seen.values()):
                    break
                time.sleep(1)
            elapsed = time.monotonic() - started
            healthy = sum(1 for phase, _ in seen.values() if phase == HEALTHY)
            reasons = collections.Counter(reason.split(":")[-1].strip()[:80] for phase, reason in seen.values()
                                          if phase != HEALTHY)
            print(f"all {args.clusters} processed after {elapsed:.1f}s: {healthy} healthy, "
                  f"{args.clusters - healthy} blocked {dict(reasons.most_common(3))}")
            print(f"simulator RSS with {args.clusters} Clusters: {rss_mib(simulator.pid):.0f} MiB")

            core.create_namespace({"metadata": {"name": "bench-late"}})
            late = time.monotonic()
            custom.create_namespaced_custom_object(GROUP, VERSION, "bench-late", "clusters", cluster_body("pg-late"))
            while time.monotonic() < late + 120:
                state = states(custom).get(("bench-late", "pg-late"), ("", ""))
                if processed(state):
                    break
                time.sleep(0.1)
            print(f"one more Cluster processed in {time.monotonic() - late:.2f}s while "
                  f"{args.clusters - healthy} blocked ones retry: {state[0]!r} {state[1][:100]!r}")
        finally:
            api.close()
            stop_simulator(simulator)
            if args.keep_log:
                shutil.copy(base / "cnpg-simulator.log", args.keep_log)
            postgres.stop()
            plane.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
