"""deploy/'s operator RBAC for poolers, on the real API server: exactly the new rights, and the pooler flow
works with the operator running as its ServiceAccount."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from devcluster.controlplane import ControlPlane
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_backup_rbac import allowed
from tests.integration.test_deploy_rbac import NAMESPACE, PEERING, deployed, rbac_denials, token_kubeconfig
from tests.integration.test_poolers import POOLER, deployment, live_pooler, make_cluster, wait_until

__all__ = ["deployed"]  # the module fixture, shared with test_deploy_rbac

GRANTED = [
    *[("cnpg-mcp.io", "pgpoolerrequests", verb, "") for verb in ("get", "list", "watch", "patch")],
    ("cnpg-mcp.io", "pgpoolerrequests", "patch", "status"),
    ("cnpg-mcp.io", "pgpoolerrequests", "update", "finalizers"),
    *[("postgresql.cnpg.io", "poolers", verb, "") for verb in ("get", "list", "watch", "create", "patch")],
]
NOT_GRANTED = [
    ("cnpg-mcp.io", "pgpoolerrequests", "create", ""),
    ("cnpg-mcp.io", "pgpoolerrequests", "delete", ""),
    ("postgresql.cnpg.io", "poolers", "delete", ""),  # garbage-collected with the request
    ("postgresql.cnpg.io", "poolers", "patch", "status"),  # CNPG's to write
    ("apps", "deployments", "create", ""),  # CNPG makes the pooler's Deployment, never the operator
]


def test_operator_has_exactly_the_pooler_rights(deployed: str, k8s: Any) -> None:
    missing = [r for r in GRANTED if not allowed(k8s, *r[:3], subresource=r[3])]
    extra = [r for r in NOT_GRANTED if allowed(k8s, *r[:3], subresource=r[3])]
    assert not missing and not extra, f"missing {missing}; not wanted {extra}"


def test_pooler_flow_as_the_operator_service_account(deployed: str, control_plane: ControlPlane, k8s: Any,
                                                     namespace: str, operator: OperatorProcess, intents: Intents,
                                                     tmp_path: Path) -> None:
    operator_config = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-operator", tmp_path / "op")
    operator.stop()  # one operator at a time
    least = OperatorProcess(operator_config, tmp_path / "operator-sa.log", ["--all-namespaces", f"--peering={PEERING}"])
    try:
        least.start()
        make_cluster(intents, namespace, "pooled")
        intents.create(POOLER, namespace, "pooled-rw", {"cluster": "pooled"})
        intents.wait_ready(POOLER, namespace, "pooled-rw")
        intents.patch_spec(POOLER, namespace, "pooled-rw", {"instances": 2})
        wait_until(lambda: (live_pooler(k8s, namespace, "pooled-rw") or {}).get("spec", {}).get("instances") == 2,
                   "scaled")
        intents.delete(POOLER, namespace, "pooled-rw")
        intents.wait_gone(POOLER, namespace, "pooled-rw")
        wait_until(lambda: deployment(k8s, namespace, "pooled-rw") is None, "Deployment gone")
        log = least.log_since_start()
        assert not rbac_denials(log), log[-3000:]
    finally:
        least.stop()
        operator.start()
