"""PgOperationRequests applied with kubectl, end to end: the operator writes CNPG's own trigger
(status targetPrimary, restartedAt, reloadedAt, hibernation, fencedInstances, unrecoverable), the CNPG
simulator plays CNPG's reaction, and the request reports the phase with CNPG's evidence."""

from __future__ import annotations

import itertools
import json
import subprocess
from typing import Any

import psycopg
import pytest
from kubernetes import client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from devcluster.postgres import PostgresServer
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_operator_roles import make_cluster, wait_until

KIND = constants.OPERATION_REQUEST_KIND
CNPG = (constants.CNPG_GROUP, constants.CNPG_VERSION)
HOLD = "example.com/hold"  # a finalizer that keeps a deleted Pod around, so an operation stays Running


def apply(control_plane: ControlPlane, namespace: str, name: str, spec: dict[str, Any],
          requested_by: str = "alice@example.com") -> None:
    manifest = {"apiVersion": constants.API_VERSION, "kind": KIND,
                "metadata": {"name": name, "namespace": namespace,
                             "annotations": {constants.REQUESTED_BY_ANNOTATION: requested_by}},
                "spec": spec}
    done = subprocess.run([control_plane.kubectl, "--kubeconfig", str(control_plane.kubeconfig), "apply", "-f", "-"],
                          input=json.dumps(manifest), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def kubectl_refusal(control_plane: ControlPlane, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run([control_plane.kubectl, "--kubeconfig", str(control_plane.kubeconfig), *args],
                          input=stdin, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0, done.stdout
    return done.stderr


def finished(intents: Intents, namespace: str, name: str, timeout: float = 60.0) -> dict[str, Any]:
    return intents.wait_for(KIND, namespace, name,
                            lambda o: (o.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
                            "finished", timeout)


def succeeded(intents: Intents, namespace: str, name: str) -> dict[str, Any]:
    done = finished(intents, namespace, name)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    ready = intents.ready(done) or {}
    assert ready.get("status") == "True" and ready.get("reason") == "Succeeded"
    return done


def cluster(k8s: Any, namespace: str, name: str) -> dict[str, Any]:
    return dict(client.CustomObjectsApi(k8s).get_namespaced_custom_object(*CNPG, namespace, "clusters", name))


def pods(k8s: Any, namespace: str, cluster_name: str) -> dict[str, Any]:
    listed = client.CoreV1Api(k8s).list_namespaced_pod(namespace, label_selector=f"cnpg.io/cluster={cluster_name}")
    return {p.metadata.name: p for p in listed.items if p.metadata.deletion_timestamp is None}


def ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def healthy(k8s: Any, namespace: str, name: str, instances: int) -> bool:
    status = cluster(k8s, namespace, name).get("status") or {}
    live = pods(k8s, namespace, name)
    return (status.get("phase") == constants.CNPG_HEALTHY_PHASE and status.get("readyInstances") == instances
            and len(live) == instances and all(ready(p) for p in live.values()))


@pytest.fixture
def three(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any, namespace: str, intents: Intents) -> str:
    name = make_cluster(intents, namespace, instances=3)
    wait_until(lambda: healthy(k8s, namespace, name, 3), "three running instances")
    return name


def test_switchover_moves_the_primary_and_the_rw_service(control_plane: ControlPlane, k8s: Any, namespace: str,
                                                         intents: Intents, three: str) -> None:
    apply(control_plane, namespace, "to-3", {"type": "switchover", "cluster": three, "instance": f"{three}-3"})
    done = succeeded(intents, namespace, "to-3")
    assert done["status"]["evidence"]["currentPrimary"] == f"{three}-3"
    assert done["status"]["evidence"]["previousPrimary"] == f"{three}-1"
    assert done["status"]["instance"] == f"{three}-3" and done["status"]["finishedAt"]
    live = cluster(k8s, namespace, three)["status"]
    assert live["currentPrimary"] == live["targetPrimary"] == f"{three}-3"
    assert live["targetPrimaryTimestamp"]
    # the -rw Service selects the primary's role label: it now reaches only the new primary
    selector = client.CoreV1Api(k8s).read_namespaced_service(f"{three}-rw", namespace).spec.selector
    selected = client.CoreV1Api(k8s).list_namespaced_pod(
        namespace, label_selector=",".join(f"{k}={v}" for k, v in selector.items())).items
    assert [p.metadata.name for p in selected] == [f"{three}-3"]
    labels = {n: p.metadata.labels for n, p in pods(k8s, namespace, three).items()}
    assert labels[f"{three}-3"]["cnpg.io/instanceRole"] == "primary"
    assert labels[f"{three}-1"]["cnpg.io/instanceRole"] == "replica"
    wait_until(lambda: {"Running", "Succeeded"} <= {e.reason for e in intents.events_for(namespace, "to-3")},
               "Running and Succeeded Events (posted asynchronously)", timeout=15)
    events = [(e.reason, e.message) for e in intents.events_for(namespace, "to-3")]
    assert sorted(r for r, _ in events if r in ("Running", "Succeeded")) == ["Running", "Succeeded"]
    assert all("(requested by alice@example.com)" in m for r, m in events if r in ("Running", "Succeeded"))


def test_refusals_leave_the_cluster_untouched(control_plane: ControlPlane, k8s: Any, namespace: str,
                                              intents: Intents, three: str) -> None:
    before = cluster(k8s, namespace, three)
    cases = {
        "ghost": ({"type": "switchover", "cluster": three, "instance": f"{three}-9"}, "does not exist"),
        "same": ({"type": "switchover", "cluster": three, "instance": f"{three}-1"}, "already the primary"),
        "primary": ({"type": "rebuildReplica", "cluster": three, "instance": f"{three}-1"},
                    "current or target primary"),
        "awake": ({"type": "resume", "cluster": three}, "not hibernated"),
        "nocluster": ({"type": "reload", "cluster": "no-such-cluster"}, "not found"),
    }
    for name, (spec, _) in cases.items():
        apply(control_plane, namespace, name, spec)
    for name, (_, words) in cases.items():
        done = finished(intents, namespace, name)
        assert done["status"]["phase"] == "Failed" and words in done["status"]["message"], done["status"]
        assert "startedAt" not in done["status"]  # nothing was written to CNPG
    after = cluster(k8s, namespace, three)
    assert after["status"]["targetPrimary"] == before["status"]["targetPrimary"] == f"{three}-1"
    assert after["metadata"].get("annotations") == before["metadata"].get("annotations")
    wait_until(lambda: "Refused" in {e.reason for e in intents.events_for(namespace, "ghost")},
               "a Refused Event (posted asynchronously)", timeout=15)


def test_schema_refuses_what_makes_no_sense(control_plane: ControlPlane, namespace: str, intents: Intents,
                                            three: str) -> None:
    manifest = {"apiVersion": constants.API_VERSION, "kind": KIND, "metadata": {"name": "bad", "namespace": namespace},
                "spec": {"type": "reload", "cluster": three, "instance": f"{three}-2"}}
    assert "reload, hibernate and resume act on the whole cluster" in kubectl_refusal(
        control_plane, "apply", "-f", "-", stdin=json.dumps(manifest))
    manifest["spec"] = {"type": "rebuildReplica", "cluster": three}
    assert "rebuildReplica needs instance" in kubectl_refusal(control_plane, "apply", "-f", "-",
                                                              stdin=json.dumps(manifest))
    manifest["spec"] = {"type": "promote", "cluster": three}
    assert "Unsupported value" in kubectl_refusal(control_plane, "apply", "-f", "-", stdin=json.dumps(manifest))
    apply(control_plane, namespace, "fine", {"type": "reload", "cluster": three})
    assert "immutable" in kubectl_refusal(control_plane, "patch", "pgoperationrequests", "fine", "-n", namespace,
                                          "--type=merge", "-p", '{"spec": {"timeoutSeconds": 30}}')


def test_a_second_operation_while_one_runs_is_refused(control_plane: ControlPlane, k8s: Any, namespace: str,
                                                      intents: Intents, three: str) -> None:
    core = client.CoreV1Api(k8s)
    replica = f"{three}-2"
    old_uid = pods(k8s, namespace, three)[replica].metadata.uid
    core.patch_namespaced_pod(replica, namespace, {"metadata": {"finalizers": [HOLD]}})
    try:
        apply(control_plane, namespace, "first", {"type": "restart", "cluster": three, "instance": replica})
        intents.wait_for(KIND, namespace, "first", lambda o: (o.get("status") or {}).get("phase") == "Running",
                         "Running")
        apply(control_plane, namespace, "second", {"type": "reload", "cluster": three})
        second = finished(intents, namespace, "second")
        assert second["status"]["phase"] == "Failed"
        assert (intents.ready(second) or {}).get("reason") == "Busy"
        assert "operation first is running" in second["status"]["message"]
        assert (intents.get(KIND, namespace, "first") or {})["status"]["phase"] == "Running"
    finally:
        core.patch_namespaced_pod(replica, namespace, {"metadata": {"finalizers": None}})
    first = succeeded(intents, namespace, "first")
    assert first["status"]["evidence"]["podUID"] == old_uid
    assert first["status"]["evidence"]["newPodUID"] != old_uid
    # the cluster is free again
    apply(control_plane, namespace, "third", {"type": "reload", "cluster": three})
    succeeded(intents, namespace, "third")


def test_restart_rolls_every_instance_replicas_first_primary_in_place(
        control_plane: ControlPlane, k8s: Any, namespace: str, intents: Intents, three: str) -> None:
    before = {n: p.metadata.uid for n, p in pods(k8s, namespace, three).items()}
    apply(control_plane, namespace, "roll", {"type": "restart", "cluster": three})
    done = succeeded(intents, namespace, "roll")
    value = done["status"]["evidence"][constants.CNPG_RESTARTED_AT_ANNOTATION]
    assert cluster(k8s, namespace, three)["metadata"]["annotations"][constants.CNPG_RESTARTED_AT_ANNOTATION] == value
    after = pods(k8s, namespace, three)
    assert all(p.metadata.annotations[constants.CNPG_RESTARTED_AT_ANNOTATION] == value for p in after.values())
    assert after[f"{three}-1"].metadata.uid == before[f"{three}-1"], "the primary restarts in place"
    assert after[f"{three}-2"].metadata.uid != before[f"{three}-2"]
    assert after[f"{three}-3"].metadata.uid != before[f"{three}-3"]


def test_restart_of_the_primary_alone_is_in_place(control_plane: ControlPlane, k8s: Any, namespace: str,
                                                  intents: Intents, three: str) -> None:
    uid = pods(k8s, namespace, three)[f"{three}-1"].metadata.uid
    apply(control_plane, namespace, "primary", {"type": "restart", "cluster": three, "instance": f"{three}-1"})
    done = succeeded(intents, namespace, "primary")
    assert done["status"]["evidence"]["phase"] == constants.CNPG_PHASE_INPLACE_PRIMARY_RESTART
    assert done["status"]["evidence"]["clusterPhase"] == constants.CNPG_HEALTHY_PHASE
    assert pods(k8s, namespace, three)[f"{three}-1"].metadata.uid == uid


def test_reload_makes_postgresql_reread_its_configuration(control_plane: ControlPlane, k8s: Any, namespace: str,
                                                          intents: Intents, postgres: PostgresServer,
                                                          three: str) -> None:
    def show() -> str:
        with psycopg.connect(postgres.superuser_dsn(), autocommit=True) as conn:
            row = conn.execute("SHOW work_mem").fetchone()
            return str(row[0]) if row else ""

    with psycopg.connect(postgres.superuser_dsn(), autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET work_mem = '7MB'")  # written to postgresql.auto.conf, not applied yet
    try:
        assert show() != "7MB"
        apply(control_plane, namespace, "reload", {"type": "reload", "cluster": three,
                                                    "ttlSecondsAfterFinished": 4})
        done = succeeded(intents, namespace, "reload")
        assert done["status"]["evidence"]["reloadedAt"] == cluster(k8s, namespace, three)["metadata"][
            "annotations"][constants.CNPG_RELOADED_AT_ANNOTATION]
        # CNPG reports nothing when its instances have reloaded: the effect is awaited, not assumed at once.
        wait_until(lambda: show() == "7MB", "work_mem 7MB after the reload")
        intents.wait_gone(KIND, namespace, "reload", timeout=30)  # ttlSecondsAfterFinished: 4
    finally:
        with psycopg.connect(postgres.superuser_dsn(), autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET work_mem")
            conn.execute("SELECT pg_reload_conf()")


def test_hibernate_removes_every_pod_and_resume_brings_them_back(
        control_plane: ControlPlane, k8s: Any, namespace: str, intents: Intents, three: str) -> None:
    apply(control_plane, namespace, "sleep", {"type": "hibernate", "cluster": three})
    done = succeeded(intents, namespace, "sleep")
    assert done["status"]["evidence"]["hibernation"] == "True/Hibernated"
    live = cluster(k8s, namespace, three)
    assert live["metadata"]["annotations"][constants.CNPG_HIBERNATION_ANNOTATION] == "on"
    condition = next(c for c in live["status"]["conditions"] if c["type"] == constants.CNPG_HIBERNATION_CONDITION)
    assert (condition["status"], condition["reason"]) == ("True", "Hibernated")
    assert pods(k8s, namespace, three) == {}

    apply(control_plane, namespace, "switch", {"type": "switchover", "cluster": three})
    assert "hibernated" in finished(intents, namespace, "switch")["status"]["message"]

    apply(control_plane, namespace, "wake", {"type": "resume", "cluster": three})
    succeeded(intents, namespace, "wake")
    live = cluster(k8s, namespace, three)
    assert live["metadata"]["annotations"][constants.CNPG_HIBERNATION_ANNOTATION] == "off"
    assert not any(c["type"] == constants.CNPG_HIBERNATION_CONDITION for c in live["status"]["conditions"])
    assert healthy(k8s, namespace, three, 3)


def test_fence_stops_one_instance_and_unfence_brings_it_back(
        control_plane: ControlPlane, k8s: Any, namespace: str, intents: Intents, three: str) -> None:
    replica = f"{three}-2"
    apply(control_plane, namespace, "fence", {"type": "fence", "cluster": three, "instance": replica})
    done = succeeded(intents, namespace, "fence")
    assert json.loads(done["status"]["evidence"]["fencedInstances"]) == [replica]
    assert done["status"]["evidence"]["stoppedPods"] == replica
    assert not ready(pods(k8s, namespace, three)[replica])
    status = cluster(k8s, namespace, three)["status"]
    assert status["readyInstances"] == 2 and replica not in status["instancesStatus"]["healthy"]

    apply(control_plane, namespace, "promote-fenced", {"type": "switchover", "cluster": three, "instance": replica})
    assert "fenced" in finished(intents, namespace, "promote-fenced")["status"]["message"]

    apply(control_plane, namespace, "unfence", {"type": "unfence", "cluster": three, "instance": replica})
    succeeded(intents, namespace, "unfence")
    live = cluster(k8s, namespace, three)
    assert json.loads(live["metadata"]["annotations"][constants.CNPG_FENCED_INSTANCES_ANNOTATION]) == []
    wait_until(lambda: healthy(k8s, namespace, three, 3), "every instance ready again")


def test_rebuild_replica_replaces_its_pod(control_plane: ControlPlane, k8s: Any, namespace: str, intents: Intents,
                                          three: str) -> None:
    replica = f"{three}-3"
    uid = pods(k8s, namespace, three)[replica].metadata.uid
    apply(control_plane, namespace, "rebuild", {"type": "rebuildReplica", "cluster": three, "instance": replica})
    done = succeeded(intents, namespace, "rebuild")
    assert done["status"]["evidence"][constants.CNPG_UNRECOVERABLE_ANNOTATION] == "true"
    fresh = pods(k8s, namespace, three)[replica]
    assert fresh.metadata.uid != uid
    assert constants.CNPG_UNRECOVERABLE_ANNOTATION not in (fresh.metadata.annotations or {})


def test_operator_rights_are_exactly_what_operations_use() -> None:
    """The status subresource write is the operator's (deploy/operator/rbac.yaml), not the gateway's."""
    from pathlib import Path  # noqa: PLC0415

    import yaml  # noqa: PLC0415

    root = Path(__file__).resolve().parents[2]
    operator_rules = [r for d in yaml.safe_load_all((root / "deploy/operator/rbac.yaml").read_text())
                      if d and d["kind"] == "ClusterRole" for r in d["rules"]]
    gateway_rules = [r for d in yaml.safe_load_all((root / "deploy/gateway/rbac.yaml").read_text())
                     if d and d["kind"] == "ClusterRole" for r in d["rules"]]
    assert {"resources": ["clusters/status"], "verbs": ["patch"]} in [
        {k: r[k] for k in ("resources", "verbs")} for r in operator_rules]
    assert not any("clusters/status" in r["resources"] for r in gateway_rules)
    assert any(r["resources"] == ["pgoperationrequests"] and r["verbs"] == ["get", "list", "watch", "create"]
               for r in gateway_rules)


def test_an_operation_without_effect_fails_at_its_timeout(control_plane: ControlPlane, k8s: Any, namespace: str,
                                                          intents: Intents, three: str) -> None:
    core = client.CoreV1Api(k8s)
    replica = f"{three}-2"
    core.patch_namespaced_pod(replica, namespace, {"metadata": {"finalizers": [HOLD]}})
    try:
        apply(control_plane, namespace, "stuck", {"type": "restart", "cluster": three, "instance": replica,
                                                  "timeoutSeconds": 10})
        done = finished(intents, namespace, "stuck", timeout=40)
        assert done["status"]["phase"] == "Failed" and (intents.ready(done) or {}).get("reason") == "Timeout"
        assert "no effect within 10s" in done["status"]["message"]
        wait_until(lambda: "Timeout" in {e.reason for e in intents.events_for(namespace, "stuck")},
                   "a Timeout Event (Kopf posts Events asynchronously)", timeout=15)
    finally:
        core.patch_namespaced_pod(replica, namespace, {"metadata": {"finalizers": None}})
    apply(control_plane, namespace, "after", {"type": "reload", "cluster": three})  # the cluster is free again
    succeeded(intents, namespace, "after")


def test_a_running_operation_survives_an_operator_restart_without_a_second_trigger(
        control_plane: ControlPlane, k8s: Any, namespace: str, intents: Intents, operator: OperatorProcess,
        three: str) -> None:
    core = client.CoreV1Api(k8s)
    replica = f"{three}-3"
    core.patch_namespaced_pod(replica, namespace, {"metadata": {"finalizers": [HOLD]}})
    try:
        apply(control_plane, namespace, "across", {"type": "restart", "cluster": three, "instance": replica})
        running = intents.wait_for(KIND, namespace, "across",
                                   lambda o: (o.get("status") or {}).get("phase") == "Running", "Running")
        operator.stop()
    finally:
        core.patch_namespaced_pod(replica, namespace, {"metadata": {"finalizers": None}})
    wait_until(lambda: replica in pods(k8s, namespace, three), "the replica recreated while no operator runs")
    recreated = pods(k8s, namespace, three)[replica].metadata.uid
    operator.start()
    done = succeeded(intents, namespace, "across")
    assert done["status"]["startedAt"] == running["status"]["startedAt"]
    assert done["status"]["evidence"]["newPodUID"] == recreated
    assert pods(k8s, namespace, three)[replica].metadata.uid == recreated, "the Pod was not deleted a second time"


def test_two_operations_created_together_run_one_at_a_time(control_plane: ControlPlane, k8s: Any,
                                                           namespace: str, intents: Intents, three: str) -> None:
    names = [f"together-{i}" for i in range(4)]
    items = [{"apiVersion": constants.API_VERSION, "kind": KIND, "metadata": {"name": n, "namespace": namespace},
              "spec": {"type": "reload", "cluster": three}} for n in names]
    done = subprocess.run([control_plane.kubectl, "--kubeconfig", str(control_plane.kubeconfig), "apply", "-f", "-"],
                          input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    results = [finished(intents, namespace, n) for n in names]
    reasons = sorted(str((intents.ready(r) or {}).get("reason")) for r in results)
    # one ran; each other one either waited for nothing (it came after the first finished) or was Busy
    assert reasons.count("Succeeded") >= 1 and set(reasons) <= {"Succeeded", "Busy"}
    spans = sorted((r["status"]["startedAt"], r["status"]["finishedAt"]) for r in results
                   if r["status"]["phase"] == "Succeeded")
    for (_, first_end), (second_start, _) in itertools.pairwise(spans):
        assert second_start >= first_end, f"two operations ran at once: {spans}"
