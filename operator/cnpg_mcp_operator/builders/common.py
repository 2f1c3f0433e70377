"""Small pieces every builder shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnpg_mcp_api import constants

Json = dict[str, Any]


def owner_reference(body: Mapping[str, Any]) -> Json:
    """A controller ownerReference to the intent `body`, so the GC removes what it produced."""
    meta = body["metadata"]
    return {
        "apiVersion": body.get("apiVersion", constants.API_VERSION),
        "kind": body["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_cnpg_object(kind: str, body: Mapping[str, Any], cluster: str, spec: Json) -> Json:
    """A CNPG object named like the intent `body`, in its namespace, labelled and owned by it."""
    meta = body["metadata"]
    return {
        "apiVersion": constants.CNPG_API_VERSION,
        "kind": kind,
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": produced_labels(meta["name"], cluster),
            "ownerReferences": [owner_reference(body)],
        },
        "spec": spec,
    }


def produced_labels(request_name: str, cluster: str | None = None) -> dict[str, str]:
    labels = {**constants.MANAGED_BY, constants.REQUEST_LABEL: request_name}
    if cluster:
        labels[constants.CNPG_CLUSTER_LABEL] = cluster
    return labels
