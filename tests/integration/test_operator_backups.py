"""Backup intents end to end through the real operator: ObjectStore + WAL archiver on the Cluster,
one-shot Backup with mirrored phase and TTL cleanup that keeps the Backup, ScheduledBackup.

The CNPG simulator plays CNPG and the plugin (Backups, archiving, window); where a test needs a state
the simulator does not produce (a ScheduledBackup's status before its first run), it writes that
status itself, as CNPG would.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cnpg_mcp_api import constants
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_operator_roles import make_cluster, unique, wait_until

STORE_KIND, BACKUP_KIND, SCHEDULE_KIND = "PgBackupStoreRequest", "PgBackupRequest", "PgBackupScheduleRequest"
PLUGIN = "barman-cloud.cloudnative-pg.io"
CNPG = (constants.CNPG_GROUP, constants.CNPG_VERSION)
BARMAN = (constants.BARMAN_GROUP, constants.BARMAN_VERSION)


def get(k8s: Any, api: tuple[str, str], namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    try:
        return dict(client.CustomObjectsApi(k8s).get_namespaced_custom_object(*api, namespace, plural, name))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def play_status(k8s: Any, api: tuple[str, str], namespace: str, plural: str, name: str,
                status: dict[str, Any]) -> None:
    """Write what CNPG (or the plugin) would report."""
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object_status(*api, namespace, plural, name,
                                                                       {"status": status})


def store_spec(cluster: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"destinationPath": "s3://backups/pg", "endpointURL": "http://minio:9000",
                            "s3Credentials": {"secretName": "minio-creds"}, "retentionPolicy": "30d"}
    if cluster:
        spec["cluster"] = cluster
    return spec


def test_store_turns_on_wal_archiving_and_mirrors_the_window(operator: OperatorProcess, cnpg_simulator: Any,
                                                             k8s: Any, namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    other = {"name": "example.io/other", "parameters": {"keep": "me"}}
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(*CNPG, namespace, "clusters", cluster,
                                                                {"spec": {"plugins": [other]}})
    name = f"{cluster}-store"
    intents.create(STORE_KIND, namespace, name, store_spec(cluster))

    def archiver_set(obj: dict[str, Any]) -> bool:
        return (obj.get("status") or {}).get("archiving") is True
    intents.wait_for(STORE_KIND, namespace, name, archiver_set, "archiving set")
    live = get(k8s, CNPG, namespace, "clusters", cluster) or {}
    other_as_stored = {**other, "enabled": True, "isWALArchiver": False}  # the CRD's defaults
    assert live["spec"]["plugins"] == [other_as_stored, {"name": PLUGIN, "enabled": True, "isWALArchiver": True,
                                                         "parameters": {"barmanObjectName": name,
                                                                        "serverName": cluster}}]
    request = intents.get(STORE_KIND, namespace, name) or {}
    assert live["metadata"]["annotations"]["cnpg-mcp.io/wal-archiver-owner"] == request["metadata"]["uid"]
    store = get(k8s, BARMAN, namespace, "objectstores", name) or {}
    assert store["metadata"]["ownerReferences"][0]["uid"] == request["metadata"]["uid"]
    assert store["spec"]["configuration"]["s3Credentials"]["secretAccessKey"] == {
        "name": "minio-creds", "key": "ACCESS_SECRET_KEY"}

    ready = intents.wait_ready(STORE_KIND, namespace, name)  # the simulator reports ContinuousArchiving
    assert ready["status"]["serverName"] == cluster and ready["status"]["objectStore"] == name
    assert "minio-creds" not in str(ready["status"])  # not even a Secret name in the status
    reasons = [e.reason for e in intents.events_for(namespace, name)]
    assert "Applied" in reasons

    intents.delete(STORE_KIND, namespace, name)
    intents.wait_gone(STORE_KIND, namespace, name)
    live = get(k8s, CNPG, namespace, "clusters", cluster) or {}
    assert live["spec"]["plugins"] == [other_as_stored]
    assert "cnpg-mcp.io/wal-archiver-owner" not in (live["metadata"].get("annotations") or {})


def test_in_tree_barman_object_store_is_a_conflict(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
                                                   namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(*CNPG, namespace, "clusters", cluster, {
        # what CNPG's own webhook accepts: one credentials block, by Secret reference
        "spec": {"backup": {"barmanObjectStore": {"destinationPath": "s3://old/path", "s3Credentials": {
            "accessKeyId": {"name": "old-creds", "key": "ACCESS_KEY_ID"},
            "secretAccessKey": {"name": "old-creds", "key": "ACCESS_SECRET_KEY"}}}}}})
    name = f"{cluster}-store"
    intents.create(STORE_KIND, namespace, name, store_spec(cluster))
    refused = intents.wait_reason(STORE_KIND, namespace, name, "Conflict")
    assert "deprecated in-tree spec.backup.barmanObjectStore" in refused["status"]["message"]
    live = get(k8s, CNPG, namespace, "clusters", cluster) or {}
    assert "plugins" not in live["spec"]
    assert any(e.type == "Warning" and e.reason == "Conflict" for e in intents.events_for(namespace, name))


def test_backup_request_mirrors_the_phase_and_ttl_keeps_the_backup(operator: OperatorProcess, cnpg_simulator: Any,
                                                                   k8s: Any, namespace: str,
                                                                   intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    name = unique("backup-")
    intents.create(STORE_KIND, namespace, "store", store_spec(cluster))
    intents.wait_ready(STORE_KIND, namespace, "store")
    intents.create(BACKUP_KIND, namespace, name, {"cluster": cluster, "ttlSecondsAfterFinished": 3})
    wait_until(lambda: get(k8s, CNPG, namespace, "backups", name) is not None, "Backup created")
    backup = get(k8s, CNPG, namespace, "backups", name) or {}
    assert backup["spec"] == {"cluster": {"name": cluster}, "method": "plugin", "pluginConfiguration": {
        "name": PLUGIN}}
    request = intents.get(BACKUP_KIND, namespace, name) or {}
    assert backup["metadata"]["ownerReferences"][0]["uid"] == request["metadata"]["uid"]
    done = intents.wait_ready(BACKUP_KIND, namespace, name)
    completed = get(k8s, CNPG, namespace, "backups", name) or {}
    assert done["status"]["backupID"] == completed["status"]["backupId"] and done["status"]["phase"] == "completed"
    assert done["status"]["startedAt"] == completed["status"]["startedAt"]
    assert done["status"]["backupUID"] == backup["metadata"]["uid"] and done["status"]["finishedAt"]
    assert "Completed" in [e.reason for e in intents.events_for(namespace, name)]

    intents.wait_gone(BACKUP_KIND, namespace, name, timeout=30)  # TTL 3 s
    kept = get(k8s, CNPG, namespace, "backups", name)
    assert kept is not None and kept["metadata"]["uid"] == backup["metadata"]["uid"]
    wait_until(lambda: not (get(k8s, CNPG, namespace, "backups", name) or {}).get("metadata", {}).get(
        "ownerReferences"), "the Backup orphaned, not deleted")


def test_failed_backup_and_missing_cluster(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
                                           namespace: str, intents: Intents) -> None:
    missing = unique("nope")
    intents.create(BACKUP_KIND, namespace, "early", {"cluster": missing})
    intents.wait_reason(BACKUP_KIND, namespace, "early", "ClusterNotFound")
    assert get(k8s, CNPG, namespace, "backups", "early") is None

    cluster = make_cluster(intents, namespace)
    intents.create(BACKUP_KIND, namespace, "doomed", {"cluster": cluster})
    wait_until(lambda: get(k8s, CNPG, namespace, "backups", "doomed") is not None, "Backup created")
    failed = intents.wait_reason(BACKUP_KIND, namespace, "doomed", "Failed")  # nothing archives its WAL
    assert "has no Barman Cloud WAL archiver" in failed["status"]["message"]
    assert any(e.type == "Warning" and e.reason == "Failed" for e in intents.events_for(namespace, "doomed"))


def test_schedule_request_produces_and_updates_the_scheduled_backup(operator: OperatorProcess, cnpg_simulator: Any,
                                                                    k8s: Any, namespace: str,
                                                                    intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    name = f"{cluster}-daily"
    intents.create(SCHEDULE_KIND, namespace, name, {"cluster": cluster, "schedule": "0 0 2 * * *"})
    wait_until(lambda: get(k8s, CNPG, namespace, "scheduledbackups", name) is not None, "ScheduledBackup created")
    scheduled = get(k8s, CNPG, namespace, "scheduledbackups", name) or {}
    assert scheduled["spec"]["method"] == "plugin" and scheduled["spec"]["pluginConfiguration"] == {"name": PLUGIN}
    assert scheduled["spec"]["schedule"] == "0 0 2 * * *"

    ready = intents.wait_ready(SCHEDULE_KIND, namespace, name)  # the simulator has checked it
    assert ready["status"]["nextScheduleTime"].endswith("T02:00:00Z")

    intents.patch_spec(SCHEDULE_KIND, namespace, name, {"suspend": True, "schedule": "0 30 3 * * *"})
    wait_until(lambda: (get(k8s, CNPG, namespace, "scheduledbackups", name) or {}).get("spec", {}).get("suspend")
               is True, "suspended")
    assert (get(k8s, CNPG, namespace, "scheduledbackups", name) or {})["spec"]["schedule"] == "0 30 3 * * *"
    intents.wait_ready(SCHEDULE_KIND, namespace, name)

    intents.delete(SCHEDULE_KIND, namespace, name)
    intents.wait_gone(SCHEDULE_KIND, namespace, name)
    wait_until(lambda: get(k8s, CNPG, namespace, "scheduledbackups", name) is None, "ScheduledBackup collected")
