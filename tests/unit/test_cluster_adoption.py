"""Adoption owns only what the request sets explicitly; a missing Cluster is told apart by status."""

from __future__ import annotations

from typing import Any

import yaml

from cnpg_mcp_api.crdgen import CRD_DIR
from cnpg_mcp_operator.builders.cluster import build_cluster_patch, desired_instances
from mcp_gateway import render

LIVE: dict[str, Any] = {"metadata": {"name": "legacy", "uid": "u1"},
                        "spec": {"instances": 1, "postgresql": {"parameters": {"work_mem": "8MB"}}}}


def request(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "legacy", "namespace": "ns", "generation": 1}, "spec": spec,
            "status": status or {}}


def test_adopting_with_defaults_patches_nothing() -> None:
    assert build_cluster_patch(request({"adoptExisting": True}), LIVE) is None
    assert desired_instances(request({"adoptExisting": True}), LIVE) == 1


def test_adopting_patches_only_explicit_fields() -> None:
    patch = build_cluster_patch(request({"adoptExisting": True, "instances": 2}), LIVE)
    assert patch == {"spec": {"instances": 2}}
    patch = build_cluster_patch(request({"adoptExisting": True, "parameters": {"max_connections": "50"}}), LIVE)
    assert patch == {"spec": {"postgresql": {"parameters": {"max_connections": "50"}}}}


def test_a_created_cluster_still_gets_the_defaults() -> None:
    patch = build_cluster_patch(request({}), LIVE)
    assert patch is not None and patch["spec"]["instances"] == 3
    assert desired_instances(request({}), None) == 3


def test_the_crd_has_no_schema_default_for_instances() -> None:
    crd = yaml.safe_load((CRD_DIR / "pgclusterrequests.cnpg-mcp.io.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert "default" not in spec["instances"], "admission would fill it in and hide what was set"


def test_a_deleted_cluster_is_not_shown_as_not_created_yet() -> None:
    deleted = request({}, {"conditions": [{"type": "Ready", "status": "False", "reason": "ClusterDeleted"}]})
    assert render.cluster_summary(None, deleted, detailed=False)["phase"].startswith("Deleted")
    assert render.cluster_summary(None, request({}), detailed=False)["phase"] == "Requested, not created yet"
