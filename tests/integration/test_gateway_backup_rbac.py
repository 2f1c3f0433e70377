"""deploy/'s gateway RBAC for the backups toolset, on the real API server: exactly the new rights (the
backup intents written, CNPG backups and Barman Cloud stores only read, Secrets still never), and the
backup tools work end to end with the gateway running as its ServiceAccount."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from mcp import Client

from devcluster.controlplane import ControlPlane
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import gateway_server, ok
from tests.integration.test_deploy_rbac import (
    NAMESPACE,
    api_as,
    denied,
    deployed,
    read_only_account,
    token_kubeconfig,
)
from tests.integration.test_operator_backups import BARMAN, CNPG, SCHEDULE_KIND, get
from tests.integration.test_operator_roles import make_cluster

__all__ = ["deployed", "read_only_account"]  # fixtures shared with test_deploy_rbac
GATEWAY_USER = f"system:serviceaccount:{NAMESPACE}:cnpg-mcp-gateway"
BACKUP_INTENTS = ("pgbackupstorerequests", "pgbackuprequests", "pgbackupschedulerequests")


def gateway_allowed(k8s: Any, group: str, resource: str, verb: str) -> bool:
    review = client.AuthorizationV1Api(k8s).create_subject_access_review({
        "spec": {"user": GATEWAY_USER, "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
                 "resourceAttributes": {"group": group, "resource": resource, "verb": verb, "namespace": "any"}}})
    return bool(review.status.allowed)


GRANTED = [
    *[("cnpg-mcp.io", plural, verb) for plural in BACKUP_INTENTS
      for verb in ("get", "list", "watch", "create", "patch", "delete")],
    *[("postgresql.cnpg.io", plural, verb) for plural in ("backups", "scheduledbackups")
      for verb in ("get", "list", "watch")],
    *[("barmancloud.cnpg.io", "objectstores", verb) for verb in ("get", "list", "watch")],
]
NOT_GRANTED = [
    *[("postgresql.cnpg.io", plural, verb) for plural in ("backups", "scheduledbackups")
      for verb in ("create", "patch", "update", "delete")],  # the operator writes them, from the intents
    *[("barmancloud.cnpg.io", "objectstores", verb) for verb in ("create", "patch", "update", "delete")],
    *[("", "secrets", verb) for verb in ("get", "list", "watch")],  # backup credentials live in Secrets
    ("postgresql.cnpg.io", "clusters", "patch"),  # archiving is turned on by the operator, not the gateway
]


def test_gateway_has_exactly_the_backup_rights(deployed: str, k8s: Any) -> None:
    missing = [r for r in GRANTED if not gateway_allowed(k8s, *r)]
    extra = [r for r in NOT_GRANTED if gateway_allowed(k8s, *r)]
    assert not missing and not extra, f"missing {missing}; not wanted {extra}"


def test_read_only_variant_reads_backups_and_writes_no_backup_intent(deployed: str, read_only_account: Path,
                                                                      namespace: str) -> None:
    custom = client.CustomObjectsApi(api_as(read_only_account))
    custom.list_namespaced_custom_object(*CNPG, namespace, "backups")
    custom.list_namespaced_custom_object(*CNPG, namespace, "scheduledbackups")
    custom.list_namespaced_custom_object(*BARMAN, namespace, "objectstores")
    custom.list_namespaced_custom_object("cnpg-mcp.io", "v1alpha1", namespace, "pgbackuprequests")
    denied(lambda: custom.create_namespaced_custom_object(
        "cnpg-mcp.io", "v1alpha1", namespace, "pgbackuprequests",
        {"apiVersion": "cnpg-mcp.io/v1alpha1", "kind": "PgBackupRequest", "metadata": {"name": "b"},
         "spec": {"cluster": "c"}}))
    denied(lambda: client.CoreV1Api(api_as(read_only_account)).list_namespaced_secret(namespace))


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_backup_tools_work_as_the_gateway_service_account(
    deployed: str, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path, intents: Intents,
    operator: OperatorProcess, cnpg_simulator: Any, anyio_backend: str,
) -> None:
    config = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-gateway", tmp_path / "gw")
    client.CoreV1Api(k8s).create_namespaced_secret(namespace, {
        "metadata": {"name": "minio-creds"}, "stringData": {"ACCESS_KEY_ID": "id", "ACCESS_SECRET_KEY": "key"}})
    cluster = make_cluster(intents, namespace)
    gateway = gateway_server(control_plane, kubeconfig=str(config), watch_cache=True)
    async with Client(gateway) as mcp:
        configured = ok(await mcp.call_tool("configure_postgres_backups", {
            "cluster_name": cluster, "destination_path": "s3://backups/pg", "credentials_secret": "minio-creds",
            "namespace": namespace}))
        assert configured["archiving"] is True, configured
        backup = ok(await mcp.call_tool("create_postgres_backup", {
            "cluster_name": cluster, "wait": True, "timeout": 60, "namespace": namespace}))
        assert backup["phase"] == "completed", backup
        schedule = ok(await mcp.call_tool("schedule_postgres_backup", {
            "cluster_name": cluster, "schedule": "0 0 3 * * *", "namespace": namespace}))
        intents.wait_ready(SCHEDULE_KIND, namespace, schedule["schedule_name"])
        listing = ok(await mcp.call_tool("list_postgres_backups", {"cluster_name": cluster, "namespace": namespace}))
        assert listing["window"]["first_recoverability_point"] and listing["schedules"]
        restored = ok(await mcp.call_tool("restore_postgres_cluster", {
            "name": f"{cluster}-copy", "source_cluster": cluster, "namespace": namespace, "wait": True,
            "timeout": 60}))
        assert restored["ready"] is True, restored
        ok(await mcp.call_tool("delete_postgres_backup_schedule", {"cluster_name": cluster, "namespace": namespace}))
    assert get(k8s, CNPG, namespace, "backups", backup["backup"]) is not None
    # the identity that configured the store with this Secret's name still cannot read the Secret
    denied(lambda: client.CoreV1Api(api_as(config)).read_namespaced_secret("minio-creds", namespace))
