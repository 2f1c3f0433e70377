"""Poolers, pure parts: the Pooler the operator builds and patches, its verdict, the simulator's status."""

from __future__ import annotations

from typing import Any

import pytest

from cnpg_mcp_api.models import PgPoolerRequestSpec
from cnpg_mcp_operator.builders.pooler import build_pooler, pooler_patch
from cnpg_mcp_operator.pooler_readiness import pooler_verdict
from devcluster.simulator.poolers import deployment_body, pooler_status, service_body
from mcp_gateway.intents import pooler_update_patch

REQUEST: dict[str, Any] = {"apiVersion": "cnpg-mcp.io/v1alpha1", "kind": "PgPoolerRequest",
           "metadata": {"name": "db-pooler", "namespace": "ns", "uid": "u-1"},
           "spec": {"cluster": "db", "instances": 2, "pgbouncer": {"poolMode": "transaction",
                                                                   "parameters": {"default_pool_size": "10"}}}}


def test_built_pooler_is_owned_by_the_request_and_says_what_it_asks() -> None:
    pooler = build_pooler(REQUEST)
    assert pooler["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert pooler["spec"] == {"cluster": {"name": "db"}, "type": "rw", "instances": 2, "pgbouncer": {
        "poolMode": "transaction", "parameters": {"default_pool_size": "10"}, "paused": False}}


def test_patch_touches_only_what_differs_and_removes_dropped_parameters() -> None:
    desired = build_pooler(REQUEST)["spec"]
    live: dict[str, Any] = {**desired, "template": {"spec": {}},
                            "pgbouncer": {**desired["pgbouncer"], "parameters": {"max_client_conn": "9"}}}
    assert pooler_patch(desired, live) == {"spec": {"pgbouncer": {"parameters": {
        "default_pool_size": "10", "max_client_conn": None}}}}
    assert pooler_patch(desired, desired) is None


def test_verdict_follows_cnpg_phase_and_instances() -> None:
    pooler = {"metadata": {"name": "p"}, "status": {"phase": "active", "instances": 2}}
    assert pooler_verdict(pooler, 2).ready
    assert not pooler_verdict(pooler, 3).ready
    assert pooler_verdict({"metadata": {"name": "p"}, "status": {"phase": "failed", "phaseReason": "bad image"}},
                          1).reason == "Failed"
    assert pooler_verdict(None, 1).reason == "Pending"


def test_pgbouncer_parameters_outside_cnpg_allow_list_are_refused() -> None:
    with pytest.raises(ValueError, match="listen_port"):
        PgPoolerRequestSpec.model_validate({"cluster": "db", "pgbouncer": {"parameters": {"listen_port": "1"}}})
    patch = pooler_update_patch(REQUEST["spec"], pooler_type=None, instances=3, pool_mode=None, paused=True,
                                set_parameters={}, remove_parameters=["default_pool_size"])
    assert patch == {"spec": {"instances": 3, "pgbouncer": {"paused": True, "parameters": {"default_pool_size": None}}}}


def test_simulated_deployment_service_and_status_are_cnpg_shaped() -> None:
    pooler = {**build_pooler(REQUEST), "metadata": {"name": "db-pooler", "namespace": "ns", "uid": "p-1"}}
    assert deployment_body(pooler)["spec"]["selector"] == {"matchLabels": {"cnpg.io/poolerName": "db-pooler"}}
    assert service_body(pooler)["spec"]["ports"][0] == {"name": "pgbouncer", "port": 5432, "targetPort": "pgbouncer",
                                                        "protocol": "TCP"}
    assert pooler_status(pooler, 2, cluster_exists=True) == {"instances": 2, "phase": "active", "phaseReason": None}
    assert pooler_status(pooler, None, cluster_exists=False)["phaseReason"] == 'Cluster "db" not found'
