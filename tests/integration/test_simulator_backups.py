"""Backups and restore end to end with the CNPG simulator playing CNPG and the Barman Cloud plugin:
intents applied like `kubectl apply` would, the real operator, the real PostgreSQL server."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from kubernetes import client

from devcluster.simulator.recovery import restored_database_name
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_operator_backups import BACKUP_KIND, CNPG, SCHEDULE_KIND, STORE_KIND, get, store_spec
from tests.integration.test_operator_roles import make_cluster, unique, wait_until

CLUSTER_KIND = "PgClusterRequest"


def write_row(postgres: Any, database: str, value: str) -> None:
    with psycopg.connect(postgres.superuser_dsn(database), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY, at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO orders (id) VALUES (%s)", (value,))


def rows(postgres: Any, database: str) -> set[str]:
    with psycopg.connect(postgres.superuser_dsn(database), autocommit=True) as conn:
        return {str(r[0]) for r in conn.execute("SELECT id FROM orders").fetchall()}


def backed_up_cluster(intents: Intents, postgres: Any, namespace: str) -> tuple[str, str, str]:
    """A Cluster archiving into a store, with one row, and one completed backup: (cluster, database, store)."""
    database = unique("shop_")
    cluster = make_cluster(intents, namespace, bootstrap={"database": database, "owner": database})
    store = f"{cluster}-store"
    intents.create(STORE_KIND, namespace, store, store_spec(cluster))
    intents.wait_ready(STORE_KIND, namespace, store)
    write_row(postgres, database, "before-backup")
    return cluster, database, store


def test_backup_copies_the_data_and_opens_the_recovery_window(operator: OperatorProcess, cnpg_simulator: Any,
                                                               k8s: Any, postgres: Any, namespace: str,
                                                               intents: Intents) -> None:
    cluster, _, store = backed_up_cluster(intents, postgres, namespace)
    ready = intents.wait_ready(STORE_KIND, namespace, store)
    assert "firstRecoverabilityPoint" not in ready["status"]  # nothing to restore from yet

    started = time.time()
    intents.create(BACKUP_KIND, namespace, "first", {"cluster": cluster})
    done = intents.wait_ready(BACKUP_KIND, namespace, "first")
    assert done["status"]["phase"] == "completed" and done["status"]["backupID"]
    assert done["status"]["startedAt"] <= done["status"]["stoppedAt"]
    backup = get(k8s, CNPG, namespace, "backups", "first") or {}
    assert backup["status"]["serverName"] == cluster and backup["status"]["destinationPath"] == "s3://backups/pg"
    print(f"backup intent → completed in {time.time() - started:.1f}s")

    window = intents.wait_for(STORE_KIND, namespace, store,
                              lambda o: bool((o.get("status") or {}).get("firstRecoverabilityPoint")), "window")
    assert window["status"]["firstRecoverabilityPoint"] == backup["status"]["stoppedAt"]
    assert window["status"]["lastSuccessfulBackupTime"] == backup["status"]["stoppedAt"]


def test_backup_without_archiving_fails_with_the_reason(operator: OperatorProcess, cnpg_simulator: Any,
                                                         namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    intents.create(BACKUP_KIND, namespace, "orphan", {"cluster": cluster})
    failed = intents.wait_reason(BACKUP_KIND, namespace, "orphan", "Failed")
    assert "no Barman Cloud WAL archiver" in failed["status"]["message"]


def completed_backup(intents: Intents, k8s: Any, namespace: str, cluster: str, store: str,
                     name: str) -> dict[str, Any]:
    intents.create(BACKUP_KIND, namespace, name, {"cluster": cluster})
    intents.wait_ready(BACKUP_KIND, namespace, name)
    intents.wait_for(STORE_KIND, namespace, store,
                     lambda o: bool((o.get("status") or {}).get("firstRecoverabilityPoint")), "window")
    return get(k8s, CNPG, namespace, "backups", name) or {}


def test_restore_to_a_time_inside_the_window_copies_the_data_of_then(
        operator: OperatorProcess, cnpg_simulator: Any, k8s: Any, postgres: Any, namespace: str,
        intents: Intents) -> None:
    cluster, database, store = backed_up_cluster(intents, postgres, namespace)
    backup = completed_backup(intents, k8s, namespace, cluster, store, "nightly")
    target = backup["status"]["stoppedAt"]
    time.sleep(1.1)
    write_row(postgres, database, "after-target")

    restored = f"{cluster}-restored"
    started = time.time()
    intents.create(CLUSTER_KIND, namespace, restored, {"instances": 1, "restoreFrom": {
        "cluster": cluster, "store": store, "target": {"time": target}}})
    intents.wait_ready(CLUSTER_KIND, namespace, restored)
    print(f"restore intent → healthy Cluster in {time.time() - started:.1f}s")
    live = get(k8s, CNPG, namespace, "clusters", restored) or {}
    recovery = live["spec"]["bootstrap"]["recovery"]
    # what we wrote; CNPG's webhook adds its defaults (database/owner "app") next to it
    assert {k: recovery[k] for k in ("source", "recoveryTarget")} == {
        "source": cluster, "recoveryTarget": {"targetTime": target}}
    assert live["spec"]["externalClusters"] == [{"name": cluster, "plugin": {
        "name": "barman-cloud.cloudnative-pg.io", "enabled": True, "isWALArchiver": False,
        "parameters": {"barmanObjectName": store, "serverName": cluster}}}]
    copy = restored_database_name(database, restored)
    assert rows(postgres, copy) == {"before-backup"}  # written before the target: there; after: not
    assert rows(postgres, database) == {"before-backup", "after-target"}  # the source is untouched

    # The restored cluster archives under its own serverName (its name), never the source's.
    own_store = f"{restored}-store"
    intents.create(STORE_KIND, namespace, own_store, store_spec(restored))
    archiving = intents.wait_ready(STORE_KIND, namespace, own_store)
    assert archiving["status"]["serverName"] == restored
    again = completed_backup(intents, k8s, namespace, restored, own_store, "of-restored")
    assert again["status"]["serverName"] == restored


def test_restore_outside_the_window_is_refused(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
                                               postgres: Any, namespace: str, intents: Intents) -> None:
    cluster, _, store = backed_up_cluster(intents, postgres, namespace)
    intents.create(CLUSTER_KIND, namespace, "too-early", {"instances": 1, "restoreFrom": {
        "cluster": cluster, "store": store}})
    early = intents.wait_reason(CLUSTER_KIND, namespace, "too-early", "NotRecoverable")
    assert "has no completed backup" in early["status"]["message"]

    completed_backup(intents, k8s, namespace, cluster, store, "only")
    window = intents.get(STORE_KIND, namespace, store) or {}
    first = window["status"]["firstRecoverabilityPoint"]
    for name, target in (("before-window", "2020-01-01T00:00:00Z"), ("future", "2999-01-01T00:00:00Z")):
        intents.create(CLUSTER_KIND, namespace, name, {"instances": 1, "restoreFrom": {
            "cluster": cluster, "store": store, "target": {"time": target}}})
        refused = intents.wait_reason(CLUSTER_KIND, namespace, name, "NotRecoverable")
        assert f"you can restore to any time between {first} and now" in refused["status"]["message"]
        assert get(k8s, CNPG, namespace, "clusters", name) is None
        assert any(e.type == "Warning" and e.reason == "NotRecoverable" for e in intents.events_for(namespace, name))


def test_schedule_takes_backups_on_time_until_suspended(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
                                                         postgres: Any, namespace: str, intents: Intents) -> None:
    cluster, _, _ = backed_up_cluster(intents, postgres, namespace)
    name = f"{cluster}-often"
    intents.create(SCHEDULE_KIND, namespace, name, {"cluster": cluster, "schedule": "*/3 * * * * *",
                                                    "immediate": True})
    ready = intents.wait_ready(SCHEDULE_KIND, namespace, name)
    assert ready["status"]["nextScheduleTime"]

    def made() -> list[dict[str, Any]]:
        listing = client.CustomObjectsApi(k8s).list_namespaced_custom_object(
            *CNPG, namespace, "backups", label_selector=f"cnpg.io/scheduled-backup={name}")
        return list(listing["items"])
    wait_until(lambda: len([b for b in made() if (b.get("status") or {}).get("phase") == "completed"]) >= 2,
               "two scheduled backups completed", timeout=30)
    backups = made()
    assert all(b["spec"]["method"] == "plugin" and "ownerReferences" not in b["metadata"] for b in backups)
    assert any(b["metadata"]["labels"].get("cnpg.io/immediateBackup") == "true" for b in backups)

    intents.patch_spec(SCHEDULE_KIND, namespace, name, {"suspend": True})
    wait_until(lambda: "nextScheduleTime" not in ((intents.get(SCHEDULE_KIND, namespace, name) or {})
                                                  .get("status") or {}), "suspended")
    count = len(made())
    time.sleep(4)
    assert len(made()) == count  # nothing taken while suspended
