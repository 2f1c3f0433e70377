"""Configuration changes through PgClusterRequest (issue #12): parameters (reload vs restart), storage (grow only),
synchronous replication, in-place major upgrade (never down) — through a real MCP client and kubectl-applied
intents, against the real control plane, CNPG's real webhooks, the operator, the simulator and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from mcp import Client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from devcluster.postgres import PostgresServer
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import error, gateway_server, live_cluster, ok, text, unique

CLUSTER = "PgClusterRequest"
CNPG = (constants.CNPG_GROUP, constants.CNPG_VERSION)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gateway(control_plane: ControlPlane, operator: OperatorProcess) -> Any:
    return gateway_server(control_plane)


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not {what} after {timeout}s"
        time.sleep(0.3)


def show(postgres: PostgresServer, database: str, setting: str) -> str:
    """SHOW <setting> in a new connection to the cluster's database."""
    with psycopg.connect(postgres.superuser_dsn(database)) as connection:
        row = connection.execute(f"SHOW {setting}").fetchone()
    assert row is not None
    return str(row[0])


def make_cluster(intents: Intents, namespace: str, name: str, database: str, **spec: Any) -> dict[str, Any]:
    intents.create(CLUSTER, namespace, name, {"instances": 1, "storage": {"size": "1Gi"}, "postgresVersion": "16",
                                              "bootstrap": {"database": database, "owner": database}, **spec})
    return intents.wait_ready(CLUSTER, namespace, name)


def cnpg_refusal(k8s: Any, namespace: str, name: str, patch: dict[str, Any]) -> str:
    """A direct patch of the Cluster (as with kubectl) that CNPG's real validating webhook refuses."""
    with pytest.raises(ApiException) as refused:
        client.CustomObjectsApi(k8s).patch_namespaced_custom_object(*CNPG, namespace, constants.CNPG_CLUSTERS, name,
                                                                    patch, dry_run="All")
    return str(refused.value.body)


@pytest.mark.anyio
async def test_parameter_change_is_a_reload_seen_by_show(gateway: Any, postgres: PostgresServer, namespace: str,
                                                         intents: Intents) -> None:
    database = unique("cfg")
    make_cluster(intents, namespace, "reloaded", database)
    assert show(postgres, database, "work_mem") == "4MB"
    async with Client(gateway) as mcp:
        preview = ok(await mcp.call_tool("update_postgres_cluster", {
            "name": "reloaded", "namespace": namespace, "parameters": {"work_mem": "64MB"}, "dry_run": True}))
        assert preview["effect"] == "reload" and preview["applied"] is False
        assert preview["changes"]["parameters.work_mem"]["why"] == "pg_settings.context user"
        assert "RELOAD" in text(await mcp.call_tool("update_postgres_cluster", {
            "name": "reloaded", "namespace": namespace, "parameters": {"work_mem": "64MB"}, "dry_run": True}))
        assert show(postgres, database, "work_mem") == "4MB"  # a dry run changes nothing
        restart = ok(await mcp.call_tool("update_postgres_cluster", {
            "name": "reloaded", "namespace": namespace, "parameters": {"max_connections": "200"}, "dry_run": True}))
        assert restart["effect"] == "restart"
        assert restart["changes"]["parameters.max_connections"]["old"] == "100"

        done = ok(await mcp.call_tool("update_postgres_cluster", {
            "name": "reloaded", "namespace": namespace, "parameters": {"work_mem": "64MB"}}))
    assert done["applied"] is True and done["effect"] == "reload", done
    assert live_cluster(intents.custom.api_client, namespace, "reloaded")["spec"]["postgresql"]["parameters"][  # type: ignore[index]
        "work_mem"] == "64MB"
    wait_until(lambda: show(postgres, database, "work_mem") == "64MB", "SHOW work_mem = 64MB")
    request = intents.wait_ready(CLUSTER, namespace, "reloaded")
    assert "work_mem 4MB" not in request["status"]["lastChange"] and "(reload)" in request["status"]["lastChange"]


@pytest.mark.anyio
async def test_refusals_and_major_upgrade_through_mcp(gateway: Any, k8s: Any, namespace: str,
                                                      intents: Intents) -> None:
    make_cluster(intents, namespace, "guarded", unique("guard"))
    async with Client(gateway) as mcp:
        shrink = await mcp.call_tool("update_postgres_cluster", {"name": "guarded", "namespace": namespace,
                                                                 "storage_size": "500Mi"})
        assert "cannot shrink" in error(shrink, "REFUSED")
        fixed = await mcp.call_tool("update_postgres_cluster", {"name": "guarded", "namespace": namespace,
                                                                "parameters": {"port": "5433"}})
        assert "fixed by CloudNativePG" in error(fixed, "INVALID_ARGUMENT")
        down = await mcp.call_tool("update_postgres_cluster", {"name": "guarded", "namespace": namespace,
                                                               "postgres_version": "15"})
        assert "cannot be downgraded from major 16 to 15" in error(down, "REFUSED")
        unconfirmed = ok(await mcp.call_tool("update_postgres_cluster", {
            "name": "guarded", "namespace": namespace, "postgres_version": "17"}))
        assert unconfirmed["effect"] == "major-upgrade" and unconfirmed["applied"] is False
        assert live_cluster(k8s, namespace, "guarded")["spec"]["imageName"].endswith(":16")  # type: ignore[index]
        grown = ok(await mcp.call_tool("update_postgres_cluster", {
            "name": "guarded", "namespace": namespace, "storage_size": "2Gi"}))
        assert grown["applied"] is True and grown["effect"] == "online"
        upgraded = await mcp.call_tool("update_postgres_cluster", {
            "name": "guarded", "namespace": namespace, "postgres_version": "17", "confirm_major_upgrade": True})
    assert "STOPS ALL instances and runs pg_upgrade" in text(upgraded) and ok(upgraded)["applied"] is True
    cluster = live_cluster(k8s, namespace, "guarded")
    assert cluster is not None and cluster["spec"]["imageName"] == f"{constants.CNPG_IMAGE_REPOSITORY}:17"
    assert cluster["spec"]["storage"]["size"] == "2Gi"
    wait_until(lambda: (live_cluster(k8s, namespace, "guarded") or {}).get("status", {}).get(
        "pgDataImageInfo", {}).get("majorVersion") == 17, "the data at major 17")
    # Going back down is refused by CNPG's own webhook too (it compares with status.pgDataImageInfo).
    body = cnpg_refusal(k8s, namespace, "guarded", {"spec": {"imageName": f"{constants.CNPG_IMAGE_REPOSITORY}:16"}})
    assert "can't downgrade from major 17 to 16" in body


def test_configuration_through_kubectl_applied_intents(operator: OperatorProcess, k8s: Any, namespace: str,
                                                       intents: Intents) -> None:
    make_cluster(intents, namespace, "declared", unique("decl"))
    # Refused by the API server at once (the CRD's rules), before the operator or CNPG sees anything.
    for spec, message in (({"storage": {"size": "512Mi"}}, "can only grow"),
                          ({"parameters": {"shared_preload_libraries": "pgaudit"}}, "fixed by CloudNativePG"),
                          ({"postgresVersion": "15"}, "cannot go down")):
        with pytest.raises(ApiException) as refused:
            intents.patch_spec(CLUSTER, namespace, "declared", spec)
        assert refused.value.status == 422 and message in str(refused.value.body), refused.value.body
    # ... and by CNPG's real webhook when someone writes the Cluster itself.
    assert "Can't set fixed configuration parameter" in cnpg_refusal(
        k8s, namespace, "declared", {"spec": {"postgresql": {"parameters": {"port": "5433"}}}})
    assert "can't shrink existing storage" in cnpg_refusal(k8s, namespace, "declared",
                                                           {"spec": {"storage": {"size": "512Mi"}}})

    # Refused by the operator before any write (one instance cannot have a synchronous standby) ...
    intents.patch_spec(CLUSTER, namespace, "declared", {"synchronous": {"method": "any", "number": 1}})
    ours = intents.wait_reason(CLUSTER, namespace, "declared", "Refused")
    assert "must be less than the number of instances (1)" in ours["status"]["message"]
    # ... or by CNPG's webhook when the operator writes the Cluster (reported, not retried blindly).
    intents.patch_spec(CLUSTER, namespace, "declared", {"synchronous": None, "parameters": {"not.a.valid.name": "1"}})
    by_cnpg = intents.wait_for(CLUSTER, namespace, "declared", lambda r: "CloudNativePG refused the change" in (
        r.get("status") or {}).get("message", ""), "refused by CNPG")
    assert intents.ready(by_cnpg)["reason"] == "Refused"  # type: ignore[index]
    assert "not.a.valid.name" not in live_cluster(k8s, namespace, "declared")["spec"]["postgresql"]["parameters"]  # type: ignore[index]

    intents.patch_spec(CLUSTER, namespace, "declared", {
        "instances": 2, "parameters": {"not.a.valid.name": None}, "storage": {"size": "3Gi"},
        "pgHba": ["host all all 10.0.0.0/8 scram-sha-256"],
        "synchronous": {"method": "any", "number": 1, "dataDurability": "preferred", "failoverQuorum": True},
        "resources": {"requests": {"memory": "512Mi"}}})
    request = intents.wait_ready(CLUSTER, namespace, "declared")
    cluster = live_cluster(k8s, namespace, "declared")
    assert cluster is not None
    assert cluster["spec"]["storage"]["size"] == "3Gi" and cluster["spec"]["instances"] == 2
    assert cluster["spec"]["postgresql"]["pg_hba"] == ["host all all 10.0.0.0/8 scram-sha-256"]
    assert cluster["spec"]["postgresql"]["synchronous"] == {"method": "any", "number": 1,
                                                            "dataDurability": "preferred", "failoverQuorum": True}
    assert cluster["spec"]["resources"]["requests"] == {"memory": "512Mi"}
    assert "restart" in request["status"]["lastChange"] and "storage.size" in request["status"]["lastChange"]


def test_adopted_cluster_changes_only_what_the_request_sets(operator: OperatorProcess, k8s: Any, namespace: str,
                                                            intents: Intents) -> None:
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(*CNPG, namespace, constants.CNPG_CLUSTERS, {
        "apiVersion": constants.CNPG_API_VERSION, "kind": "Cluster", "metadata": {"name": "legacy"},
        "spec": {"instances": 2, "storage": {"size": "2Gi"}, "imageName": f"{constants.CNPG_IMAGE_REPOSITORY}:16",
                 "postgresql": {"parameters": {"work_mem": "8MB", "maintenance_work_mem": "128MB"}}}})
    wait_until(lambda: (live_cluster(k8s, namespace, "legacy") or {}).get("status", {}).get("pgDataImageInfo"),
               "the simulator's status")
    # A request that would shrink the adopted Cluster's volume is refused by the operator: nothing changes.
    intents.create(CLUSTER, namespace, "legacy", {"adoptExisting": True, "storage": {"size": "1Gi"},
                                                  "parameters": {"work_mem": "32MB"}})
    refused = intents.wait_reason(CLUSTER, namespace, "legacy", "Refused")
    assert "cannot shrink from 2Gi to 1Gi" in refused["status"]["message"]
    assert live_cluster(k8s, namespace, "legacy")["spec"]["postgresql"]["parameters"]["work_mem"] == "8MB"  # type: ignore[index]
    # Without the storage it owns the one parameter only.
    intents.custom.replace_namespaced_custom_object(
        constants.GROUP, constants.VERSION, namespace, constants.CLUSTER_REQUEST_PLURAL, "legacy",
        {**intents.get(CLUSTER, namespace, "legacy"), "spec": {"adoptExisting": True,  # type: ignore[dict-item]
                                                               "parameters": {"work_mem": "32MB"}}})
    intents.wait_ready(CLUSTER, namespace, "legacy")
    cluster = live_cluster(k8s, namespace, "legacy")
    assert cluster is not None
    parameters = cluster["spec"]["postgresql"]["parameters"]
    assert parameters["work_mem"] == "32MB" and parameters["maintenance_work_mem"] == "128MB"
    assert cluster["spec"]["instances"] == 2 and cluster["spec"]["storage"]["size"] == "2Gi"
    assert cluster["spec"]["imageName"] == f"{constants.CNPG_IMAGE_REPOSITORY}:16"


def test_reload_or_restart_table_matches_the_sandbox_postgresql(postgres: PostgresServer) -> None:
    """cnpg_mcp_api/pg_contexts.py is generated from this PostgreSQL (`postgres --describe-config`)."""
    from devcluster import pg_contexts_gen  # noqa: PLC0415

    assert pg_contexts_gen.main(["--check"]) == 0, "regenerate with: python -m devcluster.pg_contexts_gen"
