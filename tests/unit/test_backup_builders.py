"""Backups: the intent models, six-field cron, and the pure builders (ObjectStore, archiver entry,
Backup, ScheduledBackup, recovery Cluster) in the shape CNPG 1.30 and the Barman Cloud plugin accept."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from cnpg_mcp_api import constants, cron
from cnpg_mcp_api.models import PgBackupStoreRequestSpec, PgClusterRequestSpec
from cnpg_mcp_operator.builders.backup import (
    ArchiverConflict,
    archiver_entry,
    build_backup,
    build_object_store,
    build_scheduled_backup,
    plugins_with_archiver,
    plugins_without_archiver,
)
from cnpg_mcp_operator.builders.cluster import build_cluster

PLUGIN = "barman-cloud.cloudnative-pg.io"
STORE = {"destinationPath": "s3://backups/pg", "endpointURL": "http://minio:9000",
         "s3Credentials": {"secretName": "minio-creds"}, "cluster": "main-db"}


def intent(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "cnpg-mcp.io/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": "ns", "uid": "uid-1", "generation": 1}, "spec": spec}


class TestCron:
    def test_next_runs_of_a_daily_schedule(self) -> None:
        runs = cron.parse("0 30 2 * * *").next_runs(datetime(2026, 12, 2, 17, 0, tzinfo=UTC), 2)
        assert runs == [datetime(2026, 12, 3, 2, 30, tzinfo=UTC), datetime(2026, 12, 4, 2, 30, tzinfo=UTC)]

    def test_seconds_come_first(self) -> None:
        runs = cron.parse("*/20 * * * * *").next_runs(datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC), 3)
        assert [r.second for r in runs] == [20, 40, 0]

    def test_names_lists_ranges_and_steps(self) -> None:
        schedule = cron.parse("0 0 9-17/4 ? JAN,JUL MON-FRI")
        assert schedule.hours == {9, 13, 17} and schedule.months == {1, 7} and schedule.weekdays == {1, 2, 3, 4, 5}
        run = schedule.next_runs(datetime(2026, 12, 2, tzinfo=UTC), 1)[0]
        assert (run.month, run.isoweekday(), run.hour) == (1, 5, 9)  # Fri 1 Jan 2027, 09:00

    def test_both_day_fields_restricted_means_either(self) -> None:
        runs = cron.parse("0 0 0 1 * SUN").next_runs(datetime(2026, 11, 27, tzinfo=UTC), 2)
        assert [r.day for r in runs] == [29, 1]  # Sunday 29 Nov, then the 1st

    @pytest.mark.parametrize(("expression", "says"), [
        ("0 2 * * *", "add a seconds field first"),
        ("60 * * * * *", "second field: 60 is outside 0-59"),
        ("0 0 25 * * *", "hour field: 25 is outside 0-23"),
        ("0 0 0 * FOO *", "month field: 'FOO' is not a number or a name"),
        ("0 0 0 5-1 * *", "range 5-1 goes backwards"),
        ("0 */0 * * * *", "step '0' must be a positive number"),
        ("? * * * * *", "'?' is allowed only in the day fields"),
    ])
    def test_invalid_expressions_say_what_is_wrong(self, expression: str, says: str) -> None:
        with pytest.raises(cron.CronError, match=says.replace("*", r"\*").replace("?", r"\?")):
            cron.parse(expression)


class TestModels:
    def test_credentials_are_secret_references_only(self) -> None:
        with pytest.raises(ValidationError):
            PgBackupStoreRequestSpec.model_validate(
                {**STORE, "s3Credentials": {"accessKeyId": "AKIA...", "secretAccessKey": "hunter2"}})

    def test_restore_target_wire_names(self) -> None:
        spec = PgClusterRequestSpec.model_validate({"restoreFrom": {
            "cluster": "src", "store": "store", "target": {"name": "before-upgrade", "backupID": "2026"}}})
        assert spec.to_wire()["restoreFrom"]["target"] == {"name": "before-upgrade", "backupID": "2026"}


class TestObjectStore:
    def test_object_store_is_owned_and_holds_references_not_values(self) -> None:
        store = build_object_store(intent("PgBackupStoreRequest", "main-db-store", {**STORE, "retentionPolicy": "30d",
                                                                                   "wal": {"compression": "zstd"}}))
        assert store["apiVersion"] == "barmancloud.cnpg.io/v1" and store["kind"] == "ObjectStore"
        assert store["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        assert store["spec"] == {
            "configuration": {
                "destinationPath": "s3://backups/pg", "endpointURL": "http://minio:9000",
                "s3Credentials": {"accessKeyId": {"name": "minio-creds", "key": "ACCESS_KEY_ID"},
                                  "secretAccessKey": {"name": "minio-creds", "key": "ACCESS_SECRET_KEY"}},
                "wal": {"compression": "zstd"},
            },
            "retentionPolicy": "30d",
        }
        assert "serverName" not in store["spec"]["configuration"]  # forbidden by the plugin's CEL

    def test_inherited_and_other_providers(self) -> None:
        iam = build_object_store(intent("PgBackupStoreRequest", "s", {
            "destinationPath": "s3://b", "s3Credentials": {"inheritFromIAMRole": True}}))
        assert iam["spec"]["configuration"]["s3Credentials"] == {"inheritFromIAMRole": True}
        azure = build_object_store(intent("PgBackupStoreRequest", "s", {
            "destinationPath": "https://acct.blob.core.windows.net/c",
            "azureCredentials": {"secretName": "az", "connectionStringKey": "AZURE_CONNECTION_STRING"}}))
        assert azure["spec"]["configuration"]["azureCredentials"] == {
            "connectionString": {"name": "az", "key": "AZURE_CONNECTION_STRING"}}
        google = build_object_store(intent("PgBackupStoreRequest", "s", {
            "destinationPath": "gs://b", "googleCredentials": {"secretName": "gcs"}}))
        assert google["spec"]["configuration"]["googleCredentials"] == {
            "applicationCredentials": {"name": "gcs", "key": "credentials.json"}}


class TestArchiver:
    entry = archiver_entry("main-db-store", "main-db")

    def test_entry_names_the_plugin_store_and_server(self) -> None:
        assert self.entry == {"name": PLUGIN, "enabled": True, "isWALArchiver": True,
                              "parameters": {"barmanObjectName": "main-db-store", "serverName": "main-db"}}

    def test_added_beside_other_plugins_then_converged(self) -> None:
        other = {"name": "example.io/other", "parameters": {"a": "b"}}
        cluster = {"spec": {"plugins": [other]}}
        plugins = plugins_with_archiver(cluster, self.entry)
        assert plugins == [other, self.entry]
        assert plugins_with_archiver({"spec": {"plugins": plugins}}, self.entry) is None

    def test_in_tree_barman_object_store_is_refused(self) -> None:
        cluster = {"spec": {"backup": {"barmanObjectStore": {"destinationPath": "s3://old"}}}}
        with pytest.raises(ArchiverConflict, match=r"deprecated in-tree spec\.backup\.barmanObjectStore"):
            plugins_with_archiver(cluster, self.entry)

    def test_another_archiver_or_store_is_refused(self) -> None:
        with pytest.raises(ArchiverConflict, match="is the Cluster's WAL archiver"):
            plugins_with_archiver({"spec": {"plugins": [{"name": "x.io/y", "isWALArchiver": True}]}}, self.entry)
        with pytest.raises(ArchiverConflict, match="already archives into ObjectStore elsewhere"):
            plugins_with_archiver({"spec": {"plugins": [archiver_entry("elsewhere", "main-db")]}}, self.entry)

    def test_removal_takes_only_our_entry(self) -> None:
        other = {"name": "example.io/other"}
        cluster = {"spec": {"plugins": [other, self.entry]}}
        assert plugins_without_archiver(cluster, "main-db-store") == [other]
        assert plugins_without_archiver({"spec": {"plugins": [other]}}, "main-db-store") is None


class TestBackup:
    def test_method_and_plugin_are_always_set_and_the_backup_is_owned(self) -> None:
        backup = build_backup(intent("PgBackupRequest", "nightly-1", {"cluster": "main-db"}))
        assert backup["spec"] == {"cluster": {"name": "main-db"}, "method": "plugin",
                                  "pluginConfiguration": {"name": PLUGIN}}
        assert backup["metadata"]["ownerReferences"][0]["uid"] == "uid-1"  # TTL cleanup orphans it
        assert backup["metadata"]["labels"][constants.CNPG_CLUSTER_LABEL] == "main-db"

    def test_volume_snapshot(self) -> None:
        backup = build_backup(intent("PgBackupRequest", "b", {"cluster": "c", "method": "volumeSnapshot",
                                                               "online": False, "target": "primary"}))
        assert backup["spec"] == {"cluster": {"name": "c"}, "method": "volumeSnapshot", "online": False,
                                  "target": "primary"}

    def test_scheduled_backup(self) -> None:
        scheduled = build_scheduled_backup(intent("PgBackupScheduleRequest", "daily", {
            "cluster": "main-db", "schedule": "0  0 2 * * *", "immediate": True}))
        assert scheduled["kind"] == "ScheduledBackup"
        assert scheduled["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
        assert scheduled["spec"] == {"cluster": {"name": "main-db"}, "schedule": "0 0 2 * * *", "suspend": False,
                                     "immediate": True, "backupOwnerReference": "none", "method": "plugin",
                                     "pluginConfiguration": {"name": PLUGIN}}


class TestRecoveryCluster:
    def test_restore_uses_source_and_the_external_cluster_plugin_form(self) -> None:
        cluster = build_cluster(intent("PgClusterRequest", "main-db-restored", {"instances": 1, "restoreFrom": {
            "cluster": "main-db", "store": "main-db-store",
            "target": {"time": "2026-12-02T17:00:00Z", "exclusive": True}}}))
        assert cluster["spec"]["bootstrap"] == {"recovery": {
            "source": "main-db", "recoveryTarget": {"targetTime": "2026-12-02T17:00:00Z", "exclusive": True}}}
        assert cluster["spec"]["externalClusters"] == [{"name": "main-db", "plugin": {
            "name": PLUGIN, "parameters": {"barmanObjectName": "main-db-store", "serverName": "main-db"}}}]
        assert "backup" not in cluster["spec"]["bootstrap"]["recovery"]  # recovery.backup.name fails for plugins

    def test_restore_of_a_renamed_server_with_the_app_database(self) -> None:
        cluster = build_cluster(intent("PgClusterRequest", "r", {
            "bootstrap": {"database": "shop", "owner": "shop"},
            "restoreFrom": {"cluster": "src", "store": "st", "serverName": "src-v2",
                            "target": {"lsn": "0/3000060"}}}))
        assert cluster["spec"]["bootstrap"] == {"recovery": {
            "source": "src", "recoveryTarget": {"targetLSN": "0/3000060"}, "database": "shop", "owner": "shop"}}
        assert cluster["spec"]["externalClusters"][0]["plugin"]["parameters"]["serverName"] == "src-v2"
