"""The backups toolset through a real MCP client: the real control plane, the real operator, the CNPG
simulator playing CNPG and the Barman Cloud plugin, and the real PostgreSQL server.

Configure a store, back up on demand (wait, progress), schedule (next runs), list (the window), restore
to a time inside the window (the restored database has the row written before the target and not the
one written after), refuse targets outside it and a cluster on the in-tree barmanObjectStore, writing
nothing, and never show a credential.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

import anyio
import pytest
from kubernetes import client
from mcp import Client
from mcp.types import CallToolResult

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from devcluster.simulator.recovery import restored_database_name
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import error, gateway_server, live_cluster, ok, text
from tests.integration.test_operator_backups import BACKUP_KIND, BARMAN, CNPG, SCHEDULE_KIND, STORE_KIND, get
from tests.integration.test_operator_roles import make_cluster, unique, wait_until
from tests.integration.test_simulator_backups import rows, write_row

CLUSTER_KIND = "PgClusterRequest"
CREDENTIALS = "minio-creds"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gateway(control_plane: ControlPlane, operator: OperatorProcess, cnpg_simulator: Any) -> Any:
    return gateway_server(control_plane)


@pytest.fixture
def credential_values(k8s: Any, namespace: str) -> list[str]:
    """A real Secret with credential values the tools must never show (they only name it)."""
    values = [f"AKIA{secrets.token_hex(8).upper()}", secrets.token_urlsafe(24)]
    client.CoreV1Api(k8s).create_namespaced_secret(namespace, {
        "metadata": {"name": CREDENTIALS},
        "stringData": {"ACCESS_KEY_ID": values[0], "ACCESS_SECRET_KEY": values[1]}})
    return values


class Answers:
    """Every answer the tests saw, to check that no credential value ever appeared in one."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, answer: CallToolResult) -> CallToolResult:
        self.seen.append(text(answer) + repr(answer.structured_content))
        return answer

    def assert_never_shown(self, values: list[str]) -> None:
        assert self.seen
        for value in values:
            assert not any(value in answer for answer in self.seen), "a credential value reached a tool answer"


def configure(namespace: str, cluster: str) -> dict[str, Any]:
    return {"cluster_name": cluster, "destination_path": "s3://backups/pg", "endpoint_url": "http://minio:9000",
            "credentials_secret": CREDENTIALS, "retention_policy": "30d", "namespace": namespace}


@pytest.mark.anyio
async def test_backup_schedule_list_and_point_in_time_restore_through_mcp(
        gateway: Any, k8s: Any, postgres: Any, namespace: str, intents: Intents,
        credential_values: list[str]) -> None:
    database = unique("shop_")
    cluster = make_cluster(intents, namespace, bootstrap={"database": database, "owner": database})
    answers = Answers()
    updates: list[str | None] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append(message)

    async with Client(gateway) as mcp:
        # configure: dry run writes nothing; then the store and WAL archiving, confirmed by CNPG
        preview = ok(answers(await mcp.call_tool("configure_postgres_backups", {
            **configure(namespace, cluster), "dry_run": True})))
        assert preview["dry_run"] is True and intents.list_all(STORE_KIND, namespace) == []
        configured = ok(answers(await mcp.call_tool("configure_postgres_backups", configure(namespace, cluster))))
        assert configured["action"] == "created" and configured["archiving"] is True, configured
        assert configured["state"]["ready"] is True
        assert configured["spec"]["s3Credentials"] == {"secretName": CREDENTIALS, "accessKeyIdKey": "ACCESS_KEY_ID",
                                                       "secretAccessKeyKey": "ACCESS_SECRET_KEY"}
        store = configured["store"].split("/")[1]
        again = ok(answers(await mcp.call_tool("configure_postgres_backups", configure(namespace, cluster))))
        assert again["action"] == "unchanged" and again["store"] == configured["store"]  # idempotent
        changed = ok(answers(await mcp.call_tool("configure_postgres_backups", {
            **configure(namespace, cluster), "retention_policy": "60d"})))
        assert changed["action"] == "updated" and changed["spec"]["retentionPolicy"] == "60d"
        wait_until(lambda: (get(k8s, BARMAN, namespace, "objectstores", store) or {})["spec"].get(
            "retentionPolicy") == "60d", "the ObjectStore follows the request")
        live = live_cluster(k8s, namespace, cluster) or {}
        assert live["spec"]["plugins"][0]["parameters"] == {"barmanObjectName": store, "serverName": cluster}

        # nothing to restore from yet: refused before anything is written
        early = answers(await mcp.call_tool("restore_postgres_cluster", {
            "name": "too-early", "source_cluster": cluster, "namespace": namespace}))
        assert "has no completed backup" in error(early, "NOT_RECOVERABLE")
        assert intents.get(CLUSTER_KIND, namespace, "too-early") is None

        # on-demand backup, waiting with progress until CNPG reports it completed
        write_row(postgres, database, "before-target")
        started = time.monotonic()
        backup = ok(answers(await mcp.call_tool("create_postgres_backup", {
            "cluster_name": cluster, "wait": True, "timeout": 60, "namespace": namespace},
            progress_callback=on_progress)))
        print(f"create_postgres_backup(wait) → completed in {time.monotonic() - started:.1f}s")
        assert backup["phase"] == "completed" and backup["finished"] is True and backup["backup_id"], backup
        assert updates and all(backup["backup"] in (m or "") for m in updates)  # progress notifications
        cnpg_backup = get(k8s, CNPG, namespace, "backups", backup["backup"]) or {}
        assert cnpg_backup["status"]["phase"] == "completed"  # the real phase, as CNPG (the simulator) reports
        assert cnpg_backup["spec"]["method"] == "plugin"

        # schedule: six-field cron checked first (nothing written on a bad one), next runs in words
        bad = answers(await mcp.call_tool("schedule_postgres_backup", {
            "cluster_name": cluster, "schedule": "0 2 * * *", "namespace": namespace}))
        assert "add a seconds field first" in error(bad, "INVALID_ARGUMENT")
        assert intents.list_all(SCHEDULE_KIND, namespace) == []
        scheduled = answers(await mcp.call_tool("schedule_postgres_backup", {
            "cluster_name": cluster, "schedule": "0 0 2 * * *", "namespace": namespace}))
        schedule = ok(scheduled)
        assert schedule["action"] == "created" and len(schedule["next_runs"]) == 3
        assert all(run.endswith("T02:00:00Z") for run in schedule["next_runs"])
        assert "Next runs (UTC):" in text(scheduled) and " 02:00:00 UTC (in " in text(scheduled)
        intents.wait_ready(SCHEDULE_KIND, namespace, schedule["schedule_name"])

        # list: the backup with its phase, the schedule with next runs, the window in words
        listed = answers(await mcp.call_tool("list_postgres_backups", {"cluster_name": cluster,
                                                                       "namespace": namespace}))
        listing = ok(listed)
        first = listing["window"]["first_recoverability_point"]
        assert first == cnpg_backup["status"]["stoppedAt"]
        assert f"you can restore to any time between {first} and now" in text(listed)
        entry = next(b for b in listing["backups"] if b["name"] == backup["backup"])
        assert (entry["phase"], entry["method"], entry["backup_id"]) == ("completed", "plugin", backup["backup_id"])
        assert entry["started_at"] and entry["stopped_at"]
        assert [s["name"] for s in listing["schedules"]] == [schedule["schedule_name"]]
        assert listing["schedules"][0]["next_runs"] == schedule["next_runs"]
        assert listing["store"] == store and listing["archiving"] is True

        # pause and resume: the same tool, the ScheduledBackup follows
        paused = answers(await mcp.call_tool("schedule_postgres_backup", {
            "cluster_name": cluster, "schedule": "0 0 2 * * *", "suspend": True, "namespace": namespace}))
        assert (ok(paused)["action"], ok(paused)["next_runs"]) == ("updated", []) and "SUSPENDED" in text(paused)
        wait_until(lambda: (get(k8s, CNPG, namespace, "scheduledbackups", schedule["schedule_name"]) or {})
                   ["spec"].get("suspend") is True, "ScheduledBackup suspended")
        resumed = ok(answers(await mcp.call_tool("schedule_postgres_backup", {
            "cluster_name": cluster, "schedule": "0 0 2 * * *", "namespace": namespace})))
        assert resumed["action"] == "updated" and len(resumed["next_runs"]) == 3

        # a target outside the window is refused with the window, nothing written
        for name, target in (("before-window", "2020-01-01T00:00:00Z"), ("future", "2999-01-01T00:00:00Z")):
            refused = error(answers(await mcp.call_tool("restore_postgres_cluster", {
                "name": name, "source_cluster": cluster, "target_time": target, "namespace": namespace})),
                "NOT_RECOVERABLE")
            assert f"you can restore to any time between {first} and now" in refused
            assert intents.get(CLUSTER_KIND, namespace, name) is None and live_cluster(k8s, namespace, name) is None

        # restore to a time inside the window: dry run shows the recovery Cluster, then the real one
        target = cnpg_backup["status"]["stoppedAt"]
        await anyio.sleep(1.1)  # status times have whole seconds: the next row is after the target
        write_row(postgres, database, "after-target")
        restored = f"{cluster}-restored"
        arguments = {"name": restored, "source_cluster": cluster, "target_time": target, "namespace": namespace}
        dry = ok(answers(await mcp.call_tool("restore_postgres_cluster", {**arguments, "dry_run": True})))
        recovery = dry["cluster_manifest"]["spec"]
        assert recovery["bootstrap"] == {"recovery": {"source": cluster, "recoveryTarget": {"targetTime": target}}}
        assert recovery["externalClusters"] == [{"name": cluster, "plugin": {
            "name": constants.BARMAN_PLUGIN_NAME, "parameters": {"barmanObjectName": store, "serverName": cluster}}}]
        assert intents.get(CLUSTER_KIND, namespace, restored) is None
        started = time.monotonic()
        done = ok(answers(await mcp.call_tool("restore_postgres_cluster", {**arguments, "wait": True,
                                                                           "timeout": 120})))
        print(f"restore_postgres_cluster(wait) → healthy in {time.monotonic() - started:.1f}s")
        assert done["ready"] is True and done["cluster_created"] is True, done
        assert (live_cluster(k8s, namespace, restored) or {})["status"]["phase"] == constants.CNPG_HEALTHY_PHASE
        assert rows(postgres, restored_database_name(database, restored)) == {"before-target"}
        assert rows(postgres, database) == {"before-target", "after-target"}

        # delete the schedule: the ScheduledBackup goes, the Backup taken on demand stays
        deleted = ok(answers(await mcp.call_tool("delete_postgres_backup_schedule", {
            "cluster_name": cluster, "namespace": namespace})))
        assert deleted["deleted"] is True and deleted["backups_kept"] is True
        intents.wait_gone(SCHEDULE_KIND, namespace, schedule["schedule_name"])
        assert get(k8s, CNPG, namespace, "backups", backup["backup"]) is not None

    answers.assert_never_shown(credential_values)


@pytest.mark.anyio
async def test_in_tree_barman_object_store_is_refused_writing_nothing(
        gateway: Any, k8s: Any, namespace: str, intents: Intents, credential_values: list[str]) -> None:
    cluster = make_cluster(intents, namespace)
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(*CNPG, namespace, "clusters", cluster, {
        "spec": {"backup": {"barmanObjectStore": {"destinationPath": "s3://old/path", "s3Credentials": {
            "accessKeyId": {"name": CREDENTIALS, "key": "ACCESS_KEY_ID"},
            "secretAccessKey": {"name": CREDENTIALS, "key": "ACCESS_SECRET_KEY"}}}}}})
    answers = Answers()
    async with Client(gateway) as mcp:
        refused = error(answers(await mcp.call_tool("configure_postgres_backups", configure(namespace, cluster))),
                        "CONFLICT")
        assert "deprecated in-tree spec.backup.barmanObjectStore" in refused
        backup = error(answers(await mcp.call_tool("create_postgres_backup", {
            "cluster_name": cluster, "namespace": namespace})), "CONFLICT")
        assert "in-tree" in backup
        schedule = error(answers(await mcp.call_tool("schedule_postgres_backup", {
            "cluster_name": cluster, "schedule": "0 0 2 * * *", "namespace": namespace})), "CONFLICT")
        assert "in-tree" in schedule
    for kind in (STORE_KIND, BACKUP_KIND, SCHEDULE_KIND):
        assert intents.list_all(kind, namespace) == [], kind
    assert "plugins" not in (live_cluster(k8s, namespace, cluster) or {})["spec"]
    answers.assert_never_shown(credential_values)


@pytest.mark.anyio
async def test_plugin_backup_without_a_store_and_bad_arguments_are_refused(
        gateway: Any, k8s: Any, namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    async with Client(gateway) as mcp:
        no_store = error(await mcp.call_tool("create_postgres_backup", {
            "cluster_name": cluster, "namespace": namespace}), "CONFLICT")
        assert "configure_postgres_backups first" in no_store
        # A backup CNPG fails is reported failed, with CNPG's error, never as taken: here the archiver entry
        # (written with kubectl, not through cnpg-mcp) names an ObjectStore that does not exist.
        client.CustomObjectsApi(k8s).patch_namespaced_custom_object(*CNPG, namespace, "clusters", cluster, {
            "spec": {"plugins": [{"name": constants.BARMAN_PLUGIN_NAME, "isWALArchiver": True,
                                  "parameters": {"barmanObjectName": "ghost", "serverName": cluster}}]}})
        failed = await mcp.call_tool("create_postgres_backup", {
            "cluster_name": cluster, "backup_name": "doomed", "wait": True, "timeout": 30, "namespace": namespace})
        report = ok(failed)
        assert (report["phase"], report["finished"]) == ("failed", True), (report, text(failed))
        assert "ObjectStore ghost not found" in report["error"] and "FAILED" in text(failed)
        two = error(await mcp.call_tool("restore_postgres_cluster", {
            "name": "two-targets", "source_cluster": cluster, "target_time": "2026-01-01T00:00:00Z",
            "target_lsn": "0/3000060", "namespace": namespace}), "INVALID_ARGUMENT")
        assert "at most one" in two
        value = error(await mcp.call_tool("configure_postgres_backups", {
            **configure(namespace, cluster), "credential_keys": {"secretAccessKey": "wJalr/K7MDENG+bPxRfiCY"}}),
            "INVALID_ARGUMENT")
        assert "never a credential value" in value and "wJalr" not in value
    for kind, names in ((STORE_KIND, []), (BACKUP_KIND, ["doomed"]), (CLUSTER_KIND, [cluster])):
        assert [o["metadata"]["name"] for o in intents.list_all(kind, namespace)] == names, kind


async def volume_snapshot_backup(gateway: Any, namespace: str, intents: Intents) -> CallToolResult:
    """CNPG's webhook refuses a volumeSnapshot Backup here (no VolumeSnapshot CRD in the control plane)."""
    cluster = make_cluster(intents, namespace)
    async with Client(gateway) as mcp:
        return await mcp.call_tool("create_postgres_backup", {
            "cluster_name": cluster, "method": "volumeSnapshot", "wait": True, "timeout": 15,
            "namespace": namespace})


@pytest.mark.anyio
async def test_a_backup_refused_by_cnpgs_webhook_is_not_claimed(gateway: Any, namespace: str,
                                                               intents: Intents) -> None:
    answer = await volume_snapshot_backup(gateway, namespace, intents)
    report = ok(answer)
    assert report["phase"] is None and report["finished"] is False
    assert "NOT taken" in text(answer) and "COMPLETED" not in text(answer)


@pytest.mark.anyio
async def test_a_backup_refused_by_cnpgs_webhook_is_reported_with_the_reason(gateway: Any, namespace: str,
                                                                             intents: Intents) -> None:
    answer = await volume_snapshot_backup(gateway, namespace, intents)
    assert "missing VolumeSnapshot CRD" in text(answer), text(answer)
