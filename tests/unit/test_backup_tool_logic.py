"""The backups toolset's pure logic (mcp_gateway/backup_intents.py): credentials by reference only,
cron checked and explained, restore targets, the recoverability window in words, list entries."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from mcp_gateway import backup_intents as bi

NOW = datetime(2026, 12, 2, 22, 10, 0, tzinfo=UTC)


def refused(call: object, *args: object, **kwargs: object) -> str:
    with pytest.raises(ToolError) as excinfo:
        call(*args, **kwargs)  # type: ignore[operator]
    message = str(excinfo.value)
    assert message.startswith("[INVALID_ARGUMENT]"), message
    return message


def test_credentials_are_a_secret_name_and_key_names_only() -> None:
    assert bi.credentials("s3", "minio", None, False) == {"secretName": "minio"}
    assert bi.credentials("s3", "minio", {"accessKeyId": "ID", "region": "REGION"}, False) == {
        "secretName": "minio", "accessKeyIdKey": "ID", "regionKey": "REGION"}
    assert bi.credentials("azure", "az", None, False) == {"secretName": "az",
                                                          "connectionStringKey": "AZURE_CONNECTION_STRING"}
    assert bi.credentials("google", None, None, True) == {"gkeEnvironment": True}
    assert bi.credentials("s3", None, None, True) == {"inheritFromIAMRole": True}


def test_a_credential_value_or_an_unknown_key_is_refused_without_echoing_it() -> None:
    value = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
    message = refused(bi.credentials, "s3", "minio", {"secretAccessKey": value}, False)
    assert "never a credential value" in message and value not in message
    assert "unknown key(s) password" in refused(bi.credentials, "s3", "minio", {"password": "x"}, False)
    assert "credentials_secret" in refused(bi.credentials, "s3", None, None, False)
    assert "excludes" in refused(bi.credentials, "s3", "minio", None, True)


def test_store_update_patch_replaces_the_whole_configuration() -> None:
    current = {"cluster": "db", "destinationPath": "s3://a", "s3Credentials": {"secretName": "x"},
               "retentionPolicy": "30d"}
    desired = bi.store_spec(cluster="db", destination_path="s3://a", endpoint_url=None, provider="google",
                            creds={"secretName": "gcs"}, retention_policy="30d", wal_compression="zstd")
    assert bi.store_update_patch(current, desired) == {"spec": {
        "s3Credentials": None, "googleCredentials": desired["googleCredentials"], "wal": {"compression": "zstd"}}}
    assert bi.store_update_patch(desired, desired) == {}


def test_schedule_is_six_fields_checked_with_next_runs_in_words() -> None:
    assert "add a seconds field first" in refused(bi.checked_schedule, "0 2 * * *")
    assert "hour field: 25 is outside 0-23" in refused(bi.checked_schedule, "0 0 25 * * *")
    runs = bi.next_runs(bi.checked_schedule("0 0 2 * * *"), NOW)
    assert runs == ["2026-12-03T02:00:00Z", "2026-12-04T02:00:00Z", "2026-12-05T02:00:00Z"]
    assert bi.runs_text(runs[:1], NOW) == "  - Thu 2026-12-03 02:00:00 UTC (in 3h 50m)"
    assert bi.humane_delay(2 * 86400 + 3600 + 5) == "in 2d 1h" and bi.humane_delay(42) == "in 42s"


def test_recovery_target_one_kind_normalised_time_and_backup_id_rules() -> None:
    assert bi.recovery_target(target_time=None, target_lsn=None, target_name=None, backup_id=None,
                              exclusive=True) is None  # latest: exclusive means nothing without a target
    assert bi.recovery_target(target_time="2026-12-02T17:00:00+01:00", target_lsn=None, target_name=None,
                              backup_id=None, exclusive=None) == {"time": "2026-12-02T16:00:00Z"}
    assert bi.recovery_target(target_time="2026-12-02 17:00:00", target_lsn=None, target_name=None,
                              backup_id=None, exclusive=None) == {"time": "2026-12-02T17:00:00Z"}  # UTC, as CNPG
    assert "at most one" in refused(bi.recovery_target, target_time="2026-12-02T17:00:00Z", target_lsn="0/3",
                                    target_name=None, backup_id=None, exclusive=None)
    assert "needs backup_id" in refused(bi.recovery_target, target_time=None, target_lsn=None, target_name="p",
                                        backup_id=None, exclusive=None)
    assert "RFC 3339" in refused(bi.recovery_target, target_time="yesterday", target_lsn=None, target_name=None,
                                 backup_id=None, exclusive=None)


def test_restore_intent_names_the_store_and_only_a_different_server_name() -> None:
    body = bi.restore_intent("copy", "prod", source="db", store="db-store", server_name="db",
                             target={"time": "2026-12-02T16:00:00Z"}, instances=1, storage_size="5Gi",
                             postgres_version=None, image_name="ghcr.io/cloudnative-pg/postgresql:17.2",
                             requested_by="alice")
    assert body["spec"]["restoreFrom"] == {"cluster": "db", "store": "db-store",
                                           "target": {"time": "2026-12-02T16:00:00Z"}}
    assert body["spec"]["imageName"] == "ghcr.io/cloudnative-pg/postgresql:17.2"
    other = bi.restore_intent("copy", "prod", source="db", store="s", server_name="db-v2", target=None, instances=1,
                              storage_size="5Gi", postgres_version="16", image_name="ignored", requested_by=None)
    assert other["spec"]["restoreFrom"] == {"cluster": "db", "store": "s", "serverName": "db-v2"}
    assert other["spec"]["postgresVersion"] == "16" and "imageName" not in other["spec"]


def test_window_in_words() -> None:
    assert bi.window_text("db", {}) == 'no completed backup of server "db" yet: nothing to restore from'
    assert bi.window_text("db", {"firstRecoverabilityPoint": "A", "lastSuccessfulBackupTime": "B",
                                 "lastFailedBackupTime": "C"}) == (
        "you can restore to any time between A and now (last successful backup B); last FAILED backup C")


def test_archiver_and_in_tree_store_are_read_from_the_cluster() -> None:
    cluster = {"metadata": {"name": "db"}, "spec": {"plugins": [
        {"name": "other.io/x", "isWALArchiver": False},
        {"name": "barman-cloud.cloudnative-pg.io", "isWALArchiver": True,
         "parameters": {"barmanObjectName": "db-store"}}]}}
    assert bi.archiver_of(cluster) == ("db-store", "db")
    assert bi.archiver_of({"metadata": {"name": "db"}, "spec": {}}) is None and bi.archiver_of(None) is None
    assert bi.in_tree_store({"spec": {"backup": {"barmanObjectStore": {"destinationPath": "s3://x"}}}})
    assert not bi.in_tree_store(cluster)


def test_list_entries_from_cnpg_objects_or_their_requests() -> None:
    backup = {"metadata": {"name": "b1", "labels": {"cnpg.io/scheduled-backup": "nightly"}},
              "spec": {"method": "plugin"},
              "status": {"phase": "completed", "startedAt": "S", "stoppedAt": "E", "backupId": "20261202T1"}}
    entry = bi.backup_entry(backup, None)
    assert (entry["phase"], entry["backup_id"], entry["scheduled_by"]) == ("completed", "20261202T1", "nightly")
    assert bi.backup_row(entry) == "- b1: completed (plugin, S → E, backupId 20261202T1) (schedule nightly)"
    requested = bi.backup_entry(None, {"metadata": {"name": "b2"}, "spec": {"cluster": "db"}})
    assert requested["phase"] == "requested" and requested["request"] == "b2"
    suspended = bi.schedule_entry(None, {"metadata": {"name": "s"}, "spec": {"schedule": "0 0 2 * * *",
                                                                          "suspend": True}}, NOW)
    assert suspended["next_runs"] == [] and bi.schedule_row(suspended, NOW).endswith("SUSPENDED")
    active = bi.schedule_entry({"metadata": {"name": "s"}, "spec": {"schedule": "0 0 2 * * *"},
                                "status": {"nextScheduleTime": "2026-12-03T02:00:00Z"}}, None, NOW)
    assert active["next_runs"][0] == "2026-12-03T02:00:00Z" and "(in 3h 50m)" in bi.schedule_row(active, NOW)
