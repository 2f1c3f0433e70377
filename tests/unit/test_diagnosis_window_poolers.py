"""Pure parts of the digest's recoverability window, the Poolers of get_connection_info, the subscription
URIs, and the instances' reported state the simulator writes (as CNPG does)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any, cast

import pytest
from mcp.shared.exceptions import MCPError

from devcluster.simulator import clusters as simulated
from mcp_gateway import subscriptions
from mcp_gateway.subscriptions import parse_status_uri, status_uri
from mcp_gateway.tools import digest
from mcp_gateway.tools.diagnostics import connection_info, pooler_endpoints

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
PLUGIN = {"name": "barman-cloud.cloudnative-pg.io", "enabled": True, "isWALArchiver": True,
          "parameters": {"barmanObjectName": "pg-store", "serverName": "pg-v2"}}


def healthy(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "pg", "namespace": "prod"}, "spec": {"instances": 1, **spec},
            "status": {"phase": "Cluster in healthy state", "readyInstances": 1, "currentPrimary": "pg-1",
                       "targetPrimary": "pg-1", "instancesStatus": {"healthy": ["pg-1"]}}}


def store(**windows: Any) -> dict[str, Any]:
    return {"metadata": {"name": "pg-store"}, "status": {"serverRecoveryWindow": windows}}


def test_window_comes_from_the_archiving_store_and_its_server_name() -> None:
    cluster = healthy(plugins=[{"name": "other.io/x", "isWALArchiver": False}, PLUGIN])
    assert digest.archive_store(cluster) == ("pg-store", "pg-v2")
    window = digest.recoverability(cluster, store(**{
        "pg": {"firstRecoverabilityPoint": "2026-01-01T00:00:00Z"},  # another server's folder
        "pg-v2": {"firstRecoverabilityPoint": "2026-11-30T02:00:00Z", "lastSuccessfulBackupTime":
                  "2026-12-02T02:00:00Z", "lastFailedBackupTime": "2026-12-01T02:00:00Z"}}))
    assert window == {"source": "ObjectStore pg-store status.serverRecoveryWindow", "store": "pg-store",
                      "server_name": "pg-v2", "first_recoverability_point": "2026-11-30T02:00:00Z",
                      "last_successful_backup": "2026-12-02T02:00:00Z",
                      "last_failed_backup": "2026-12-01T02:00:00Z", "note": None}
    assert digest.digest(cluster, NOW, window)["verdict"] == "healthy: 1/1 instances ready, primary pg-1"


def test_server_name_defaults_to_the_cluster_name_and_disabled_plugins_do_not_archive() -> None:
    plugin = {**PLUGIN, "parameters": {"barmanObjectName": "pg-store"}}
    assert digest.archive_store(healthy(plugins=[plugin])) == ("pg-store", "pg")
    assert digest.archive_store(healthy(plugins=[{**plugin, "enabled": False}])) is None
    assert digest.archive_store(healthy(plugins=[{**plugin, "isWALArchiver": False}])) is None


def test_an_empty_window_is_a_problem_an_unreadable_store_is_not() -> None:
    cluster = healthy(plugins=[PLUGIN])
    empty = digest.recoverability(cluster, store())
    assert empty is not None and empty["note"] == "no completed backup in the store yet"
    summary = digest.digest(cluster, NOW, empty)
    assert summary["verdict"] == ("attention: no recoverability point: no completed backup in the store yet "
                                  "(point-in-time recovery is not possible yet)")
    assert summary["next_check"].startswith("the Backups of this cluster and the ObjectStore pg-store")
    missing = digest.recoverability(cluster, None)
    assert missing is not None and missing["note"] == "ObjectStore pg-store not found"
    unknown = digest.recoverability(cluster, None, unreadable="[FORBIDDEN] no right")
    assert unknown is not None and unknown["note"] == "cannot read the ObjectStore: [FORBIDDEN] no right"
    assert digest.digest(cluster, NOW, unknown)["problems"] == []


def test_in_tree_window_from_the_cluster_status_and_none_without_backups() -> None:
    cluster = healthy()
    assert digest.recoverability(cluster, None) is None
    cluster["status"].update(firstRecoverabilityPoint="2026-11-01T00:00:00Z",
                             lastSuccessfulBackup="2026-12-01T00:00:00Z")
    window = digest.recoverability(cluster, None)
    assert window is not None and window["source"] == "Cluster status (in-tree backup)"
    assert (window["first_recoverability_point"], window["last_successful_backup"]) == (
        "2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")


def pooler(name: str, cluster: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "prod"}, "spec": {"cluster": {"name": cluster}, **spec}}


def test_poolers_of_the_cluster_only_with_cnpg_defaults_and_no_password() -> None:
    found = pooler_endpoints([pooler("pg-ro", "pg", type="ro", pgbouncer={"poolMode": "transaction"}, instances=2),
                              pooler("other", "pg-other"), pooler("pg-rw", "pg")],
                             "pg", user="app", db="app", ca_file="pg-ca.crt")
    assert [(p["name"], p["type"], p["target"], p["pool_mode"], p["instances"]) for p in found] == [
        ("pg-ro", "ro", "the replicas only", "transaction", 2), ("pg-rw", "rw", "the primary", "session", None)]
    assert found[1]["uri"] == "postgresql://app@pg-rw.prod.svc:5432/app?sslmode=verify-full&sslrootcert=pg-ca.crt"
    info = connection_info(healthy(), [], role=None, database="orders", poolers=[pooler("pg-rw", "pg")])
    assert info["poolers"][0]["uri"].startswith("postgresql://app@pg-rw.prod.svc:5432/orders?")
    assert connection_info(healthy(), [], role=None, database=None)["poolers"] == []


def test_subscription_uris() -> None:
    assert status_uri("prod", "pg") == "cnpg://prod/pg/status"
    assert parse_status_uri("cnpg://prod/pg/status") == ("prod", "pg")
    for other in ("cnpg://prod/pg/logs", "cnpg://Prod/pg/status", "cnpg://prod/pg/status/x", "https://x/status"):
        assert parse_status_uri(other) is None


def test_simulated_instances_report_role_and_timeline_like_cnpg() -> None:
    cluster = {"metadata": {"name": "pg", "generation": 1}, "spec": {"instances": 2},
               "status": {"targetPrimary": "pg-2", "currentPrimary": "pg-1"}}
    status = simulated.cluster_status(cluster, roles_status=None, app_secret_version=None, blocked_reason=None,
                                      now="t")
    assert status["instancesReportedState"] == {"pg-1": {"isPrimary": False, "timeLineID": 1},
                                                "pg-2": {"isPrimary": True, "timeLineID": 1}}
    assert [(i["name"], i["role"], i["timeline"]) for i in digest.instances(status)] == [
        ("pg-1", "replica", 1), ("pg-2", "primary", 1)]


def test_a_backup_in_progress_is_not_a_failed_backup() -> None:
    # CNPG sets LastBackupSucceeded=False with reason BackupStarted while a backup runs (BackupStartingCondition),
    # and reason LastBackupFailed only when one failed.
    cluster = healthy()
    running = {"type": "LastBackupSucceeded", "status": "False", "reason": "BackupStarted",
               "message": "New Backup starting up"}
    cluster["status"]["conditions"] = [running]
    assert digest.digest(cluster, NOW)["problems"] == []
    cluster["status"]["conditions"] = [{**running, "reason": "LastBackupFailed", "message": "exit status 4"}]
    assert digest.digest(cluster, NOW)["problems"] == ["the last backup failed: exit status 4"]


class FakeMirror:
    def __init__(self, *_: Any, **__: Any) -> None:
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def test_watches_are_shared_per_namespace_released_with_the_last_subscription_and_bounded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscriptions, "Mirror", FakeMirror)
    gw = SimpleNamespace(kube=SimpleNamespace(custom=SimpleNamespace(list_namespaced_custom_object=None)))
    watches = subscriptions.ClusterWatches(cast(Any, gw), lambda namespace, name: None)
    watches.acquire("prod")
    watches.acquire("prod")
    first = watches._watches["prod"][0]
    watches.release("prod")
    assert not first.stopped  # one subscription still needs it
    watches.release("prod")
    assert first.stopped and "prod" not in watches._watches
    for index in range(subscriptions.MAX_WATCHED_NAMESPACES):
        watches.acquire(f"ns-{index}")
    with pytest.raises(MCPError, match="already watch 64 namespaces"):
        watches.acquire("one-too-many")
    watches.acquire("ns-0")  # an existing watch is shared, not a new one
    watches.stop()
