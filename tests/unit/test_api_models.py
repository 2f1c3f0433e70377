from __future__ import annotations

import pytest
from pydantic import ValidationError

from cnpg_mcp_api import policy
from cnpg_mcp_api.models import (
    CLUSTER_REQUEST,
    PgClusterRequestSpec,
    PgDatabaseRequestSpec,
    PgRoleRequestSpec,
    manifest,
)


def test_cluster_defaults_follow_the_original_server() -> None:
    spec = PgClusterRequestSpec()
    assert spec.instances == 3
    assert spec.storage.size == "10Gi"
    assert spec.parameters == {"max_connections": "100", "shared_buffers": "256MB"}
    assert spec.deletion_policy == "Retain"


@pytest.mark.parametrize("instances", [0, 11])
def test_instances_are_bounded(instances: int) -> None:
    with pytest.raises(ValidationError):
        PgClusterRequestSpec(instances=instances)


def test_role_names_are_postgres_identifiers() -> None:
    assert PgRoleRequestSpec.model_validate({"cluster": "c", "roleName": "app_user"}).role_name == "app_user"
    for bad in ("x" * 64, "", "a b", "a\"b"):  # App, 1abc, a-b are valid quoted names (issue #8 item 14)
        with pytest.raises(ValidationError):
            PgRoleRequestSpec.model_validate({"cluster": "c", "roleName": bad})


def test_wire_form_is_camel_case() -> None:
    spec = PgRoleRequestSpec.model_validate({"cluster": "c", "roleName": "r", "connectionLimit": 5})
    wire = spec.to_wire()
    assert wire["roleName"] == "r"
    assert wire["connectionLimit"] == 5
    assert "validUntil" not in wire


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        PgDatabaseRequestSpec.model_validate({"cluster": "c", "name": "d", "owner": "o", "colour": "red"})


def test_manifest() -> None:
    body = manifest(CLUSTER_REQUEST, "db", PgClusterRequestSpec(instances=1), namespace="ns",
                    annotations={"cnpg-mcp.io/requested-by": "alice"})
    assert body["apiVersion"] == "cnpg-mcp.io/v1alpha1"
    assert body["kind"] == "PgClusterRequest"
    assert body["metadata"] == {"name": "db", "namespace": "ns", "annotations": {"cnpg-mcp.io/requested-by": "alice"}}
    assert body["spec"]["instances"] == 1


class TestPolicy:
    def test_plain_role_is_allowed(self) -> None:
        assert policy.role_request_violations({"roleName": "app_user"}, allow_privileged=False,
                                              bootstrap_owner="app") == []

    @pytest.mark.parametrize("name", ["postgres", "streaming_replica", "cnpg_pooler_pgbouncer", "pg_monitor"])
    def test_reserved_names_are_refused_even_with_the_admin_policy(self, name: str) -> None:
        assert policy.role_request_violations({"roleName": name}, allow_privileged=True, bootstrap_owner=None)

    def test_bootstrap_owner_is_refused(self) -> None:
        found = policy.role_request_violations({"roleName": "app"}, allow_privileged=True, bootstrap_owner="app")
        assert found and "bootstrap owner" in found[0]

    @pytest.mark.parametrize("spec", [
        {"roleName": "r", "superuser": True},
        {"roleName": "r", "replication": True},
        {"roleName": "r", "bypassrls": True},
        {"roleName": "r", "inRoles": ["pg_read_server_files"]},
        {"roleName": "r", "inRoles": ["postgres"]},
    ])
    def test_privileged_requests_need_the_admin_policy(self, spec: dict[str, object]) -> None:
        assert policy.role_request_violations(spec, allow_privileged=False, bootstrap_owner=None)
        # the acknowledgement (privileged: true) is checked by the operator too, not only by CEL
        assert policy.role_request_violations(spec, allow_privileged=True, bootstrap_owner=None)
        assert not policy.role_request_violations({**spec, "privileged": True}, allow_privileged=True,
                                                  bootstrap_owner=None)

    def test_membership_in_ordinary_roles_is_fine(self) -> None:
        assert not policy.role_request_violations({"roleName": "r", "inRoles": ["readers"]},
                                                  allow_privileged=False, bootstrap_owner=None)
