"""Backups and restore end to end with the CNPG simulator playing CNPG and the Barman Cloud plugin:
intents applied like `kubectl apply` would, the real operator, the real PostgreSQL server."""

from __future__ import annotations

import time
from typing import Any

import psycopg

from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_operator_backups import BACKUP_KIND, CNPG, STORE_KIND, get, store_spec
from tests.integration.test_operator_roles import make_cluster, unique

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
