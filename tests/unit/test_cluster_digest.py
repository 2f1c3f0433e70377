"""The cluster health digest: what CNPG's status says, one verdict, the next thing to check."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import anyio

from mcp_gateway import render
from mcp_gateway.config import GatewayConfig
from mcp_gateway.gateway import Gateway
from mcp_gateway.tools.clusters import list_postgres_clusters
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


class ListingKube:
    """Just what list_postgres_clusters reads: 100 Clusters, half of them managed."""

    def __init__(self, count: int) -> None:
        self.clusters: list[dict[str, Any]] = [{"metadata": {"name": f"orders-db-{i:03d}", "namespace": "production"},
                          "spec": {"instances": 3, "imageName": "ghcr.io/cloudnative-pg/postgresql:16.4"},
                          "status": {"phase": HEALTHY_PHASE, "readyInstances": 3,
                                     "currentPrimary": f"orders-db-{i:03d}-1"}} for i in range(count)]
        ready = {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}]}
        self.requests: list[dict[str, Any]] = [{"metadata": {"name": c["metadata"]["name"]}, "spec": {},
                                                "status": ready} for c in self.clusters[::2]]

    async def cnpg_list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        return self.clusters

    async def intent_list(self, plural: str, namespace: str) -> list[dict[str, Any]]:
        return self.requests


def test_a_hundred_clusters_list_in_under_two_thousand_tokens() -> None:
    gw = Gateway(GatewayConfig(), cast(Any, ListingKube(100)), "production")
    listed = anyio.run(list_postgres_clusters, gw)
    shown = listed.content[0].text  # type: ignore[union-attr]
    # About 4 characters per token for this kind of text: 8,000 characters is 2,000 tokens.
    assert len(shown) < 8000, len(shown)
    assert shown.splitlines()[1] == "- orders-db-000: healthy 3/3, primary orders-db-000-1, managed"
    assert shown.splitlines()[2].endswith("not managed by cnpg-mcp")
    assert (listed.structured_content or {}).get("count") == 100
