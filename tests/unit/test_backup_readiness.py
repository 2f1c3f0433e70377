"""Pure backup state: what CNPG/the plugin report as intent verdicts, restore refusals, and the
simulator's pure choices (archiver entry, backup to restore, names, scheduled Backup bodies)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from cnpg_mcp_api.models import RestoreFromSpec
from cnpg_mcp_operator.backup_readiness import (
    backup_status_fields,
    backup_verdict,
    recovery_window,
    restore_refusal,
    scheduled_backup_verdict,
    store_verdict,
)
from devcluster.simulator import backups as sim_backups
from devcluster.simulator import recovery as sim_recovery
from devcluster.simulator.scheduled_backups import backup_body

NOW = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)


def obj(name: str, spec: dict[str, Any] | None = None, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}"}, "spec": spec or {},
            "status": status or {}}


def store(windows: dict[str, Any]) -> dict[str, Any]:
    return obj("st", status={"serverRecoveryWindow": windows})


class TestVerdicts:
    def test_backup_phases(self) -> None:
        assert backup_verdict(None).reason == "Pending"
        assert backup_verdict(obj("b", status={"phase": "running"})).message == "Backup b: running"
        done = backup_verdict(obj("b", status={"phase": "completed", "backupId": "20261202T100000"}))
        assert (done.ready, done.reason) == (True, "Completed") and "20261202T100000" in done.message
        failed = backup_verdict(obj("b", status={"phase": "failed", "error": "bucket not found"}))
        assert (failed.ready, failed.reason, failed.message) == (False, "Failed", "Backup b failed: bucket not found")
        assert backup_verdict(obj("b", status={"phase": "walArchivingFailing"})).reason == "Pending"

    def test_backup_fields_mirrored_under_our_names(self) -> None:
        fields = backup_status_fields(obj("b", status={"phase": "completed", "backupId": "x", "startedAt": "t0",
                                                       "destinationPath": "s3://never-mirrored"}))
        assert fields == {"phase": "completed", "backupID": "x", "startedAt": "t0"}

    def test_schedule(self) -> None:
        assert scheduled_backup_verdict(obj("s"), suspended=False).reason == "Pending"  # CNPG has not looked yet
        active = scheduled_backup_verdict(obj("s", status={"lastCheckTime": "t", "nextScheduleTime": "n"}), False)
        assert active.ready and "next backup n" in active.message
        assert "suspended" in scheduled_backup_verdict(obj("s", status={"lastCheckTime": "t"}), True).message

    def test_store_needs_cnpg_to_report_archiving(self) -> None:
        cluster = obj("pg")
        assert store_verdict(obj("st"), None, None, archiving=False).ready  # a store alone
        assert store_verdict(obj("st"), "pg", None, archiving=False).reason == "ClusterNotFound"
        assert store_verdict(obj("st"), "pg", cluster, archiving=True).reason == "Pending"
        cluster["status"] = {"conditions": [{"type": "ContinuousArchiving", "status": "False",
                                             "message": "unexpected failure invoking barman-cloud-wal-archive"}]}
        blocked = store_verdict(obj("st"), "pg", cluster, archiving=True)
        assert blocked.reason == "Blocked" and "barman-cloud-wal-archive" in blocked.message
        cluster["status"]["conditions"][0]["status"] = "True"
        assert store_verdict(obj("st"), "pg", cluster, archiving=True).ready

    def test_window_of_one_server(self) -> None:
        windows = {"pg": {"firstRecoverabilityPoint": "a", "lastSuccessfulBackupTime": "b"}, "other": {}}
        assert recovery_window(store(windows), "pg") == {"firstRecoverabilityPoint": "a",
                                                         "lastSuccessfulBackupTime": "b"}
        assert recovery_window(store(windows), "nope") == {}


WINDOW = {"pg": {"firstRecoverabilityPoint": "2026-12-01T10:00:00Z"}}
BACKUPS = [sim_backups.CataloguedBackup("B1", "shop", "snap1", datetime(2026, 12, 2, 10, tzinfo=UTC)),
           sim_backups.CataloguedBackup("B2", "shop", "snap2", datetime(2026, 12, 2, 12, tzinfo=UTC))]


class TestRestoreRefusal:

    def refusal(self, spec: dict[str, Any], st: dict[str, Any] | None) -> str | None:
        verdict = restore_refusal(RestoreFromSpec.model_validate(spec), st, "ns", NOW)
        return None if verdict is None else verdict.message

    def test_inside_the_window_or_latest(self) -> None:
        assert self.refusal({"cluster": "pg", "store": "st"}, store(WINDOW)) is None
        assert self.refusal({"cluster": "pg", "store": "st", "target": {"time": "2026-12-02T17:00:00Z"}},
                            store(WINDOW)) is None
        assert self.refusal({"cluster": "pg", "store": "st", "target": {"time": "2026-12-02 17:00:00"}},
                            store(WINDOW)) is None  # no zone: UTC, as CNPG reads it

    def test_outside_the_window(self) -> None:
        for when in ("2026-12-01T09:59:59Z", "2026-12-02T18:00:01Z"):
            message = self.refusal({"cluster": "pg", "store": "st", "target": {"time": when}}, store(WINDOW))
            assert message == (f'target time {when} is outside the recoverability window of server "pg": '
                               "you can restore to any time between 2026-12-01T10:00:00Z and now")

    def test_nothing_to_restore_from(self) -> None:
        assert self.refusal({"cluster": "pg", "store": "st"}, None) == 'ObjectStore "st" not found in ns'
        assert "no completed backup of server \"pg-v2\"" in str(
            self.refusal({"cluster": "pg", "store": "st", "serverName": "pg-v2"}, store(WINDOW)))


class TestSimulatorChoices:

    def test_choose_backup(self) -> None:
        choose = sim_recovery.choose_backup
        assert choose(BACKUPS, {}) == BACKUPS[1]
        assert choose(BACKUPS, {"targetTime": "2026-12-02T11:00:00Z"}) == BACKUPS[0]
        assert choose(BACKUPS, {"targetTime": "2026-12-02T12:00:00Z"}) == BACKUPS[1]
        assert choose(BACKUPS, {"backupID": "B1", "targetName": "x"}) == BACKUPS[0]
        assert "no backup ended before" in str(choose(BACKUPS, {"targetTime": "2026-12-02T09:00:00Z"}))
        assert choose([], {}) == "no backup found"

    def test_restored_database_name_fits(self) -> None:
        assert sim_recovery.restored_database_name("shop", "pg-restored") == "shop__pg-restored"
        long = sim_recovery.restored_database_name("d" * 60, "c" * 50)
        assert len(long.encode()) <= 63 and long != sim_recovery.restored_database_name("d" * 60, "c" * 49)

    def test_recovery_source_and_archiver(self) -> None:
        plugin = {"name": "barman-cloud.cloudnative-pg.io", "parameters": {"barmanObjectName": "st"}}
        cluster = obj("r", {"bootstrap": {"recovery": {"source": "pg"}}, "externalClusters": [
            {"name": "pg", "plugin": plugin}]})
        assert sim_recovery.recovery_source(cluster) == ("st", "pg")
        assert "no Barman Cloud plugin" in str(sim_recovery.recovery_source(
            obj("r", {"bootstrap": {"recovery": {"source": "pg"}}})))
        archiving = obj("pg", {"plugins": [{**plugin, "isWALArchiver": True}]})
        assert sim_backups.archiver(archiving) == ("st", "pg")
        assert sim_backups.archiver(obj("pg", {"plugins": [plugin]})) is None  # not the WAL archiver

    def test_scheduled_backup_body(self) -> None:
        scheduled = {**obj("daily", {"cluster": {"name": "pg"}, "method": "plugin", "backupOwnerReference": "self",
                                     "pluginConfiguration": {"name": "barman-cloud.cloudnative-pg.io"}}),
                     "apiVersion": "postgresql.cnpg.io/v1", "kind": "ScheduledBackup"}
        body = backup_body(scheduled, None, datetime(2026, 12, 3, 2, tzinfo=UTC), immediate=False)
        assert body["metadata"]["name"] == "daily-20261203020000"
        assert body["metadata"]["labels"] == {"cnpg.io/scheduled-backup": "daily", "cnpg.io/cluster": "pg"}
        assert body["metadata"]["ownerReferences"][0]["kind"] == "ScheduledBackup"
        assert body["spec"] == {"cluster": {"name": "pg"}, "method": "plugin",
                                "pluginConfiguration": {"name": "barman-cloud.cloudnative-pg.io"}}
