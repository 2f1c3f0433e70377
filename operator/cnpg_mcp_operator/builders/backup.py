"""Backup intents → Barman Cloud ObjectStore, the Cluster's WAL archiver entry, Backup, ScheduledBackup.

Pure. Every Backup and ScheduledBackup sets `method` (the CRD default is still the deprecated in-tree
barmanObjectStore) and, for the plugin method, `pluginConfiguration.name` of the Barman Cloud plugin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import (
    AzureCredentials,
    GoogleCredentials,
    PgBackupRequestSpec,
    PgBackupScheduleRequestSpec,
    PgBackupStoreRequestSpec,
    PgClusterRequestSpec,
    S3Credentials,
)
from cnpg_mcp_operator.builders.common import Json, owned_cnpg_object

ARCHIVER_OWNER_ANNOTATION = f"{constants.GROUP}/wal-archiver-owner"


def _secret_key(secret: str, key: str | None) -> Json | None:
    return {"name": secret, "key": key} if key else None


def _s3(creds: S3Credentials) -> Json:
    if creds.inherit_from_iam_role:
        return {"inheritFromIAMRole": True}
    secret = str(creds.secret_name)
    keys = {"accessKeyId": creds.access_key_id_key, "secretAccessKey": creds.secret_access_key_key,
            "region": creds.region_key, "sessionToken": creds.session_token_key}
    return {field: ref for field, key in keys.items() if (ref := _secret_key(secret, key))}


def _azure(creds: AzureCredentials) -> Json:
    if creds.inherit_from_azure_ad:
        return {"inheritFromAzureAD": True}
    if creds.use_default_azure_credentials:
        return {"useDefaultAzureCredentials": True}
    secret = str(creds.secret_name)
    keys = {"connectionString": creds.connection_string_key, "storageAccount": creds.storage_account_key,
            "storageKey": creds.storage_key_key, "storageSasToken": creds.storage_sas_token_key}
    return {field: ref for field, key in keys.items() if (ref := _secret_key(secret, key))}


def _google(creds: GoogleCredentials) -> Json:
    if creds.gke_environment:
        return {"gkeEnvironment": True}
    return {"applicationCredentials": {"name": str(creds.secret_name), "key": creds.application_credentials_key}}


def object_store_configuration(spec: PgBackupStoreRequestSpec) -> Json:
    """The ObjectStore's spec.configuration (barman's BarmanObjectStoreConfiguration): Secret references only,
    never serverName (the plugin's CEL forbids it there; it is a Cluster plugin parameter)."""
    configuration: Json = {"destinationPath": spec.destination_path}
    if spec.endpoint_url:
        configuration["endpointURL"] = spec.endpoint_url
    if spec.endpoint_ca is not None:
        configuration["endpointCA"] = spec.endpoint_ca.to_wire()
    if spec.s3_credentials is not None:
        configuration["s3Credentials"] = _s3(spec.s3_credentials)
    if spec.azure_credentials is not None:
        configuration["azureCredentials"] = _azure(spec.azure_credentials)
    if spec.google_credentials is not None:
        configuration["googleCredentials"] = _google(spec.google_credentials)
    if spec.wal is not None and spec.wal.to_wire():
        configuration["wal"] = spec.wal.to_wire()
    if spec.data is not None and spec.data.to_wire():
        configuration["data"] = spec.data.to_wire()
    return configuration


def build_object_store(body: Mapping[str, Any]) -> Json:
    """The ObjectStore named like the request, owned by it."""
    spec = PgBackupStoreRequestSpec.model_validate(body.get("spec") or {})
    store_spec: Json = {"configuration": object_store_configuration(spec)}
    if spec.retention_policy:
        store_spec["retentionPolicy"] = spec.retention_policy
    store = owned_cnpg_object("ObjectStore", body, spec.cluster or "", store_spec)
    store["apiVersion"] = constants.BARMAN_API_VERSION
    return store


def server_name_of(spec: PgBackupStoreRequestSpec) -> str | None:
    """The folder of the archived Cluster in the store: its name unless set."""
    return spec.server_name or spec.cluster


def archiver_entry(store: str, server_name: str) -> Json:
    """The Cluster.spec.plugins entry that makes the Barman Cloud plugin its WAL archiver (`enabled` is
    spelled out: the CRD defaults it, so the stored entry compares equal to this one)."""
    return {"name": constants.BARMAN_PLUGIN_NAME, "enabled": True, "isWALArchiver": True,
            "parameters": {"barmanObjectName": store, "serverName": server_name}}


class ArchiverConflict(ValueError):
    """The Cluster archives some other way; the message says how and what to do."""


def plugins_with_archiver(cluster: Mapping[str, Any], entry: Json) -> list[Json] | None:
    """Cluster.spec.plugins with `entry` as the barman plugin's configuration; None when already so.

    Other plugins are kept as they are. Refused (ArchiverConflict): the deprecated in-tree
    spec.backup.barmanObjectStore (CNPG forbids a plugin WAL archiver beside it; removed in 1.31),
    another plugin as WAL archiver, or the barman plugin already archiving into another store.
    """
    spec = cluster.get("spec") or {}
    if (spec.get("backup") or {}).get("barmanObjectStore"):
        raise ArchiverConflict("the Cluster uses the deprecated in-tree spec.backup.barmanObjectStore (removed in "
                               "CNPG 1.31); migrate it to the Barman Cloud plugin first")
    plugins: list[Json] = [dict(p) for p in spec.get("plugins") or []]
    for plugin in plugins:
        if plugin.get("name") != constants.BARMAN_PLUGIN_NAME and plugin.get("isWALArchiver"):
            raise ArchiverConflict(f"plugin {plugin.get('name')} is the Cluster's WAL archiver")
    ours = [p for p in plugins if p.get("name") == constants.BARMAN_PLUGIN_NAME]
    if ours:
        current = ours[0]
        store = (current.get("parameters") or {}).get("barmanObjectName")
        if store and store != entry["parameters"]["barmanObjectName"]:
            raise ArchiverConflict(f"the Cluster already archives into ObjectStore {store}")
        if current == entry:
            return None
        return [entry if p is current else p for p in plugins]
    return [*plugins, entry]


def plugins_without_archiver(cluster: Mapping[str, Any], store: str) -> list[Json] | None:
    """Cluster.spec.plugins without the barman entry that archives into `store`; None if it is not there."""
    plugins: Sequence[Mapping[str, Any]] = (cluster.get("spec") or {}).get("plugins") or []
    kept = [dict(p) for p in plugins if not (p.get("name") == constants.BARMAN_PLUGIN_NAME
                                             and (p.get("parameters") or {}).get("barmanObjectName") == store)]
    return kept if len(kept) != len(plugins) else None


def _method_fields(method: str, target: str | None, online: bool | None) -> Json:
    fields: Json = {"method": method}
    if method == "plugin":
        fields["pluginConfiguration"] = {"name": constants.BARMAN_PLUGIN_NAME}
    if target:
        fields["target"] = target
    if online is not None:
        fields["online"] = online
    return fields


def build_backup(body: Mapping[str, Any]) -> Json:
    """The Backup named like the request, owned by it (ownership by UID). The request's TTL cleanup
    deletes the request with propagation Orphan, so the garbage collector keeps the Backup."""
    spec = PgBackupRequestSpec.model_validate(body.get("spec") or {})
    backup_spec = {"cluster": {"name": spec.cluster}, **_method_fields(spec.method, spec.target, spec.online)}
    return owned_cnpg_object("Backup", body, spec.cluster, backup_spec)


def build_scheduled_backup(body: Mapping[str, Any]) -> Json:
    """The ScheduledBackup named like the request, owned by it."""
    spec = PgBackupScheduleRequestSpec.model_validate(body.get("spec") or {})
    scheduled: Json = {
        "cluster": {"name": spec.cluster},
        "schedule": " ".join(spec.schedule.split()),
        "suspend": spec.suspend,
        "immediate": spec.immediate,
        "backupOwnerReference": spec.backup_owner_reference,
        **_method_fields(spec.method, spec.target, spec.online),
    }
    return owned_cnpg_object("ScheduledBackup", body, spec.cluster, scheduled)


def recovery_bootstrap(spec: PgClusterRequestSpec) -> tuple[Json, list[Json]] | None:
    """`bootstrap` and `externalClusters` of a Cluster restored from `spec.restoreFrom`; None without it.

    Always the plugin form (recovery.source + an external cluster whose plugin parameters name the
    ObjectStore and the source's serverName): recovery.backup.name does not work for plugin backups.
    """
    restore = spec.restore_from
    if restore is None:
        return None
    recovery: Json = {"source": restore.cluster}
    if restore.target is not None:
        target = restore.target
        wire = {"targetTime": target.time, "targetLSN": target.lsn, "targetName": target.name,
                "targetXID": target.xid, "targetImmediate": target.immediate, "backupID": target.backup_id,
                "exclusive": target.exclusive}
        recovery_target = {k: v for k, v in wire.items() if v is not None}
        if recovery_target:
            recovery["recoveryTarget"] = recovery_target
    if spec.bootstrap is not None:
        recovery.update(spec.bootstrap.to_wire())
    external = {"name": restore.cluster, "plugin": {
        "name": constants.BARMAN_PLUGIN_NAME,
        "parameters": {"barmanObjectName": restore.store, "serverName": restore.server_name or restore.cluster},
    }}
    return {"recovery": recovery}, [external]

