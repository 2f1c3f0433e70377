"""Shared vocabulary of the CNPG simulation: CNPG's names and constants, error texts, status helpers.

Every constant here was checked against CloudNativePG 1.30's source (api/v1, pkg/utils).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from kubernetes.client.exceptions import ApiException

GROUP = "postgresql.cnpg.io"
VERSION = "v1"
API_VERSION = f"{GROUP}/{VERSION}"
PHASE_HEALTHY = "Cluster in healthy state"
PHASE_SETTING_UP = "Setting up primary"
ROLE_FINALIZER = "cnpg.io/deleteRole"
DATABASE_FINALIZER = "cnpg.io/deleteDatabase"
RELOAD_LABEL = "cnpg.io/reload"
# pkg/utils/labels_annotations.go
CLUSTER_LABEL = "cnpg.io/cluster"
INSTANCE_NAME_LABEL = "cnpg.io/instanceName"
POD_ROLE_LABEL = "cnpg.io/podRole"
INSTANCE_ROLE_LABEL = "cnpg.io/instanceRole"
LEGACY_ROLE_LABEL = "role"  # deprecated by CNPG in favour of cnpg.io/instanceRole, still set
# Day-2 operations (pkg/utils/labels_annotations.go, pkg/reconciler/hibernation/status.go)
RESTARTED_AT_ANNOTATION = "kubectl.kubernetes.io/restartedAt"
RELOADED_AT_ANNOTATION = "cnpg.io/reloadedAt"
HIBERNATION_ANNOTATION = "cnpg.io/hibernation"
HIBERNATION_CONDITION = "cnpg.io/hibernation"
HIBERNATED_REASON = "Hibernated"
FENCED_INSTANCES_ANNOTATION = "cnpg.io/fencedInstances"
FENCE_ALL = "*"
UNRECOVERABLE_ANNOTATION = "alpha.cnpg.io/unrecoverable"
PHASE_INPLACE_PRIMARY_RESTART = "Primary instance is being restarted in-place"
ROLE_PRIMARY = "primary"
ROLE_REPLICA = "replica"
POD_ROLE_INSTANCE = "instance"
RESERVED_ROLES = frozenset({"postgres", "streaming_replica"})
POSTGRES_PORT = 5432
CLUSTER_DOMAIN = "cluster.local"
ERR_MANAGED_BY_CLUSTER = "database role is already managed by the CNPG cluster"

Json = dict[str, Any]
Key = tuple[str, str, str]  # (kind, namespace, name); kind is a registered handler kind


def api_error_text(exc: ApiException) -> str:
    """Status code, reason and the API's message (not the response headers)."""
    try:
        message = json.loads(exc.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        message = ""
    return f"{exc.status} {exc.reason}: {message}".strip().rstrip(":")


def is_namespace_terminating(exc: ApiException) -> bool:
    return exc.status == 403 and "NamespaceTerminating" in str(exc.body or "")


def pg_error_text(exc: BaseException) -> str:
    """One line: primary message, detail, SQLSTATE (never the statement, which may hold a password)."""
    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        text = exc.diag.message_primary
        if exc.diag.message_detail:
            text += f" ({exc.diag.message_detail.strip()})"
        if exc.sqlstate:
            text += f" (SQLSTATE {exc.sqlstate})"
        return text
    return " ".join(str(exc).split())



def owner_reference(obj: Mapping[str, Any]) -> Json:
    meta = obj["metadata"]
    return {"apiVersion": obj.get("apiVersion", API_VERSION), "kind": obj.get("kind", "Cluster"),
            "name": meta["name"], "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}



def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def upsert_condition(conditions: Sequence[Mapping[str, Any]], *, type_: str, status: str, reason: str,
                     message: str, generation: int, now: str) -> list[Json]:
    """Replace the condition of that type (lastTransitionTime kept when the status did not change)."""
    previous = next((c for c in conditions if c.get("type") == type_), None)
    changed = previous is None or previous.get("status") != status
    condition = {"type": type_, "status": status, "reason": reason, "message": message,
                 "observedGeneration": generation,
                 "lastTransitionTime": now if changed or previous is None
                 else previous.get("lastTransitionTime", now)}
    return [dict(c) for c in conditions if c.get("type") != type_] + [condition]



def crd_status(generation: int, error: str | None, extra: Mapping[str, Any] | None = None) -> Json:
    """status of a Database/DatabaseRole, CNPG's way: observedGeneration moves only on success."""
    status: Json = {"applied": error is None, "message": error}
    if error is None:
        status["observedGeneration"] = generation
    status.update(extra or {})
    return status


def merge_patch(old: Mapping[str, Any], new: Mapping[str, Any]) -> Json:
    """RFC 7386 merge patch turning `old` into `new` (keys missing from `new` are removed)."""
    patch: Json = {key: None for key in old if key not in new}
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = merge_patch(before, value)
            if sub:
                patch[key] = sub
        elif value is None:
            if key in old:
                patch[key] = None
        elif before != value:
            patch[key] = value
    return patch


def status_patch(current: Mapping[str, Any], owned: Mapping[str, Any]) -> Json:
    """Merge patch for the keys we own (None = remove); other status keys are left alone."""
    return merge_patch({k: current[k] for k in owned if k in current}, owned)


def finalizers_with(obj: Mapping[str, Any], finalizer: str, present: bool) -> list[str] | None:
    """The new finalizer list, or None when it already is as wanted."""
    current = list(obj["metadata"].get("finalizers") or [])
    if (finalizer in current) == present:
        return None
    return [*current, finalizer] if present else [f for f in current if f != finalizer]

