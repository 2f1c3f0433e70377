"""The pure parts of operations: refusals, the chosen switchover target, CNPG's triggers, the evidence read
back, the gateway's intent builder and the simulator's rolling restart and hibernation condition."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import ValidationError

from cnpg_mcp_api import constants, operations
from cnpg_mcp_api.models import PgOperationRequestSpec
from devcluster.simulator import operations as simulated
from mcp_gateway import intents

NOW = "2026-12-02T20:00:00Z"


def cluster(**status: Any) -> dict[str, Any]:
    annotations = status.pop("annotations", {})
    base = {"phase": constants.CNPG_HEALTHY_PHASE, "instances": 3, "readyInstances": 3,
            "instanceNames": ["db-1", "db-2", "db-3"], "currentPrimary": "db-1", "targetPrimary": "db-1",
            "instancesStatus": {"healthy": ["db-1", "db-2", "db-3"]},
            "conditions": [{"type": "Ready", "status": "True"}]}
    return {"metadata": {"name": "db", "namespace": "ns", "resourceVersion": "42", "annotations": annotations},
            "status": {**base, **status}}


def pod(name: str, *, uid: str = "u", ready: bool = True, annotations: dict[str, str] | None = None,
        deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": uid, "annotations": annotations or {}}
    if deleting:
        meta["deletionTimestamp"] = NOW
    return {"metadata": meta, "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True" if ready else "False"}]}}


def test_best_replica_is_a_healthy_unfenced_replica_lowest_serial_first() -> None:
    assert operations.best_replica(cluster()) == "db-2"
    fenced = cluster(annotations={constants.CNPG_FENCED_INSTANCES_ANNOTATION: '["db-2"]'})
    assert operations.best_replica(fenced) == "db-3"
    assert operations.best_replica(cluster(instancesStatus={"healthy": ["db-1"]})) is None
    assert operations.resolve_instance("switchover", None, cluster()) == "db-2"
    assert operations.resolve_instance("restart", None, cluster()) is None


@pytest.mark.parametrize(("op", "instance", "words"), [
    ("switchover", "db-9", "does not exist"),
    ("switchover", "db-1", "already the primary"),
    ("switchover", None, "no healthy, unfenced replica"),
    ("rebuildReplica", "db-1", "current or target primary"),
    ("resume", None, "not hibernated"),
    ("unfence", "db-2", "is not fenced"),
    ("unfence", None, "no instance of cluster db is fenced"),
])
def test_refusals(op: str, instance: str | None, words: str) -> None:
    problem = operations.refusal(op, instance, cluster(instancesStatus={"healthy": ["db-1"]}))
    assert problem is not None and words in problem


def test_refusals_of_a_hibernated_or_fenced_cluster() -> None:
    asleep = cluster(annotations={constants.CNPG_HIBERNATION_ANNOTATION: "on"})
    assert "resume it first" in (operations.refusal("restart", None, asleep) or "")
    assert operations.refusal("resume", None, asleep) is None
    assert operations.refusal("hibernate", None, asleep) is None
    fenced = cluster(annotations={constants.CNPG_FENCED_INSTANCES_ANNOTATION: '["db-2"]'})
    assert "fenced and cannot be promoted" in (operations.refusal("switchover", "db-2", fenced) or "")
    everyone = cluster(annotations={constants.CNPG_FENCED_INSTANCES_ANNOTATION: '["*"]'})
    assert "unfence all of them" in (operations.refusal("unfence", "db-2", everyone) or "")
    broken = cluster(annotations={constants.CNPG_FENCED_INSTANCES_ANNOTATION: "db-2"})
    assert "not JSON" in (operations.refusal("fence", "db-3", broken) or "")
    assert operations.refusal("restart", "db-2", cluster()) is None


def test_switchover_is_a_status_write_under_the_resource_version_as_kubectl_cnpg_promote() -> None:
    trigger = operations.trigger("switchover", "db-2", cluster(), NOW)
    assert (trigger.target, trigger.action, trigger.name) == ("cluster-status", "patch", "db")
    assert trigger.patch["metadata"] == {"resourceVersion": "42"}
    status = trigger.patch["status"]
    assert status["targetPrimary"] == "db-2" and status["targetPrimaryTimestamp"] == NOW
    assert status["phase"] == "Switchover in progress" and status["phaseReason"] == "Switching over to db-2"
    assert [c["type"] for c in status["conditions"]] == ["Ready"] and status["conditions"][0]["status"] == "False"


def test_restart_triggers() -> None:
    whole = operations.trigger("restart", None, cluster(), NOW)
    assert whole.patch == {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": NOW}}}
    primary = operations.trigger("restart", "db-1", cluster(), NOW)
    assert primary.target == "cluster-status"
    assert primary.patch["status"]["phase"] == "Primary instance is being restarted in-place"
    replica = operations.trigger("restart", "db-2", cluster(), NOW)
    assert (replica.target, replica.action, replica.name) == ("pod", "delete", "db-2")
    rebuild = operations.trigger("rebuildReplica", "db-3", cluster(), NOW)
    assert rebuild.patch == {"metadata": {"annotations": {"alpha.cnpg.io/unrecoverable": "true"}}}


def test_annotation_triggers() -> None:
    assert operations.trigger("reload", None, cluster(), NOW).written == {"cnpg.io/reloadedAt": NOW}
    assert operations.trigger("hibernate", None, cluster(), NOW).written == {"cnpg.io/hibernation": "on"}
    assert operations.trigger("resume", None, cluster(), NOW).written == {"cnpg.io/hibernation": "off"}
    fenced = cluster(annotations={constants.CNPG_FENCED_INSTANCES_ANNOTATION: '["db-2"]'})
    add = operations.trigger("fence", "db-3", fenced, NOW)
    assert json.loads(add.written["cnpg.io/fencedInstances"]) == ["db-2", "db-3"]
    assert add.patch["metadata"]["resourceVersion"] == "42"  # read-modify-write of the list
    assert json.loads(operations.trigger("unfence", "db-2", fenced, NOW).written["cnpg.io/fencedInstances"]) == []
    assert json.loads(operations.trigger("fence", None, cluster(), NOW).written["cnpg.io/fencedInstances"]) == ["*"]


def test_progress_reads_cnpg_evidence() -> None:
    moved = operations.progress("switchover", "db-2", cluster(currentPrimary="db-2"), [], {"previousPrimary": "db-1"})
    assert moved.done and moved.evidence == {"currentPrimary": "db-2", "previousPrimary": "db-1"}
    assert not operations.progress("switchover", "db-2", cluster(phase="Switchover in progress"), [], {}).done

    asleep = cluster(conditions=[{"type": "cnpg.io/hibernation", "status": "True", "reason": "Hibernated",
                                  "message": "Cluster has been hibernated"}])
    assert operations.progress("hibernate", None, asleep, [], {}).done
    assert not operations.progress("hibernate", None, cluster(), [pod("db-1")], {}).done

    value = {constants.CNPG_RESTARTED_AT_ANNOTATION: NOW}
    rolled = [pod(f"db-{i}", annotations=value) for i in (1, 2, 3)]
    assert operations.progress("restart", None, cluster(), rolled, value).done
    assert not operations.progress("restart", None, cluster(), [*rolled[:2], pod("db-3")], value).done

    assert not operations.progress("restart", "db-2", cluster(), [pod("db-2", uid="old")], {"podUID": "old"}).done
    back = operations.progress("restart", "db-2", cluster(), [pod("db-2", uid="new")], {"podUID": "old"})
    assert back.done and back.evidence["newPodUID"] == "new"

    fence = {constants.CNPG_FENCED_INSTANCES_ANNOTATION: '["db-2"]'}
    stopped = operations.progress("fence", "db-2", cluster(annotations=fence), [pod("db-2", ready=False)], {})
    assert stopped.done and stopped.evidence["stoppedPods"] == "db-2"
    assert not operations.progress("fence", "db-2", cluster(annotations=fence), [pod("db-2")], {}).done


def test_the_spec_model_and_the_gateway_builder() -> None:
    with pytest.raises(ValidationError):
        PgOperationRequestSpec.model_validate({"type": "promote", "cluster": "db"})
    body = intents.operation_intent("db", "rebuildReplica", "ns", instance="db-3", timeout_seconds=60,
                                    requested_by="alice", now=dt.datetime(2026, 12, 2, 20, 0, tzinfo=dt.UTC))
    assert body["metadata"]["name"] == "db-rebuildreplica-20261202-200000-000000"
    assert body["spec"] == {"type": "rebuildReplica", "cluster": "db", "instance": "db-3", "timeoutSeconds": 60,
                            "ttlSecondsAfterFinished": 86400}
    assert body["metadata"]["annotations"] == {constants.REQUESTED_BY_ANNOTATION: "alice"}


def test_simulated_rolling_restart_goes_replicas_first_then_the_primary_in_place() -> None:
    value = NOW
    stamped = {constants.CNPG_RESTARTED_AT_ANNOTATION: value}
    assert simulated.next_restart([pod("db-1"), pod("db-2"), pod("db-3")], value, "db-1") == ("db-2", False)
    assert simulated.next_restart([pod("db-1"), pod("db-2", annotations=stamped), pod("db-3")], value,
                                  "db-1") == ("db-3", False)
    assert simulated.next_restart([pod("db-1"), pod("db-2", annotations=stamped), pod("db-3", annotations=stamped)],
                                  value, "db-1") == ("db-1", True)
    assert simulated.next_restart([pod("db-1"), pod("db-2", deleting=True)], value, "db-1") is None  # in flight
    assert simulated.next_restart([pod("db-1", annotations=stamped)], value, "db-1") is None  # done


def test_simulated_hibernation_condition_follows_cnpg() -> None:
    def condition(pods: list[dict[str, Any]]) -> tuple[str, str]:
        [only] = simulated.hibernation_status([], pods, generation=1, now=NOW)
        return only["status"], only["reason"]
    assert condition([pod("db-1")]) == ("False", "DeletingPods")
    assert condition([pod("db-1", deleting=True)]) == ("False", "WaitingPodsDeletion")
    assert condition([]) == ("True", "Hibernated")
    assert simulated.is_fenced({"metadata": {"annotations": {"cnpg.io/fencedInstances": '["*"]'}}}, "db-1")
    assert not simulated.is_fenced({"metadata": {"annotations": {"cnpg.io/fencedInstances": "bad"}}}, "db-1")
