"""Pure builders: tool arguments → intent manifests (validated by the typed models).

Nothing here talks to the API; the tools call these, then write the result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import (
    CLUSTER_REQUEST,
    DATABASE_REQUEST,
    OPERATION_REQUEST,
    POOLER_REQUEST,
    ROLE_REQUEST,
    CamelModel,
    PgClusterRequestSpec,
    PgDatabaseRequestSpec,
    PgOperationRequestSpec,
    PgPoolerRequestSpec,
    PgRoleRequestSpec,
    manifest,
)
from cnpg_mcp_api.naming import database_request_name, role_request_name
from mcp_gateway import errors

ROLE_FLAGS = ("login", "superuser", "inherit", "createdb", "createrole", "replication")


def _validated(model: type[CamelModel], data: Mapping[str, Any]) -> CamelModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'value'}: {e['msg']}" for e in exc.errors()[:4]
        )
        raise errors.tool_error(errors.INVALID_ARGUMENT, problems) from exc


def validated_spec(model: type[CamelModel], data: Mapping[str, Any]) -> CamelModel:
    """The spec as the typed model reads it; INVALID_ARGUMENT with the problems otherwise."""
    return _validated(model, data)


def _annotations(requested_by: str | None) -> dict[str, str] | None:
    return {constants.REQUESTED_BY_ANNOTATION: requested_by} if requested_by else None


def cluster_intent(name: str, namespace: str, *, instances: int, storage_size: str, postgres_version: str,
                   storage_class: str | None, requested_by: str | None) -> dict[str, Any]:
    storage: dict[str, Any] = {"size": storage_size}
    if storage_class:
        storage["storageClass"] = storage_class
    spec = _validated(PgClusterRequestSpec, {"instances": instances, "storage": storage,
                                             "postgresVersion": postgres_version})
    return manifest(CLUSTER_REQUEST, name, spec, namespace=namespace, annotations=_annotations(requested_by))


def adoption_intent(cluster: Mapping[str, Any], *, instances: int, requested_by: str | None) -> dict[str, Any]:
    """A PgClusterRequest that takes over an existing Cluster without changing anything but what is asked.

    It owns no parameters (parameters: {}), keeps Retain, and copies storage and image from the live
    Cluster so the request describes what exists.
    """
    meta, live = cluster["metadata"], cluster.get("spec") or {}
    storage = {k: v for k, v in (live.get("storage") or {}).items() if k in ("size", "storageClass")}
    data: dict[str, Any] = {"instances": instances, "parameters": {}, "adoptExisting": True,
                            "deletionPolicy": "Retain", "storage": storage or {"size": "10Gi"}}
    if live.get("imageName"):
        data["imageName"] = live["imageName"]
    spec = _validated(PgClusterRequestSpec, data)
    return manifest(CLUSTER_REQUEST, meta["name"], spec, namespace=meta["namespace"],
                    annotations=_annotations(requested_by))


def role_intent(cluster_name: str, role_name: str, namespace: str, flags: Mapping[str, bool],
                requested_by: str | None, *, privileged: bool = False) -> dict[str, Any]:
    # privileged is the caller's own acknowledgement (tools/privilege.py), never inferred from the flags;
    # whether it is granted is the operator's admin policy.
    data: dict[str, Any] = {"cluster": cluster_name, "roleName": role_name, **flags, "privileged": privileged}
    spec = _validated(PgRoleRequestSpec, data)
    return manifest(ROLE_REQUEST, role_request_name(cluster_name, role_name), spec, namespace=namespace,
                    annotations=_annotations(requested_by))


def role_update_patch(current_spec: Mapping[str, Any], changes: Mapping[str, bool | None],
                      rotate_password: bool, now: dt.datetime | None = None, *,
                      privileged: bool = False) -> dict[str, Any]:
    """A merge patch for a PgRoleRequest's spec; empty when nothing changes.

    privileged: the caller acknowledged privileged attributes; never inferred from the flags.
    """
    patch: dict[str, Any] = {k: v for k, v in changes.items() if v is not None and current_spec.get(k) != v}
    if privileged and patch and not current_spec.get("privileged"):
        patch["privileged"] = True
    if rotate_password:
        stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        patch["password"] = {"rotation": stamp}
    if patch:
        _validated(PgRoleRequestSpec, {**current_spec, **patch})
    return {"spec": patch} if patch else {}


def database_intent(cluster_name: str, database_name: str, owner: str, *, reclaim_policy: str, namespace: str,
                    requested_by: str | None) -> dict[str, Any]:
    spec = _validated(PgDatabaseRequestSpec, {"cluster": cluster_name, "name": database_name, "owner": owner,
                                              "databaseReclaimPolicy": reclaim_policy})
    return manifest(DATABASE_REQUEST, database_request_name(cluster_name, database_name), spec,
                    namespace=namespace, annotations=_annotations(requested_by))


def pooler_intent(name: str, namespace: str, cluster_name: str, *, pooler_type: str, instances: int,
                  pool_mode: str, parameters: Mapping[str, str], paused: bool,
                  requested_by: str | None) -> dict[str, Any]:
    spec = _validated(PgPoolerRequestSpec, {
        "cluster": cluster_name, "type": pooler_type, "instances": instances,
        "pgbouncer": {"poolMode": pool_mode, "parameters": dict(parameters), "paused": paused}})
    return manifest(POOLER_REQUEST, name, spec, namespace=namespace, annotations=_annotations(requested_by))


def pooler_update_patch(current_spec: Mapping[str, Any], *, pooler_type: str | None, instances: int | None,
                        pool_mode: str | None, paused: bool | None, set_parameters: Mapping[str, str],
                        remove_parameters: list[str]) -> dict[str, Any]:
    """A merge patch for a PgPoolerRequest's spec (validated as a whole); empty when nothing changes."""
    patch: dict[str, Any] = {k: v for k, v in (("type", pooler_type), ("instances", instances))
                             if v is not None and current_spec.get(k) != v}
    bouncer_now = current_spec.get("pgbouncer") or {}
    bouncer: dict[str, Any] = {k: v for k, v in (("poolMode", pool_mode), ("paused", paused))
                               if v is not None and bouncer_now.get(k) != v}
    params_now = bouncer_now.get("parameters") or {}
    params: dict[str, Any] = {k: v for k, v in set_parameters.items() if params_now.get(k) != v}
    params.update({k: None for k in remove_parameters if k in params_now})
    if params:
        bouncer["parameters"] = params
    if bouncer:
        patch["pgbouncer"] = bouncer
    if patch:
        merged_params = {k: v for k, v in {**params_now, **params}.items() if v is not None}
        _validated(PgPoolerRequestSpec, {**current_spec, **{k: v for k, v in patch.items() if k != "pgbouncer"},
                                         "pgbouncer": {**bouncer_now, **bouncer, "parameters": merged_params}})
    return {"spec": patch} if patch else {}

def operation_intent(cluster_name: str, op_type: str, namespace: str, *, instance: str | None,
                     timeout_seconds: int, requested_by: str | None, now: dt.datetime | None = None) -> dict[str, Any]:
    """A PgOperationRequest named <cluster>-<type>-<UTC timestamp> (one-shot: a new name every time)."""
    spec = _validated(PgOperationRequestSpec, {"type": op_type, "cluster": cluster_name, "instance": instance,
                                               "timeoutSeconds": timeout_seconds})
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S-%f")
    name = f"{cluster_name}-{op_type.lower()}-{stamp}"
    return manifest(OPERATION_REQUEST, name, spec, namespace=namespace, annotations=_annotations(requested_by))
