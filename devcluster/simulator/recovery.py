"""A Cluster bootstrapped with `recovery` from a Barman Cloud plugin backup (CNPG 1.30's way:
`bootstrap.recovery.source` + an `externalClusters` entry whose plugin parameters name the
ObjectStore and the source's serverName).

The simulator restores a real copy: the chosen backup's snapshot database (backups.py) is copied
with `CREATE DATABASE … TEMPLATE` into a new database, which then plays the restored Cluster's data
(recorded in the catalogue, so its own backups copy it). One server plays every Cluster, so the copy
cannot keep the source's database name: it is `restored_database_name(source database, cluster)`.

Choice of backup: `backupID` when given; else for `targetTime` the newest backup that ended at or
before it (none → the restore fails, as CNPG's would); else the newest. WAL is not replayed: the
restored data is the backup's, whatever the target time after it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from devcluster.simulator.backups import PLUGIN_NAME, Catalogue, CataloguedBackup
from devcluster.simulator.common import pg_error_text
from devcluster.simulator.context import Context

log = logging.getLogger(__name__)
MAX_NAME_BYTES = 63


def restored_database_name(database: str, cluster: str) -> str:
    """The copy's name on the shared server: `<database>__<cluster>`, hashed when too long."""
    name = f"{database}__{cluster}"
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:12]
    return f"{database[:MAX_NAME_BYTES - 15]}__{digest}"


def recovery_source(cluster: Mapping[str, Any]) -> tuple[str, str] | str:
    """(ObjectStore, serverName) of the recovery source, or why it cannot be simulated."""
    spec = cluster.get("spec") or {}
    recovery = (spec.get("bootstrap") or {}).get("recovery") or {}
    source = recovery.get("source")
    if not source:
        return "only recovery from an external cluster (recovery.source) is simulated"
    external = next((e for e in spec.get("externalClusters") or [] if e.get("name") == source), None)
    plugin = (external or {}).get("plugin") or {}
    if plugin.get("name") != PLUGIN_NAME:
        return f"externalClusters[{source}] has no Barman Cloud plugin configuration"
    parameters = plugin.get("parameters") or {}
    store = parameters.get("barmanObjectName")
    if not store:
        return f"externalClusters[{source}].plugin.parameters.barmanObjectName is missing"
    return str(store), str(parameters.get("serverName") or source)


def choose_backup(backups: Sequence[CataloguedBackup], target: Mapping[str, Any]) -> CataloguedBackup | str:
    """The backup to restore for this recoveryTarget, or why there is none."""
    if not backups:
        return "no backup found"
    if target.get("backupID"):
        chosen = next((b for b in backups if b.backup_id == target["backupID"]), None)
        return chosen or f"backup {target['backupID']} not found"
    if target.get("targetTime"):
        when = datetime.fromisoformat(str(target["targetTime"]).replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        before = [b for b in backups if b.stopped_at <= when]
        return before[-1] if before else f"no backup ended before the target time {target['targetTime']}"
    return backups[-1]


def restore_cluster(ctx: Context, cluster: Mapping[str, Any]) -> str | None:
    """Restore the Cluster's data once; None when done, else why not (the Cluster stays setting up)."""
    catalogue = Catalogue(ctx)
    namespace, name = cluster["metadata"]["namespace"], cluster["metadata"]["name"]
    done = catalogue.database_of(cluster)
    if done is not None and ctx.pg.database(done) is not None:
        return None
    source = recovery_source(cluster)
    if isinstance(source, str):
        return f"recovery: {source}"
    store, server = source
    target = (((cluster.get("spec") or {}).get("bootstrap") or {}).get("recovery") or {}).get("recoveryTarget") or {}
    chosen = choose_backup(catalogue.backups(namespace, store, server), target)
    if isinstance(chosen, str):
        return f"recovery from ObjectStore {store}, server {server}: {chosen}"
    copy = restored_database_name(chosen.database, name)
    try:
        if ctx.pg.database(copy) is None:
            ctx.pg.run(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(copy),
                                                                        sql.Identifier(chosen.snapshot)))
    except psycopg.Error as exc:
        return f"recovery: copying backup {chosen.backup_id}: {pg_error_text(exc)}"
    catalogue.record_cluster_database(namespace, name, copy)
    log.info("Cluster %s/%s restored from backup %s (%s) into database %s", namespace, name, chosen.backup_id,
             server, copy)
    return None
