"""The CNPG simulator's instance Pods, their logs through the real API server path, and its failure isolation.

What a user notices: `kubectl get pods` shows `<cluster>-N` Running with CNPG's labels, following
`instances` and switchovers; `kubectl logs <cluster>-1` (API server → the simulator's Node → its
kubelet endpoint) prints CNPG-style JSON lines, including the real PostgreSQL server's; and a Cluster
the simulator cannot process does not delay healthy ones.
"""

from __future__ import annotations

import json
import re
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from devcluster.controlplane import ControlPlane
from devcluster.postgres import PostgresServer
from tests.integration.test_cnpg_simulator import (
    GROUP,
    VERSION,
    create_cluster,
    get_cnpg,
    patch_cnpg,
    unique,
    wait_for,
    wait_healthy,
)

pytestmark = pytest.mark.usefixtures("cnpg_simulator")


def running_pods(k8s: Any, namespace: str, cluster: str) -> dict[str, Any]:
    pods = client.CoreV1Api(k8s).list_namespaced_pod(namespace, label_selector=f"cnpg.io/cluster={cluster}").items
    return {p.metadata.name: p for p in pods
            if p.status.phase == "Running" and p.metadata.deletion_timestamp is None}


def wait_pods(k8s: Any, namespace: str, cluster: str, names: set[str], timeout: float = 30.0) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        pods = running_pods(k8s, namespace, cluster)
        return pods if set(pods) == names else None
    return wait_for(probe, f"Pods {sorted(names)} Running", timeout)


def roles_of(pods: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {name: (p.metadata.labels["cnpg.io/instanceRole"], p.metadata.labels["role"]) for name, p in pods.items()}


def test_instance_pods_follow_instances_switchover_and_deletion(k8s: Any, namespace: str) -> None:
    create_cluster(k8s, namespace, "pg-pods", instances=3, database=unique("pods"))
    cluster = wait_healthy(k8s, namespace, "pg-pods")
    pods = wait_pods(k8s, namespace, "pg-pods", {"pg-pods-1", "pg-pods-2", "pg-pods-3"})

    first = pods["pg-pods-1"]
    assert first.metadata.labels["cnpg.io/cluster"] == "pg-pods"
    assert first.metadata.labels["cnpg.io/instanceName"] == "pg-pods-1"
    assert first.metadata.labels["cnpg.io/podRole"] == "instance"
    assert roles_of(pods) == {"pg-pods-1": ("primary", "primary"), "pg-pods-2": ("replica", "replica"),
                              "pg-pods-3": ("replica", "replica")}
    owner = first.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("Cluster", "pg-pods", cluster["metadata"]["uid"])
    assert first.spec.node_name and first.status.container_statuses[0].ready

    patch_cnpg(k8s, namespace, "clusters", "pg-pods", {"spec": {"instances": 1}})
    wait_pods(k8s, namespace, "pg-pods", {"pg-pods-1"})
    patch_cnpg(k8s, namespace, "clusters", "pg-pods", {"spec": {"instances": 2}})
    wait_pods(k8s, namespace, "pg-pods", {"pg-pods-1", "pg-pods-2"})

    # A switchover, as `kubectl cnpg promote` asks for it: the Pods' role labels follow.
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "clusters", "pg-pods", {"status": {"targetPrimary": "pg-pods-2"}},
        _content_type="application/merge-patch+json")
    wait_for(lambda: roles_of(running_pods(k8s, namespace, "pg-pods")) == {
        "pg-pods-1": ("replica", "replica"), "pg-pods-2": ("primary", "primary")}, "roles switched")
    assert (get_cnpg(k8s, namespace, "clusters", "pg-pods") or {})["status"]["currentPrimary"] == "pg-pods-2"

    # A deleted instance Pod comes back (the deletion completes: the simulator is the Node's kubelet).
    old_uid = running_pods(k8s, namespace, "pg-pods")["pg-pods-1"].metadata.uid
    client.CoreV1Api(k8s).delete_namespaced_pod("pg-pods-1", namespace)
    wait_for(lambda: (p := running_pods(k8s, namespace, "pg-pods").get("pg-pods-1")) is not None
             and p.metadata.uid != old_uid, "pg-pods-1 recreated")

    # Deleting the Cluster: the garbage collector deletes its Pods, the Node's kubelet completes it.
    client.CustomObjectsApi(k8s).delete_namespaced_custom_object(GROUP, VERSION, namespace, "clusters", "pg-pods")
    wait_for(lambda: not client.CoreV1Api(k8s).list_namespaced_pod(
        namespace, label_selector="cnpg.io/cluster=pg-pods").items, "the instance Pods gone", timeout=60)


def read_log_lines(k8s: Any, namespace: str, pod: str, **options: Any) -> list[dict[str, Any]]:
    text = client.CoreV1Api(k8s).read_namespaced_pod_log(pod, namespace, container="postgres", **options)
    return [json.loads(line) for line in text.splitlines()]


def test_pod_logs_through_the_api_server(k8s: Any, namespace: str, postgres: PostgresServer) -> None:
    create_cluster(k8s, namespace, "pg-logs", instances=2, database=unique("logs"))
    wait_healthy(k8s, namespace, "pg-logs")
    wait_pods(k8s, namespace, "pg-logs", {"pg-logs-1", "pg-logs-2"})
    intruder = f"intruder_{secrets.token_hex(3)}"
    assert not postgres.can_login(intruder, "wrong")  # the real server logs a FATAL line

    lines = read_log_lines(k8s, namespace, "pg-logs-1")
    for line in lines:
        assert {"level", "ts", "logger", "msg", "logging_pod"} <= set(line)
        assert line["logging_pod"] == "pg-logs-1"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", line["ts"])
    records = [line["record"] for line in lines if line["logger"] == "postgres" and line["msg"] == "record"]
    assert any(r["message"] == "database system is ready to accept connections" for r in records)

    def intruder_logged() -> list[dict[str, Any]]:
        return [line for line in read_log_lines(k8s, namespace, "pg-logs-1")
                if intruder in (line.get("record") or {}).get("message", "")]
    fatal = wait_for(intruder_logged, "the real server's FATAL line in the primary's log", timeout=10)
    assert fatal[0]["record"]["error_severity"] == "FATAL" and fatal[0]["level"] == "error"
    # The shared server's lines belong to the primary; a replica shows only its own.
    assert not any(intruder in json.dumps(line) for line in read_log_lines(k8s, namespace, "pg-logs-2"))

    assert len(read_log_lines(k8s, namespace, "pg-logs-1", tail_lines=2)) == 2
    assert read_log_lines(k8s, namespace, "pg-logs-2", since_seconds=3600)
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(k8s).read_namespaced_pod_log("pg-logs-1", namespace, container="sidecar")
    assert missing.value.status in (400, 404)


def test_kubectl_logs(control_plane: ControlPlane, k8s: Any, namespace: str) -> None:
    create_cluster(k8s, namespace, "pg-kctl", instances=1, database=unique("kctl"))
    wait_pods(k8s, namespace, "pg-kctl", {"pg-kctl-1"})

    def kubectl(*args: str) -> str:
        done = subprocess.run([control_plane.kubectl, "--kubeconfig", str(control_plane.kubeconfig), *args],
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    lines = kubectl("logs", "pg-kctl-1", "-n", namespace, "--tail=2").splitlines()
    assert len(lines) == 2 and all(json.loads(line)["logging_pod"] == "pg-kctl-1" for line in lines)
    stamped = kubectl("logs", "pg-kctl-1", "-n", namespace, "--tail=1", "--timestamps").strip()
    stamp, _, line = stamped.partition(" ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:.]+Z", stamp) and json.loads(line)["logging_pod"] == "pg-kctl-1"
    assert "pg-kctl-1" in kubectl("get", "pods", "-n", namespace, "-l", "cnpg.io/instanceRole=primary", "-o", "name")


def retries_logged(log_path: Path, namespace: str, name: str) -> list[float]:
    pattern = re.compile(rf"cluster {re.escape(namespace)}/{re.escape(name)}: not done.*; retry \d+ in ([\d.]+)s")
    return [float(m[1]) for m in pattern.finditer(log_path.read_text(errors="replace"))]


def test_a_cluster_that_cannot_be_processed_backs_off_without_delaying_others(
        k8s: Any, namespace: str, cnpg_simulator_log: Path) -> None:
    # A real failure that CNPG's admission lets through: a ResourceQuota allows no Service in the
    # broken Cluster's namespace, so the API server refuses every Service the simulator creates there.
    # (Names CNPG could not derive objects from, e.g. 62 characters, are refused by its webhook.)
    quarantined = f"{namespace}-quota"
    core = client.CoreV1Api(k8s)
    core.create_namespace({"metadata": {"name": quarantined, "labels": {"cnpg-mcp.io/test": "true"}}})
    try:
        core.create_namespaced_resource_quota(quarantined, {"metadata": {"name": "no-services"},
                                                            "spec": {"hard": {"services": "0"}}})
        # No quota controller runs in the sandbox: state the usage it would compute.
        core.patch_namespaced_resource_quota_status("no-services", quarantined, {
            "status": {"hard": {"services": "0"}, "used": {"services": "0"}}})
        _backs_off_without_delaying_others(k8s, namespace, quarantined, cnpg_simulator_log)
    finally:
        core.delete_namespace(quarantined)


def _backs_off_without_delaying_others(k8s: Any, namespace: str, quarantined: str, log_path: Path) -> None:
    broken = "broken"
    create_cluster(k8s, quarantined, broken, instances=1, database=unique("broken"))

    def blocked() -> str | None:
        status = (get_cnpg(k8s, quarantined, "clusters", broken) or {}).get("status") or {}
        reason = status.get("phaseReason") or ""
        return reason if status.get("phase") == "Setting up primary" and "Service" in reason else None
    reason = wait_for(blocked, "the broken Cluster to report why it cannot proceed")
    assert "403" in reason and f"{broken}-rw" in reason and "quota" in reason
    started = time.monotonic()
    for index in range(3):
        create_cluster(k8s, namespace, f"pg-ok-{index}", instances=1, database=unique("ok"))
    for index in range(3):
        wait_healthy(k8s, namespace, f"pg-ok-{index}")
        wait_pods(k8s, namespace, f"pg-ok-{index}", {f"pg-ok-{index}-1"})
    assert time.monotonic() - started < 20

    time.sleep(4)
    delays = retries_logged(log_path, quarantined, broken)
    assert 2 <= len(delays) <= 6, delays  # backs off: 0.5 s, 1 s, 2 s, 4 s... not a hot loop
    assert delays == sorted(delays) and delays[-1] > delays[0], delays
    assert (get_cnpg(k8s, quarantined, "clusters", broken) or {})["status"]["phase"] == "Setting up primary"
