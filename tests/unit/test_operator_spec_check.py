from __future__ import annotations

from cnpg_mcp_api.models import PgClusterRequestSpec, PgRoleRequestSpec
from cnpg_mcp_operator.handlers.common import bootstrap_database, bootstrap_owner, spec_problem


def test_a_spec_the_models_refuse_is_invalid_not_retried() -> None:
    verdict = spec_problem(PgClusterRequestSpec, {"spec": {"instances": 42}})
    assert verdict is not None
    assert (verdict.ready, verdict.reason) == (False, "Invalid")
    assert "spec.instances" in verdict.message


def test_a_good_spec_has_no_problem() -> None:
    assert spec_problem(PgRoleRequestSpec, {"spec": {"cluster": "c", "roleName": "app_user"}}) is None


def test_role_secrets_point_at_the_clusters_bootstrap_database() -> None:
    shop = {"spec": {"bootstrap": {"initdb": {"database": "shop", "owner": "shop_owner"}}}}
    assert (bootstrap_database(shop), bootstrap_owner(shop)) == ("shop", "shop_owner")
    assert (bootstrap_database({"spec": {}}), bootstrap_owner({"spec": {}})) == ("app", "app")
    restored = {"spec": {"bootstrap": {"recovery": {"source": "backup"}}}}
    assert (bootstrap_database(restored), bootstrap_owner(restored)) == ("app", None)
