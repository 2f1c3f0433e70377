"""Backups the CNPG 1.30 way, as the Barman Cloud plugin would make them, against the shared server.

- **Backup** (`method: plugin`): needs the Cluster's Barman Cloud WAL archiver entry and its
  ObjectStore; phase `running` (startedAt), then a real copy of the Cluster's database is taken
  (`CREATE DATABASE <snapshot> TEMPLATE <database>`, kept on the server as the "object store"), then
  `completed` with backupId, stoppedAt, beginLSN/endLSN, serverName, destinationPath. Anything else
  (no archiver, no ObjectStore, volumeSnapshot, no Cluster) → `failed` with CNPG-like errors.
- **WAL archiving**: a Cluster whose archiver entry names an existing ObjectStore gets the condition
  `ContinuousArchiving=True`; the ObjectStore's `status.serverRecoveryWindow[serverName]` shows the
  first recoverability point (the oldest completed backup's end) and the last successful backup.
- The catalogue (which snapshot holds which backup) is a table in the server's `postgres` database,
  schema `cnpg_simulator`, so it survives simulator restarts; restores read it (recovery.py).

Not imitated: WAL between backups (a restore to a time after a backup gives that backup's state),
retention, volume snapshots, backup targets (every backup reads "the primary": the shared server).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import psycopg
from kubernetes.client.exceptions import ApiException
from psycopg import sql

from devcluster.simulator.clusters import bootstrap_database
from devcluster.simulator.common import Json, now_rfc3339, pg_error_text, status_patch, upsert_condition
from devcluster.simulator.context import ChangeFilter, Context, WatchSpec, custom_objects

log = logging.getLogger(__name__)

PLUGIN_NAME = "barman-cloud.cloudnative-pg.io"  # plugin-barman-cloud internal/cnpgi/metadata/constants.go
BARMAN_GROUP, BARMAN_VERSION, OBJECT_STORES = "barmancloud.cnpg.io", "v1", "objectstores"
CONTINUOUS_ARCHIVING = "ContinuousArchiving"  # CNPG api/v1/cluster_types.go
FINAL_PHASES = frozenset({"completed", "failed"})
LAST_BACKUP_SUCCEEDED = "LastBackupSucceeded"  # CNPG's ConditionBackup
CATALOGUE_SQL = (
    "CREATE SCHEMA IF NOT EXISTS cnpg_simulator",
    """CREATE TABLE IF NOT EXISTS cnpg_simulator.backups (
         namespace text NOT NULL, store text NOT NULL, server_name text NOT NULL, backup_name text NOT NULL,
         backup_id text NOT NULL, database text NOT NULL, snapshot text NOT NULL,
         stopped_at timestamptz NOT NULL, PRIMARY KEY (namespace, backup_name))""",
    """CREATE TABLE IF NOT EXISTS cnpg_simulator.cluster_databases (
         namespace text NOT NULL, cluster text NOT NULL, database text NOT NULL, PRIMARY KEY (namespace, cluster))""",
)


# ------------------------------------------------------------------------------------------ pure


def archiver(cluster: Mapping[str, Any]) -> tuple[str, str] | None:
    """(ObjectStore name, serverName) of the Cluster's Barman Cloud WAL archiver entry, if any."""
    for plugin in (cluster.get("spec") or {}).get("plugins") or []:
        if plugin.get("name") == PLUGIN_NAME and plugin.get("isWALArchiver") and plugin.get("enabled", True):
            parameters = plugin.get("parameters") or {}
            store = parameters.get("barmanObjectName")
            if store:
                return str(store), str(parameters.get("serverName") or cluster["metadata"]["name"])
    return None


def backup_id(moment: datetime) -> str:
    """Barman's backup id: the start time, YYYYMMDDTHHMMSS."""
    return moment.strftime("%Y%m%dT%H%M%S")


def snapshot_name(namespace: str, backup: str, uid: str) -> str:
    """A database name ≤ 63 bytes for the copy held by the "object store"."""
    digest = hashlib.sha256(f"{namespace}/{backup}/{uid}".encode()).hexdigest()[:16]
    return f"cnpg_sim_backup_{digest}"


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def recovery_window(stopped: Sequence[datetime]) -> Json:
    if not stopped:
        return {}
    return {"firstRecoverabilityPoint": rfc3339(min(stopped)), "lastSuccessfulBackupTime": rfc3339(max(stopped))}


# ------------------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class CataloguedBackup:
    backup_id: str
    database: str  # the database it copied
    snapshot: str  # the copy, kept on the server
    stopped_at: datetime


class Catalogue:
    """The simulated object store's index, in the shared server."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._ready = False

    def _ensure(self) -> None:
        if not self._ready:
            for statement in CATALOGUE_SQL:
                self._ctx.pg.conn().execute(statement)
            self._ready = True

    def database_of(self, cluster: Mapping[str, Any]) -> str | None:
        """The PostgreSQL database that plays this Cluster's data: its initdb database, or the copy a
        restore made for it."""
        self._ensure()
        meta = cluster["metadata"]
        row = self._ctx.pg.query_one("SELECT database FROM cnpg_simulator.cluster_databases "
                                     "WHERE namespace = %s AND cluster = %s", (meta["namespace"], meta["name"]))
        if row is not None:
            return str(row[0])
        initdb = bootstrap_database(cluster)
        return initdb[0] if initdb else None

    def record_cluster_database(self, namespace: str, cluster: str, database: str) -> None:
        self._ensure()
        self._ctx.pg.conn().execute(
            "INSERT INTO cnpg_simulator.cluster_databases VALUES (%s, %s, %s) "
            "ON CONFLICT (namespace, cluster) DO UPDATE SET database = EXCLUDED.database",
            (namespace, cluster, database))

    def record_backup(self, namespace: str, *, store: str, server: str, name: str, bid: str, database: str,
                      snapshot: str, stopped_at: datetime) -> None:
        self._ensure()
        self._ctx.pg.conn().execute(
            "INSERT INTO cnpg_simulator.backups VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (namespace, backup_name) DO NOTHING",
            (namespace, store, server, name, bid, database, snapshot, stopped_at))

    def backups(self, namespace: str, store: str, server: str) -> list[CataloguedBackup]:
        """The completed backups of `server` in `store`, oldest first."""
        self._ensure()
        rows = self._ctx.pg.conn().execute(
            "SELECT backup_id, database, snapshot, stopped_at FROM cnpg_simulator.backups "
            "WHERE namespace = %s AND store = %s AND server_name = %s ORDER BY stopped_at",
            (namespace, store, server)).fetchall()
        return [CataloguedBackup(str(r[0]), str(r[1]), str(r[2]), r[3]) for r in rows]


# -------------------------------------------------------------------------------------- handlers


def _object_store(ctx: Context, namespace: str, name: str) -> Json | None:
    try:
        store: Json = ctx.kube.custom().get_namespaced_custom_object(BARMAN_GROUP, BARMAN_VERSION, namespace,
                                                                     OBJECT_STORES, name)
        return store
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _patch_object_store_status(ctx: Context, store: Json, owned: Json) -> None:
    patch = status_patch(store.get("status") or {}, owned)
    if patch:
        meta = store["metadata"]
        ctx.kube.custom().patch_namespaced_custom_object_status(
            BARMAN_GROUP, BARMAN_VERSION, meta["namespace"], OBJECT_STORES, meta["name"], {"status": patch},
            _content_type="application/merge-patch+json")


class BackupHandler:
    """Backup: phase progression and a real copy of the Cluster's database."""

    kind: ClassVar[str] = "backup"

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._changes = ChangeFilter()
        self.catalogue = Catalogue(ctx)

    def watches(self) -> Sequence[WatchSpec]:
        return [WatchSpec("backups", custom_objects("backups"), self._event)]

    def _event(self, event_type: str, obj: Json) -> None:
        if event_type != "DELETED" and self._changes.is_news(event_type, obj):
            self._ctx.enqueue((self.kind, obj["metadata"]["namespace"], obj["metadata"]["name"]))

    def _fail(self, backup: Json, error: str) -> bool:
        log.warning("Backup %s/%s failed: %s", backup["metadata"]["namespace"], backup["metadata"]["name"], error)
        self._ctx.kube.patch_status("backups", backup, {"phase": "failed", "error": error,
                                                        "stoppedAt": now_rfc3339()})
        self._cluster_condition(backup, "False", "LastBackupFailed", error)
        return True

    def _cluster_condition(self, backup: Json, status: str, reason: str, message: str) -> None:
        """CNPG's LastBackupSucceeded condition on the Cluster: False/BackupStarted while a backup runs, then
        True/LastBackupSucceeded or False/LastBackupFailed (its BackupStarting/Succeeded/FailedCondition)."""
        namespace = backup["metadata"]["namespace"]
        cluster = self._ctx.kube.get("clusters", namespace, str(((backup.get("spec") or {}).get("cluster") or {})
                                                                  .get("name") or ""))
        if cluster is None:
            return
        self._ctx.kube.patch_status("clusters", cluster, {"conditions": upsert_condition(
            (cluster.get("status") or {}).get("conditions") or [], type_=LAST_BACKUP_SUCCEEDED, status=status,
            reason=reason, message=message, generation=int(cluster["metadata"].get("generation", 1)),
            now=now_rfc3339())})

    def reconcile(self, namespace: str, name: str) -> bool:
        ctx = self._ctx
        backup = ctx.kube.get("backups", namespace, name)
        if backup is None or backup["metadata"].get("deletionTimestamp"):
            return True
        if ((backup.get("status") or {}).get("phase") or "") in FINAL_PHASES:
            return True
        spec = backup.get("spec") or {}
        cluster_name = str((spec.get("cluster") or {}).get("name") or "")
        cluster = ctx.kube.get("clusters", namespace, cluster_name)
        if cluster is None:
            return self._fail(backup, f"unknown cluster {cluster_name}")
        method = spec.get("method") or "barmanObjectStore"
        if method != "plugin":
            return self._fail(backup, f"method {method} is not simulated (only plugin backups are)")
        if (spec.get("pluginConfiguration") or {}).get("name") != PLUGIN_NAME:
            return self._fail(backup, f"unknown plugin {(spec.get('pluginConfiguration') or {}).get('name')}")
        archiving = archiver(cluster)
        if archiving is None:
            return self._fail(backup, "the Cluster has no Barman Cloud WAL archiver (spec.plugins)")
        store_name, server = archiving
        store = _object_store(ctx, namespace, store_name)
        if store is None:
            return self._fail(backup, f"ObjectStore {store_name} not found")
        database = self.catalogue.database_of(cluster)
        if database is None or ctx.pg.database(database) is None:
            return self._fail(backup, f"database {database} of Cluster {cluster_name} does not exist")
        started = datetime.now(UTC)
        configuration = (store.get("spec") or {}).get("configuration") or {}
        ctx.kube.patch_status("backups", backup, {
            "phase": "running", "method": "plugin", "startedAt": rfc3339(started), "serverName": server,
            "destinationPath": configuration.get("destinationPath"), "endpointURL": configuration.get("endpointURL"),
            "backupName": name, "instanceID": {"podName": f"{cluster_name}-1"}})
        self._cluster_condition(backup, "False", "BackupStarted", "New Backup starting up")
        snapshot = snapshot_name(namespace, name, backup["metadata"]["uid"])
        try:
            begin_lsn = str((ctx.pg.query_one("SELECT pg_current_wal_lsn()::text", ()) or ("",))[0])
            if ctx.pg.database(snapshot) is None:
                ctx.pg.run(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(snapshot),
                                                                            sql.Identifier(database)))
            end_lsn = str((ctx.pg.query_one("SELECT pg_current_wal_lsn()::text", ()) or ("",))[0])
        except psycopg.Error as exc:  # e.g. someone is connected to the database: retried with backoff
            log.warning("Backup %s/%s: copying %s: %s", namespace, name, database, pg_error_text(exc))
            return False
        stopped = datetime.now(UTC).replace(microsecond=0)  # as reported: status times have seconds only
        bid = backup_id(started)
        self.catalogue.record_backup(namespace, store=store_name, server=server, name=name, bid=bid,
                                     database=database, snapshot=snapshot, stopped_at=stopped)
        ctx.kube.patch_status("backups", backup, {"phase": "completed", "backupId": bid,
                                                  "stoppedAt": rfc3339(stopped), "beginLSN": begin_lsn,
                                                  "endLSN": end_lsn})
        log.info("Backup %s/%s completed: %s copied to %s", namespace, name, database, snapshot)
        self._cluster_condition(backup, "True", "LastBackupSucceeded", "Backup was successful")
        ctx.enqueue(("walarchiving", namespace, cluster_name))
        return True


class ArchivingHandler:
    """A Cluster's WAL archiving through the plugin: its ContinuousArchiving condition and its
    ObjectStore's recoverability window. Keyed by Cluster."""

    kind: ClassVar[str] = "walarchiving"

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._changes = ChangeFilter()
        self.catalogue = Catalogue(ctx)

    def watches(self) -> Sequence[WatchSpec]:
        def stores(api: Any) -> tuple[Any, Json]:
            from kubernetes import client  # noqa: PLC0415

            return client.CustomObjectsApi(api).list_cluster_custom_object, {
                "group": BARMAN_GROUP, "version": BARMAN_VERSION, "plural": OBJECT_STORES}
        return [WatchSpec("walarchiving-clusters", custom_objects("clusters"), self._cluster_event),
                WatchSpec("walarchiving-objectstores", stores, self._store_event)]

    def _cluster_event(self, event_type: str, obj: Json) -> None:
        if event_type != "DELETED" and self._changes.is_news(event_type, obj):
            self._ctx.enqueue((self.kind, obj["metadata"]["namespace"], obj["metadata"]["name"]))

    def _store_event(self, event_type: str, obj: Json) -> None:
        if event_type not in ("ADDED", "DELETED"):
            return
        namespace = obj["metadata"]["namespace"]
        clusters = self._ctx.kube.custom().list_namespaced_custom_object(
            "postgresql.cnpg.io", "v1", namespace, "clusters").get("items") or []
        for cluster in clusters:
            if (archiver(cluster) or ("",))[0] == obj["metadata"]["name"]:
                self._ctx.enqueue((self.kind, namespace, cluster["metadata"]["name"]))

    def reconcile(self, namespace: str, name: str) -> bool:
        ctx = self._ctx
        cluster = ctx.kube.get("clusters", namespace, name)
        if cluster is None or cluster["metadata"].get("deletionTimestamp"):
            return True
        archiving = archiver(cluster)
        conditions = (cluster.get("status") or {}).get("conditions") or []
        if archiving is None:
            if any(c.get("type") == CONTINUOUS_ARCHIVING for c in conditions):
                kept = [c for c in conditions if c.get("type") != CONTINUOUS_ARCHIVING]
                ctx.kube.patch_status("clusters", cluster, {"conditions": kept})
            return True
        store_name, server = archiving
        store = _object_store(ctx, namespace, store_name)
        generation = int(cluster["metadata"].get("generation") or 1)
        if store is None:
            condition = {"status": "False", "reason": "ContinuousArchivingFailing",
                         "message": f"ObjectStore {store_name} not found"}
        else:
            condition = {"status": "True", "reason": "ContinuousArchivingSuccess",
                         "message": "Continuous archiving is working"}
        ctx.kube.patch_status("clusters", cluster, {"conditions": upsert_condition(
            conditions, type_=CONTINUOUS_ARCHIVING, generation=generation, now=now_rfc3339(), **condition)})
        if store is not None:
            stopped = [b.stopped_at for b in self.catalogue.backups(namespace, store_name, server)]
            window = dict((store.get("status") or {}).get("serverRecoveryWindow") or {})
            window[server] = recovery_window(stopped)
            _patch_object_store_status(ctx, store, {"serverRecoveryWindow": window})
        return store is not None
