"""What a PgClusterRequest changes on its Cluster, each change's effect, and the refusals (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from cnpg_mcp_api.cluster_changes import MAJOR_UPGRADE, ONLINE, RELOAD, RESTART, cluster_changes
from cnpg_mcp_api.cnpg_rules import fixed_parameters, image_major, parameter_effect, quantity_bytes
from cnpg_mcp_api.models import PgClusterRequestSpec

IMAGE = "ghcr.io/cloudnative-pg/postgresql"


def live(**spec: Any) -> dict[str, Any]:
    base = {"instances": 1, "imageName": f"{IMAGE}:16", "storage": {"size": "1Gi"},
            "postgresql": {"parameters": {"max_connections": "100", "shared_buffers": "256MB"}}}
    return {"spec": {**base, **spec}, "status": {"pgDataImageInfo": {"majorVersion": 16}}}


def test_pg_settings_context_decides_reload_or_restart() -> None:
    assert parameter_effect("work_mem").effect == "reload"
    assert parameter_effect("log_min_duration_statement").context == "superuser"
    assert parameter_effect("checkpoint_timeout").context == "sighup"
    assert parameter_effect("max_connections").effect == "restart"
    assert parameter_effect("pg_stat_statements.max").effect == "restart"  # unknown: restart, to be safe


def test_cnpg_rules_helpers() -> None:
    assert fixed_parameters({"port": "1", "work_mem": "1MB", "ssl": "on"}) == ["port", "ssl"]
    assert image_major(f"{IMAGE}:17.2-bookworm") == 17 and image_major(f"{IMAGE}:16") == 16
    assert image_major("postgres@sha256:abc") is None
    assert quantity_bytes("1Gi") == 2**30 and quantity_bytes("500M") == 500 * 10**6 and quantity_bytes("x") is None


def test_parameters_are_classified_and_only_the_listed_ones_patched() -> None:
    changes = cluster_changes({"instances": 1, "parameters": {"work_mem": "64MB", "max_connections": "200"}},
                              live())
    assert changes.patch == {"postgresql": {"parameters": {"work_mem": "64MB", "max_connections": "200"}}}
    assert {c.field: c.effect for c in changes.changes} == {"parameters.max_connections": RESTART,
                                                            "parameters.work_mem": RELOAD}
    assert changes.effect == RESTART and not changes.refusals


def test_storage_grows_and_never_shrinks() -> None:
    grown = cluster_changes({"instances": 1, "storage": {"size": "2Gi"}}, live())
    assert grown.patch["storage"] == {"size": "2Gi"} and grown.effect == ONLINE
    shrunk = cluster_changes({"instances": 1, "storage": {"size": "512Mi"}}, live())
    assert shrunk.refusals == ["storage.size cannot shrink from 1Gi to 512Mi (CloudNativePG only grows volumes)"]
    assert "storage" not in shrunk.patch
    assert "storage" not in cluster_changes({"instances": 1}, live(storage={"size": "5Gi"})).patch  # not owned


def test_major_upgrade_up_only() -> None:
    up = cluster_changes({"instances": 1, "postgresVersion": "17"}, live())
    assert up.patch["imageName"] == f"{IMAGE}:17" and up.effect == MAJOR_UPGRADE
    assert "pg_upgrade" in up.changes[0].why
    down = cluster_changes({"instances": 1, "postgresVersion": "15"}, live())
    assert down.refusals == ["PostgreSQL cannot be downgraded from major 16 to 15"] and "imageName" not in down.patch
    minor = cluster_changes({"instances": 1, "imageName": f"{IMAGE}:16.4"}, live())
    assert minor.effect == RESTART
    catalog = cluster_changes({"instances": 1, "postgresVersion": "17"},
                              live(imageCatalogRef={"name": "pg", "major": 16}))
    assert catalog.refusals and "image catalog" in catalog.refusals[0]


def test_synchronous_and_pg_hba() -> None:
    sync = {"method": "any", "number": 1, "failoverQuorum": True}
    changes = cluster_changes({"instances": 2, "synchronous": sync, "pgHba": ["host all all all md5"]},
                              live(instances=2))
    assert changes.patch["postgresql"] == {"synchronous": sync, "pg_hba": ["host all all all md5"]}
    assert changes.effect == RELOAD
    dropped = cluster_changes({"instances": 2, "synchronous": {"method": "first", "number": 1}},
                              live(instances=2, postgresql={"synchronous": sync}))
    assert dropped.patch["postgresql"]["synchronous"] == {"method": "first", "number": 1, "failoverQuorum": None}
    too_many = cluster_changes({"instances": 1, "synchronous": {"method": "any", "number": 1}}, live())
    assert "must be less than the number of instances (1)" in too_many.refusals[0]


def test_adopting_request_owns_only_what_it_sets() -> None:
    cluster = live(instances=3, postgresql={"parameters": {"work_mem": "8MB"}})
    assert cluster_changes({"adoptExisting": True}, cluster).patch == {}
    assert cluster_changes({"adoptExisting": True, "parameters": {"work_mem": "16MB"}}, cluster).patch == {
        "postgresql": {"parameters": {"work_mem": "16MB"}}}


def test_fixed_parameters_are_refused_by_the_model() -> None:
    with pytest.raises(ValueError, match="port: fixed by CloudNativePG"):
        PgClusterRequestSpec.model_validate({"parameters": {"port": "5433"}})
