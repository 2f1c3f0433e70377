"""Node maintenance through PgClusterRequest (issue #12): CNPG's spec.nodeMaintenanceWindow{inProgress, reusePVC}
set by a kubectl-applied intent and by update_postgres_cluster (dry run says what it means), checked on the
real Cluster the real CNPG webhook admitted."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from tests.integration.conftest import Intents
from tests.integration.gateway_helpers import live_cluster, ok, text, unique
from tests.integration.test_cluster_config import CLUSTER, anyio_backend, gateway, make_cluster, wait_until

__all__ = ["anyio_backend", "gateway"]  # fixtures reused from test_cluster_config


def window(k8s: Any, namespace: str, name: str) -> dict[str, Any] | None:
    return ((live_cluster(k8s, namespace, name) or {}).get("spec") or {}).get("nodeMaintenanceWindow")


def test_maintenance_window_through_a_kubectl_applied_intent(k8s: Any, gateway: Any, namespace: str,
                                                            intents: Intents) -> None:
    make_cluster(intents, namespace, "drained", unique("drain"))
    intents.patch_spec(CLUSTER, namespace, "drained", {"nodeMaintenanceWindow": {"inProgress": True,
                                                                                 "reusePVC": False}})
    wait_until(lambda: window(k8s, namespace, "drained") == {"inProgress": True, "reusePVC": False},
               "maintenance on the Cluster")
    intents.wait_ready(CLUSTER, namespace, "drained")
    intents.patch_spec(CLUSTER, namespace, "drained", {"nodeMaintenanceWindow": {"inProgress": False}})
    wait_until(lambda: (window(k8s, namespace, "drained") or {}).get("inProgress") is False, "maintenance over")


@pytest.mark.anyio
async def test_maintenance_window_through_mcp(gateway: Any, k8s: Any, namespace: str, intents: Intents) -> None:
    make_cluster(intents, namespace, "patched", unique("patch"))
    async with Client(gateway) as mcp:
        preview = await mcp.call_tool("update_postgres_cluster", {
            "name": "patched", "namespace": namespace, "maintenance_in_progress": True, "reuse_pvc": True,
            "dry_run": True})
        assert ok(preview)["applied"] is False and "nothing changed" in text(preview)
        assert "node maintenance" in text(preview) and "waits for the node" in text(preview), text(preview)
        assert window(k8s, namespace, "patched") is None
        done = await mcp.call_tool("update_postgres_cluster", {
            "name": "patched", "namespace": namespace, "maintenance_in_progress": True, "reuse_pvc": True})
        assert ok(done)["applied"] is True, text(done)
        assert window(k8s, namespace, "patched") == {"inProgress": True, "reusePVC": True}
        over = await mcp.call_tool("update_postgres_cluster", {
            "name": "patched", "namespace": namespace, "maintenance_in_progress": False})
        assert ok(over)["applied"] is True, text(over)
    assert window(k8s, namespace, "patched") == {"inProgress": False, "reusePVC": True}
