"""Kopf's diff base in memory (issue #14): no annotation write, and events that change only status or
Kopf's own annotations still find nothing to handle."""

from __future__ import annotations

from typing import Any

import kopf

from cnpg_mcp_api import constants
from cnpg_mcp_operator.diffbase import MemoryDiffBaseStorage, UnmarkedProgressStorage


def body(**changes: Any) -> kopf.Body:
    raw: dict[str, Any] = {"apiVersion": "cnpg-mcp.io/v1alpha1", "kind": "PgRoleRequest",
                           "metadata": {"name": "r", "namespace": "t", "uid": "u-1",
                                        "annotations": {f"{constants.KOPF_ANNOTATIONS_PREFIX}/progress": "x",
                                                        "team": "a"}},
                           "spec": {"cluster": "pg", "roleName": "app"}, "status": {}}
    raw.update(changes)
    return kopf.Body(raw)  # type: ignore[arg-type]


def test_the_essence_is_kept_in_memory_and_nothing_goes_into_the_patch() -> None:
    storage = MemoryDiffBaseStorage(prefix=constants.KOPF_ANNOTATIONS_PREFIX)
    first = body()
    assert storage.fetch(body=first) is None  # never handled: Kopf's CREATE
    patch = kopf.Patch()
    storage.store(body=first, patch=patch, essence=storage.build(body=first))
    assert not patch  # no API write
    assert storage.fetch(body=first) == {"spec": {"cluster": "pg", "roleName": "app"},
                                         "metadata": {"annotations": {"team": "a"}}}


def test_status_and_own_annotations_are_no_change_and_a_deletion_forgets() -> None:
    storage = MemoryDiffBaseStorage(prefix=constants.KOPF_ANNOTATIONS_PREFIX)
    first = body()
    storage.store(body=first, patch=kopf.Patch(), essence=storage.build(body=first))
    echo = body(status={"conditions": [{"type": "Ready"}]})
    echo["metadata"]["annotations"][f"{constants.KOPF_ANNOTATIONS_PREFIX}/progress"] = "y"
    assert storage.build(body=echo) == storage.fetch(body=echo)  # Kopf's NOOP
    edited = body(spec={"cluster": "pg", "roleName": "other"})
    assert storage.build(body=edited) != storage.fetch(body=edited)  # Kopf's UPDATE
    deleting = body(metadata={"name": "r", "namespace": "t", "uid": "u-1",
                              "deletionTimestamp": "2026-01-01T00:00:00Z"})
    assert storage.fetch(body=deleting) is None and len(storage) == 0


def test_progress_is_stored_without_kopfs_marker_annotation() -> None:
    storage = UnmarkedProgressStorage(prefix=constants.KOPF_ANNOTATIONS_PREFIX)
    patch = kopf.Patch()
    storage.store(key=kopf.HandlerId("reconcile"), record={"started": "now", "retries": 1},
                  body=body(), patch=patch)
    annotations = patch["metadata"]["annotations"]
    assert f"{constants.KOPF_ANNOTATIONS_PREFIX}/reconcile" in annotations
    assert f"{constants.KOPF_ANNOTATIONS_PREFIX}/kopf-managed" not in annotations
