"""Every operation with deploy/'s ServiceAccounts: the operator's rights are enough (clusters/status patch,
Pod delete and patch) and it never hits a missing right; the gateway creates operations but cannot write a
Cluster's status itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from mcp import Client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import gateway_server, ok
from tests.integration.test_deploy_rbac import (
    NAMESPACE,
    PEERING,
    api_as,
    denied,
    deployed,
    rbac_denials,
    token_kubeconfig,
)
from tests.integration.test_operations_intents import healthy
from tests.integration.test_operator_roles import make_cluster, wait_until

__all__ = ["deployed"]  # the module-scoped fixture, shared with test_deploy_rbac


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_every_operation_runs_with_the_deployed_service_accounts(
    deployed: str, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path,
    operator: OperatorProcess, cnpg_simulator: Any, intents: Intents, anyio_backend: str,
) -> None:
    operator_config = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-operator", tmp_path / "op")
    gateway_config = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-gateway", tmp_path / "gw")
    operator.stop()  # one operator at a time: ours runs as the ServiceAccount
    least = OperatorProcess(operator_config, tmp_path / "operator-sa.log", ["--all-namespaces", f"--peering={PEERING}"])
    try:
        least.start()
        name = make_cluster(intents, namespace, instances=3)
        wait_until(lambda: healthy(k8s, namespace, name, 3), "three running instances")
        gateway = gateway_server(control_plane, kubeconfig=str(gateway_config), watch_cache=True)
        calls: list[tuple[str, dict[str, Any]]] = [
            ("switchover_postgres_cluster", {"target_instance": f"{name}-2"}),  # clusters/status
            ("restart_postgres_cluster", {"instance": f"{name}-2"}),  # primary now: status phase, in place
            ("restart_postgres_cluster", {"instance": f"{name}-3"}),  # a replica: delete its Pod
            ("rebuild_postgres_replica", {"instance": f"{name}-1"}),  # Pod patch
            ("reload_postgres_cluster", {}),  # Cluster annotations
            ("restart_postgres_cluster", {}),
            ("fence_postgres_instance", {"instance": f"{name}-3"}),
            ("fence_postgres_instance", {"instance": f"{name}-3", "action": "unfence"}),
            ("hibernate_postgres_cluster", {}),
            ("hibernate_postgres_cluster", {"state": "off"}),
        ]
        async with Client(gateway) as mcp:
            for tool, arguments in calls:
                done = ok(await mcp.call_tool(tool, {"name": name, "namespace": namespace, **arguments}))
                assert done["phase"] == "Succeeded", (tool, done)
                if done["operation"] not in ("fence", "hibernate"):  # those leave instances down on purpose
                    wait_until(lambda: healthy(k8s, namespace, name, 3), f"healthy after {tool}")
        assert not rbac_denials(least.log_since_start())  # the operator never hit a missing right
        gateway_api = api_as(gateway_config)
        denied(lambda: client.CustomObjectsApi(gateway_api).patch_namespaced_custom_object_status(
            constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, "clusters", name,
            {"status": {"targetPrimary": f"{name}-1"}}))
        denied(lambda: client.CoreV1Api(gateway_api).delete_namespaced_pod(f"{name}-1", namespace))
    finally:
        least.stop()
        operator.start()
