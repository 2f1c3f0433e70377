"""PgClusterRequest → CNPG Cluster manifest and the focused patch that keeps owned fields in line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnpg_mcp_api import constants
from cnpg_mcp_api.cluster_changes import ClusterChanges, cluster_changes, image_for, synchronous_wire
from cnpg_mcp_api.models import PgClusterRequestSpec
from cnpg_mcp_operator.builders.backup import recovery_bootstrap
from cnpg_mcp_operator.builders.common import Json, produced_labels


def build_cluster(body: Mapping[str, Any]) -> Json:
    """The Cluster to create. No ownerReference: deleting the request must never delete data."""
    spec = PgClusterRequestSpec.model_validate(body.get("spec") or {})
    meta = body["metadata"]
    cluster_spec: Json = {
        "instances": spec.instances,
        "imageName": image_for(spec),
        "storage": spec.storage.to_wire(),
        "postgresql": {"parameters": dict(spec.parameters)},
    }
    if spec.pg_hba is not None:
        cluster_spec["postgresql"]["pg_hba"] = list(spec.pg_hba)
    if (synchronous := synchronous_wire(spec)) is not None:
        cluster_spec["postgresql"]["synchronous"] = synchronous
    if spec.resources is not None:
        cluster_spec["resources"] = spec.resources.to_wire()
    if spec.node_maintenance_window is not None:
        cluster_spec["nodeMaintenanceWindow"] = spec.node_maintenance_window.to_wire()
    restored = recovery_bootstrap(spec)
    if restored is not None:
        cluster_spec["bootstrap"], cluster_spec["externalClusters"] = restored
    elif spec.bootstrap is not None:
        cluster_spec["bootstrap"] = {"initdb": spec.bootstrap.to_wire()}
    return {
        "apiVersion": constants.CNPG_API_VERSION,
        "kind": "Cluster",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": produced_labels(meta["name"])},
        "spec": cluster_spec,
    }


def adopts(body: Mapping[str, Any]) -> bool:
    """An adopting request owns only the fields its raw spec sets (defaults never touch the Cluster)."""
    return bool((body.get("spec") or {}).get("adoptExisting"))


def desired_instances(body: Mapping[str, Any], cluster: Mapping[str, Any] | None) -> int:
    """The instance count the request wants: its own, or (adopting, not set) the Cluster's."""
    raw = body.get("spec") or {}
    if "instances" not in raw and adopts(body) and cluster is not None:
        return int((cluster.get("spec") or {}).get("instances") or 1)
    return int(raw.get("instances") or PgClusterRequestSpec.model_fields["instances"].default)


def cluster_changes_for(body: Mapping[str, Any], cluster: Mapping[str, Any]) -> ClusterChanges:
    """What the request changes on the Cluster (and what it refuses): cnpg_mcp_api/cluster_changes.py."""
    return cluster_changes(body.get("spec") or {}, cluster)


def build_cluster_patch(body: Mapping[str, Any], cluster: Mapping[str, Any]) -> Json | None:
    """A merge patch of only the fields the request owns that differ; None when converged or refused.

    Owned: instances, the parameters the request lists (others are left alone), resources when the
    request sets them; storage.size (grow only), the image (never a lower major), pg_hba and synchronous
    replication and the node maintenance window when the request sets them. An adopting request owns
    instances and parameters only when its raw spec sets them (the CRD has no schema default for instances,
    so "set" is visible). Bootstrap is a creation-time choice and never patched.
    """
    changes = cluster_changes_for(body, cluster)
    if changes.refusals or not changes.patch:
        return None
    return {"spec": changes.patch}
