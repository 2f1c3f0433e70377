"""The API server refuses invalid backup intents (CRD schema + CEL) with a message that says why."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import KINDS

PLURAL = {kind.kind: kind.plural for kind in KINDS}
STORE = {"destinationPath": "s3://backups/pg", "s3Credentials": {"secretName": "creds"}}


def create(k8s: Any, namespace: str, kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    body = {"apiVersion": constants.API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}
    created: dict[str, Any] = client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        constants.GROUP, constants.VERSION, namespace, PLURAL[kind], body)
    return created


@pytest.mark.parametrize(("kind", "spec", "expected"), [
    ("PgBackupStoreRequest", {"destinationPath": "s3://b"}, "set exactly one of s3Credentials"),
    ("PgBackupStoreRequest", {**STORE, "googleCredentials": {"gkeEnvironment": True}},
     "set exactly one of s3Credentials"),
    ("PgBackupStoreRequest", {**STORE, "s3Credentials": {}}, "set either secretName or inheritFromIAMRole"),
    ("PgBackupStoreRequest", {**STORE, "serverName": "x"}, "serverName needs cluster"),
    ("PgBackupStoreRequest", {**STORE, "retentionPolicy": "30 days"}, "spec.retentionPolicy"),
    ("PgBackupStoreRequest", {**STORE, "destinationPath": "/tmp/x"}, "spec.destinationPath"),
    ("PgBackupRequest", {"cluster": "c", "method": "barmanObjectStore"}, "supported values"),
    ("PgBackupRequest", {"cluster": "c", "online": True}, "online applies to volumeSnapshot backups only"),
    ("PgBackupScheduleRequest", {"cluster": "c", "schedule": "0 2 * * *"}, "spec.schedule"),
    ("PgClusterRequest", {"restoreFrom": {"cluster": "src", "store": "s",
                                          "target": {"time": "2026-12-02T17:00:00Z", "lsn": "0/1"}}},
     "set at most one of time, lsn, name, xid, immediate"),
    ("PgClusterRequest", {"restoreFrom": {"cluster": "src", "store": "s", "target": {"xid": "42"}}},
     "need backupID"),
    ("PgClusterRequest", {"adoptExisting": True, "restoreFrom": {"cluster": "src", "store": "s"}},
     "cannot adopt"),
])
def test_invalid_backup_intents_are_refused(k8s: Any, namespace: str, kind: str, spec: dict[str, Any],
                                            expected: str) -> None:
    with pytest.raises(ApiException) as excinfo:
        create(k8s, namespace, kind, "bad", spec)
    assert excinfo.value.status == 422, excinfo.value.body
    assert expected in str(excinfo.value.body)


def test_credential_values_are_not_stored(k8s: Any, namespace: str) -> None:
    """Only references exist in the schema: a value smuggled in is pruned, never stored."""
    created = create(k8s, namespace, "PgBackupStoreRequest", "store", {
        **STORE, "s3Credentials": {"secretName": "creds", "secretAccessKey": "hunter2"}})
    assert "hunter2" not in str(created)


def test_a_backup_request_is_immutable(k8s: Any, namespace: str) -> None:
    create(k8s, namespace, "PgBackupRequest", "once", {"cluster": "c"})
    with pytest.raises(ApiException) as excinfo:
        client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
            constants.GROUP, constants.VERSION, namespace, PLURAL["PgBackupRequest"], "once",
            {"spec": {"target": "primary"}})
    assert excinfo.value.status == 422
    assert "a backup request is immutable" in str(excinfo.value.body)


def test_restore_from_is_immutable_and_defaults_apply(k8s: Any, namespace: str) -> None:
    created = create(k8s, namespace, "PgClusterRequest", "restored", {
        "restoreFrom": {"cluster": "src", "store": "s", "target": {"time": "2026-12-02T17:00:00Z"}}})
    assert created["spec"]["restoreFrom"]["target"] == {"time": "2026-12-02T17:00:00Z"}
    with pytest.raises(ApiException) as excinfo:
        client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
            constants.GROUP, constants.VERSION, namespace, PLURAL["PgClusterRequest"], "restored",
            {"spec": {"restoreFrom": {"store": "other"}}})
    assert "spec.restoreFrom is immutable" in str(excinfo.value.body)
    scheduled = create(k8s, namespace, "PgBackupScheduleRequest", "daily", {"cluster": "c", "schedule": "0 0 2 * * *"})
    assert scheduled["spec"]["method"] == "plugin" and scheduled["spec"]["backupOwnerReference"] == "none"
