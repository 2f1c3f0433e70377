"""Operator restart over existing objects: time to ready, writes a converged restart makes, RSS.

    .venv/bin/python -m bench.operator_scale [--intents 1000] [--clusters 0]

Standalone it starts its own sandbox, creates `--intents` PgRoleRequests (and `--clusters` bare
Clusters) and waits until the intents are Ready; `make bench` reuses what the other benchmarks left
(bench/__main__.py). Then the operator is stopped and started again: "ready" is the ready line plus
the liveness probe (Kopf answers once its indexes are filled and its handlers run); writes are counted
from watch events in the intents' namespace for `--settle` seconds after the start.
"""

from __future__ import annotations

import argparse
import time

from kubernetes import client

from bench import burst
from bench.common import Row, print_table, rss_mib
from bench.gateway import make_clusters
from bench.roles_latency import NamespaceWatcher
from bench.sandbox import GROUP, VERSION, Sandbox


def count_intents(sandbox: Sandbox) -> int:
    custom = client.CustomObjectsApi(sandbox.api)
    return sum(len(custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"])
               for plural in ("pgrolerequests", "pgclusterrequests", "pgdatabaserequests"))


def count_clusters(sandbox: Sandbox) -> int:
    return len(client.CustomObjectsApi(sandbox.api).list_cluster_custom_object(
        "postgresql.cnpg.io", "v1", "clusters")["items"])


def run(sandbox: Sandbox, namespace: str, settle: float = 20.0) -> list[Row]:
    intents, clusters = count_intents(sandbox), count_clusters(sandbox)
    held = f"{intents} intents, {clusters} Clusters"
    rows = [Row(f"operator RSS holding {held}", rss_mib(sandbox.operator_pid), "MiB", 200.0,
                "goal is for 10,000 intents + 5,000 Clusters; scaled down to fit 15 min")]
    watcher = NamespaceWatcher(sandbox.api, namespace)
    watcher.start()
    sandbox.operator.stop()
    started = time.monotonic()
    sandbox.operator.start(timeout=300)
    ready = time.monotonic() - started
    time.sleep(settle)
    watcher.stop()
    writes = dict(watcher.writes)
    rows += [
        Row(f"operator restart: ready with {held}", ready, "s", 30.0,
            "goal is for 10,000 intents"),
        Row("operator restart: writes when converged", sum(writes.values()), "writes", 0.0,
            f"{writes or 'none'} in the burst namespace, {settle:.0f}s after ready"),
        Row(f"operator RSS after restart, {held}", rss_mib(sandbox.operator_pid), "MiB", 200.0),
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--intents", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=0)
    parser.add_argument("--settle", type=float, default=20.0)
    args = parser.parse_args(argv)
    with Sandbox.start() as sandbox:
        made = burst.run(sandbox, args.intents)
        if args.clusters:
            sandbox.stop_simulator()
            make_clusters(client.CustomObjectsApi(sandbox.api), sandbox.new_namespace("bench-many"), args.clusters)
        print_table(run(sandbox, made.namespace, args.settle))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
