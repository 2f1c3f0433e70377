"""The in-memory diff base builds Kopf's essence from a trimmed body (no managedFields, no status to
deep-copy on every event, issue #14); the essence must be exactly the one Kopf builds from the whole body."""

from __future__ import annotations

from typing import Any, cast

import kopf

from cnpg_mcp_operator.diffbase import MemoryDiffBaseStorage


def intent() -> dict[str, Any]:
    return {
        "apiVersion": "cnpg-mcp.io/v1alpha1", "kind": "PgRoleRequest",
        "metadata": {"name": "app", "namespace": "ns", "uid": "u", "resourceVersion": "7", "generation": 2,
                     "finalizers": ["cnpg-mcp.io/finalizer"], "labels": {"team": "a"},
                     "annotations": {"cnpg-mcp.io/requested-by": "alice", "cnpg-mcp.io/reconcile_x": "{}",
                                     "note": "kept"},
                     "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}] * 50},
        "spec": {"cluster": "pg", "roleName": "app", "inRoles": ["reader"]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}], "applied": True},
    }


def test_the_essence_is_kopfs_own() -> None:
    body = kopf.Body(cast(kopf.RawBody, intent()))
    storage = MemoryDiffBaseStorage(prefix="cnpg-mcp.io")
    ours = storage.build(body=body)
    kopfs = kopf.DiffBaseStorage.build(storage, body=body)  # Kopf's build from the whole body
    kopfs["metadata"]["annotations"] = {key: value for key, value in kopfs["metadata"]["annotations"].items()
                                        if not key.startswith("cnpg-mcp.io/")}  # our storage leaves those out
    assert ours == kopfs
    assert ours == {"spec": intent()["spec"], "metadata": {"labels": {"team": "a"}, "annotations": {"note": "kept"}}}


def test_the_essence_is_a_copy() -> None:
    raw = intent()
    essence = MemoryDiffBaseStorage(prefix="cnpg-mcp.io").build(body=kopf.Body(cast(kopf.RawBody, raw)))
    raw["spec"]["inRoles"].append("writer")
    raw["metadata"]["labels"]["team"] = "b"
    assert essence["spec"]["inRoles"] == ["reader"] and essence["metadata"]["labels"] == {"team": "a"}
