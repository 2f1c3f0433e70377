"""The cluster health digest: what CNPG's status says, one verdict, the next thing to check."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mcp_gateway import render
from mcp_gateway.tools.digest import HEALTHY_PHASE, digest, parse_expiration

NOW = datetime(2026, 5, 1, tzinfo=UTC)


def cluster(**status: Any) -> dict[str, Any]:
    base = {"phase": HEALTHY_PHASE, "readyInstances": 2, "currentPrimary": "pg-1", "targetPrimary": "pg-1",
            "instanceNames": ["pg-1", "pg-2"], "instancesStatus": {"healthy": ["pg-1", "pg-2"]},
            "timelineID": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "ClusterIsReady"}]}
    return {"metadata": {"name": "pg", "namespace": "prod"}, "spec": {"instances": 2}, "status": base | status}


def test_a_healthy_cluster() -> None:
    found = digest(cluster(instancesReportedState={"pg-1": {"isPrimary": True, "timeLineID": 2},
                                                   "pg-2": {"isPrimary": False, "timeLineID": 2}}), NOW)
    assert found["verdict"] == "healthy: 2/2 instances ready, primary pg-1"
    assert found["next_check"] is None and found["problems"] == []
    assert found["instances_status"] == [
        {"name": "pg-1", "role": "primary", "status": "healthy", "ready": True, "timeline": 2},
        {"name": "pg-2", "role": "replica", "status": "healthy", "ready": True, "timeline": 2}]
    assert found["key_conditions"] == {"Ready": "True (ClusterIsReady)"}


def test_the_most_important_problem_leads_and_names_the_next_tool() -> None:
    found = digest(cluster(phase="Failing over", phaseReason="primary pg-1 unreachable", readyInstances=1,
                           targetPrimary="pg-2", instancesStatus={"healthy": ["pg-2"], "failed": ["pg-1"]},
                           conditions=[{"type": "ContinuousArchiving", "status": "False", "reason": "Failing"}]),
                   NOW)
    assert found["verdict"].startswith("attention: phase 'Failing over': primary pg-1 unreachable (+3 more)")
    assert found["next_check"].startswith('get_cluster_logs(name="pg", namespace="prod", level="error")')
    assert found["problems"][1:] == ["instance(s) not healthy: pg-1", "switchover/failover in progress: pg-1 → pg-2",
                                     "WAL archiving is failing (point-in-time recovery is at risk)"]


def test_roles_hibernation_and_certificates() -> None:
    found = digest(cluster(
        managedRolesStatus={"byStatus": {"reconciled": ["a", "b"], "pending-reconciliation": ["c"]},
                            "cannotReconcile": {"c": ["role c owns objects"]}},
        certificates={"expirations": {"pg-ca": "2026-07-30 10:00:00 +0000 UTC",
                                      "pg-server": "2026-05-08 00:00:00.5 +0000 UTC"}}), NOW)
    assert found["managed_roles_summary"] == {"by_status": {"reconciled": 2, "pending-reconciliation": 1},
                                              "cannot_reconcile": {"c": "role c owns objects"}}
    assert [(c["secret"], c["days_left"]) for c in found["certificates"]] == [("pg-ca", 90), ("pg-server", 7)]
    assert found["problems"] == ["managed role(s) cannot be reconciled: c",
                                 "certificate in Secret pg-server expires in 7 day(s)"]
    hibernated = digest(cluster(conditions=[{"type": "cnpg.io/hibernation", "status": "True"}]), NOW)
    assert hibernated["verdict"].startswith("attention: hibernated")


def test_go_time_strings_parse() -> None:
    assert parse_expiration("2026-05-04 14:43:03 +0000 UTC") == datetime(2026, 5, 4, 14, 43, 3, tzinfo=UTC)
    assert parse_expiration("2026-05-04T14:43:03Z") == datetime(2026, 5, 4, 14, 43, 3, tzinfo=UTC)
    assert parse_expiration("soon") is None


def test_a_requested_cluster_has_a_verdict_too() -> None:
    assert digest(None)["verdict"].startswith("not created yet")


def test_the_status_text_leads_with_the_verdict() -> None:
    source = cluster(phase="Setting up primary", readyInstances=0)
    summary = render.cluster_summary(source, None, detailed=False, full=True) | digest(source, NOW)
    lines = render.cluster_text(summary).splitlines()
    assert lines[1] == "- Verdict: attention: phase 'Setting up primary' (+1 more)"
    assert lines[2].startswith("- Next check: get_cluster_logs(")
    assert "- Instances: pg-1 primary healthy, pg-2 replica healthy" in lines
