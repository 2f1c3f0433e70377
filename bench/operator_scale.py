"""Operator at scale: RSS holding many intents and Clusters; a restart: time to ready, writes it makes.

    .venv/bin/python -m bench.operator_scale [--burst 1000] [--clusters 5000] [--intents 10000]

Standalone it starts its own sandbox, runs a burst of `--burst` PgRoleRequests to Ready, stops the
simulator and creates `--clusters` bare Clusters; `make bench` reuses what the other benchmarks left
(bench/__main__.py). Then PgRoleRequests are added until `--intents` intents exist, two per Cluster
in the many Clusters' namespace (all on one Cluster is not what 10,000 intents look like, and it made
the operator stall near 5,000, docs/performance.md), and the operator produces each of them
(DatabaseRole, Secret, status at its generation). With
the simulator stopped nothing applies those DatabaseRoles: the added intents stay Pending ("waiting
for CNPG to apply"), which is where the operator's work ends until CNPG answers; the table says how
many are Ready and how many Pending. Then the operator is stopped and started again: "ready" is the
ready line plus the liveness probe (Kopf answers once its indexes are filled and its handlers run);
writes are counted from watch events in the intents' namespaces for `--settle` seconds after the start.
"""

from __future__ import annotations

import argparse
import secrets
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from kubernetes import client

from bench import burst
from bench.common import Row, cpu_seconds, print_table, rss_mib
from bench.gateway import make_clusters
from bench.roles_latency import NamespaceWatcher
from bench.sandbox import GROUP, VERSION, Sandbox

# The intents `make bench` holds: what the operator produces within the benchmark's share of the
# run on this machine (docs/performance.md, pass 3); the goal's 10,000 runs standalone (--intents).
MAKE_BENCH_INTENTS = 4000
CREATE_WORKERS = 16
# Creates per second: about what the operator produces on one core (~40 ms CPU per role intent).
# Faster, its backlog grows: every intent waiting holds its handler task and body, API calls time
# out behind the queue and are retried, and the RSS measured afterwards is the backlog's, not the
# steady state's (unpaced 9,000 creates took the operator past 1 GiB, docs/performance.md).
CREATE_RATE = 16.0
PAGE = 500


def count_intents(sandbox: Sandbox) -> int:
    custom = client.CustomObjectsApi(sandbox.api)
    return sum(_count(custom, plural) for plural in ("pgrolerequests", "pgclusterrequests", "pgdatabaserequests"))


def count_clusters(sandbox: Sandbox) -> int:
    return _count(client.CustomObjectsApi(sandbox.api), "clusters", "postgresql.cnpg.io", "v1")


def _count(custom: client.CustomObjectsApi, plural: str, group: str = GROUP, version: str = VERSION) -> int:
    """Objects of a kind in every namespace, listed a page at a time (no 10,000-item answer)."""
    total, token = 0, None
    while True:
        page = custom.list_cluster_custom_object(group, version, plural, limit=PAGE, _continue=token)
        total += len(page["items"])
        token = page["metadata"].get("continue")
        if not token:
            return total


def many_clusters(sandbox: Sandbox) -> tuple[str, list[str]] | None:
    """The namespace holding the most Clusters (bench.gateway's many Clusters) and their names."""
    custom, by_namespace, token = client.CustomObjectsApi(sandbox.api), dict[str, list[str]](), None
    while True:
        page = custom.list_cluster_custom_object("postgresql.cnpg.io", "v1", "clusters", limit=PAGE, _continue=token)
        for item in page["items"]:
            by_namespace.setdefault(item["metadata"]["namespace"], []).append(item["metadata"]["name"])
        token = page["metadata"].get("continue")
        if not token:
            break
    return max(by_namespace.items(), key=lambda item: len(item[1]), default=None)


def role_states(sandbox: Sandbox, namespace: str) -> Counter[str]:
    """PgRoleRequests of a namespace by their Ready reason; "unhandled" when the operator has not yet
    written a status for their current generation."""
    custom, states, token = client.CustomObjectsApi(sandbox.api), Counter[str](), None
    while True:
        page = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "pgrolerequests",
                                                    limit=PAGE, _continue=token)
        for item in page["items"]:
            status = item.get("status") or {}
            ready = [c for c in status.get("conditions") or [] if c.get("type") == "Ready"]
            handled = status.get("observedGeneration") == item["metadata"].get("generation") and ready
            states[str(ready[0].get("reason")) if handled else "unhandled"] += 1
        token = page["metadata"].get("continue")
        if not token:
            return states


@dataclass
class Fill:
    added: int
    created_in: float
    produced_in: float
    operator_cpu: float
    states: Counter[str]


def add_role_intents(sandbox: Sandbox, namespace: str, clusters: list[str], count: int,
                     timeout: float = 1800.0) -> Fill:
    """`count` more PgRoleRequests in `namespace`, spread over its `clusters`, created in parallel;
    returns once the operator has produced every one (DatabaseRole seen, then a status at its
    generation) or at `timeout`."""
    custom = client.CustomObjectsApi(sandbox.api)
    suffix = secrets.token_hex(2)
    watcher = NamespaceWatcher(sandbox.api, namespace)
    watcher.start()
    before = len(watcher.produced_at)
    operator_cpu = cpu_seconds(sandbox.operator_pid)
    started = time.monotonic()

    def create(index: int) -> None:
        time.sleep(max(0.0, started + index / CREATE_RATE - time.monotonic()))
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "pgrolerequests", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "PgRoleRequest",
            "metadata": {"name": f"s{suffix}-{index:05d}"},
            "spec": {"cluster": clusters[index % len(clusters)], "roleName": f"scale_{suffix}_{index:05d}"}})

    with ThreadPoolExecutor(max_workers=CREATE_WORKERS) as pool:
        list(pool.map(create, range(count)))
    created_in = time.monotonic() - started
    deadline = started + timeout
    while time.monotonic() < deadline and len(watcher.produced_at) - before < count:
        time.sleep(1.0)
    states = role_states(sandbox, namespace)
    while time.monotonic() < deadline and states["unhandled"]:
        time.sleep(5.0)
        states = role_states(sandbox, namespace)
    produced_in = time.monotonic() - started
    watcher.stop()
    return Fill(count, created_in, produced_in, cpu_seconds(sandbox.operator_pid) - operator_cpu, states)


def fill_intents(sandbox: Sandbox, namespace: str, intents: int) -> tuple[list[str], list[Row]]:
    """Adds role intents until `intents` exist: the namespaces that hold role intents, and a row."""
    missing = intents - count_intents(sandbox)
    target = many_clusters(sandbox)
    if missing <= 0 or target is None:
        return [namespace], []
    fill = add_role_intents(sandbox, target[0], target[1], missing)
    row = Row(f"operator: {fill.added} more role intents produced", fill.produced_in, "s",
              note=f"created in {fill.created_in:.0f}s; operator CPU {fill.operator_cpu:.0f}s "
                   f"({fill.operator_cpu / fill.added * 1000:.0f} ms per intent)")
    return [namespace, target[0]], [row]


QUIET_TIMEOUT = 120.0


def wait_quiet(pid: int, timeout: float = QUIET_TIMEOUT, idle: float = 0.05, seconds: int = 3) -> float:
    """Seconds until the process has used under `idle` CPU-seconds a second for `seconds` seconds in a
    row (the end of the quiet run is not counted). Kopf's ready flag and liveness probe answer before
    its initial LISTs are indexed and the resume handlers have run; quiet is when they are done."""
    started = time.monotonic()
    quiet_since, last = None, cpu_seconds(pid)
    while time.monotonic() - started < timeout:
        time.sleep(1.0)
        now = cpu_seconds(pid)
        if now - last >= idle:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic() - 1.0
        elif time.monotonic() - quiet_since >= seconds:
            return quiet_since - started
        last = now
    return float("inf")


def run(sandbox: Sandbox, namespace: str, settle: float = 20.0, intents: int = MAKE_BENCH_INTENTS) -> list[Row]:
    namespaces, rows = fill_intents(sandbox, namespace, intents)
    states = sum((role_states(sandbox, ns) for ns in namespaces), Counter[str]())
    intents_now, clusters = count_intents(sandbox), count_clusters(sandbox)
    held = f"{intents_now} intents, {clusters} Clusters"
    mix = ", ".join(f"{reason} {n}" for reason, n in sorted(states.items()))
    rows.append(Row(f"operator RSS holding {held}", rss_mib(sandbox.operator_pid), "MiB", 200.0,
                    f"role intents: {mix}; goal is for 10,000 intents + 5,000 Clusters"))
    watchers = [NamespaceWatcher(sandbox.api, ns) for ns in namespaces]
    for watcher in watchers:
        watcher.start()
    sandbox.operator.stop()
    started = time.monotonic()
    sandbox.operator.start(timeout=300)
    ready = time.monotonic() - started
    quiet = wait_quiet(sandbox.operator_pid)
    resumed = ready + min(quiet, QUIET_TIMEOUT)
    time.sleep(settle)
    writes: Counter[str] = Counter()
    for watcher in watchers:
        watcher.stop()
        writes.update(watcher.writes)
    rows += [
        Row(f"operator restart: ready line + probe with {held}", ready, "s", note="before the indexes are filled"),
        Row(f"operator restart: indexed and resumed, {held}", resumed, "s", 30.0,
            ("start → the operator's CPU is quiet (< 5%) for 3 s" if quiet != float("inf") else
             f"NOT quiet {QUIET_TIMEOUT:.0f}s after ready (the figure is a lower bound)")
            + "; goal is for 10,000 intents"),
        Row("operator restart: writes when converged", sum(writes.values()), "writes", 0.0,
            f"{dict(writes) or 'none'} in the intents' namespaces, until {settle:.0f}s after quiet"),
        Row(f"operator RSS after restart, {held}", rss_mib(sandbox.operator_pid), "MiB", 200.0,
            f"{settle:.0f}s after quiet"),
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=1000, help="PgRoleRequests taken to Ready first")
    parser.add_argument("--clusters", type=int, default=5000)
    parser.add_argument("--intents", type=int, default=10000, help="intents held in all (role requests added)")
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument("--keep", action="store_true", help="keep the sandbox folder (logs)")
    args = parser.parse_args(argv)
    with Sandbox.start(keep=args.keep) as sandbox:
        made = burst.run(sandbox, args.burst)
        sandbox.stop_simulator()
        if args.clusters:
            make_clusters(client.CustomObjectsApi(sandbox.api), sandbox.new_namespace("bench-many"), args.clusters)
        print_table(run(sandbox, made.namespace, args.settle, args.intents))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
