"""Issue #8 items 9 and 14 (pure parts): privilege escalation through role requests, and the names
the original server accepted (hyphens, uppercase) with collision-free Kubernetes names."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from cnpg_mcp_api import naming, policy
from cnpg_mcp_api.models import PgDatabaseRequestSpec, PgRoleRequestSpec


def violations(spec: dict[str, Any], *, allow: bool = False, owner: str | None = "app",
               joinable: set[str] | None = None) -> list[str]:
    return policy.role_request_violations({"roleName": "alice", **spec}, allow_privileged=allow,
                                          bootstrap_owner=owner, joinable_roles=joinable or set())


class TestRolePolicy:
    def test_createrole_is_privileged(self) -> None:
        assert any("createrole" in v for v in violations({"createrole": True}))
        assert any("createrole" in v for v in violations({"createrole": True, "privileged": True}))
        assert not violations({"createrole": True, "privileged": True}, allow=True)

    def test_joining_the_bootstrap_owner_is_privileged(self) -> None:
        found = violations({"inRoles": ["app"]}, joinable={"app"})
        assert found and "app" in found[0]
        assert violations({"inRoles": ["app"], "privileged": True}, joinable={"app"})  # no admin policy
        assert not violations({"inRoles": ["app"], "privileged": True}, allow=True)

    def test_joining_a_role_no_request_of_this_namespace_produced_is_privileged(self) -> None:
        found = violations({"inRoles": ["team_b_owner"]}, joinable={"readers"})
        assert found and "team_b_owner" in found[0]
        assert not violations({"inRoles": ["readers"]}, joinable={"readers"})
        assert not violations({"inRoles": ["team_b_owner"], "privileged": True}, allow=True)

    def test_admin_policy_alone_is_not_the_acknowledgement(self) -> None:
        # the operator cannot rely on CEL for memberships it alone can judge: privileged: true is required
        assert violations({"inRoles": ["team_b_owner"]}, allow=True)
        assert violations({"createrole": True}, allow=True)

    @pytest.mark.parametrize("member_of", ["pg_read_server_files", "pg_monitor", "postgres", "streaming_replica"])
    def test_predefined_and_reserved_memberships_stay_privileged(self, member_of: str) -> None:
        assert violations({"inRoles": [member_of]}, joinable={member_of})
        assert not violations({"inRoles": [member_of], "privileged": True}, allow=True)

    def test_unchecked_membership_when_the_index_is_unknown(self) -> None:
        # joinable_roles=None: the caller cannot tell (e.g. the CRD); only the static rules apply
        assert not policy.role_request_violations({"roleName": "alice", "inRoles": ["readers"]},
                                                  allow_privileged=False, bootstrap_owner="app")

    @pytest.mark.parametrize("name", ["PG_SIGNAL", "pg_x", "postgres", "streaming_replica"])
    def test_reserved_role_names(self, name: str) -> None:
        assert policy.is_reserved_role(name)


ACCEPTED = ["app-user", "test-role-1700000000", "App_User", "APP", "john.doe", "_x", "x" * 63, "a$b", "9lives"]
REFUSED = ["x" * 64, "", "has space", 'quo"te', "semi;colon", "tab\tname", "é" * 40]


class TestNames:
    @pytest.mark.parametrize("name", ACCEPTED)
    def test_names_postgres_and_cnpg_accept(self, name: str) -> None:
        assert naming.identifier_problem(name, "role") is None
        PgRoleRequestSpec.model_validate({"cluster": "c", "roleName": name})
        PgDatabaseRequestSpec.model_validate({"cluster": "c", "name": name, "owner": name})

    @pytest.mark.parametrize("name", REFUSED)
    def test_refused_names_say_why(self, name: str) -> None:
        problem = naming.identifier_problem(name, "role")
        assert problem and "role" in problem
        with pytest.raises(ValidationError):
            PgRoleRequestSpec.model_validate({"cluster": "c", "roleName": name})

    def test_byte_length_is_what_counts(self) -> None:
        assert "63 bytes" in (naming.identifier_problem("x" * 64, "database") or "")

    @pytest.mark.parametrize("pair", [("app-user", "app_user"), ("App", "app"), ("a.b", "a-b"), ("a$b", "a-b"),
                                      ("x-" + "y" * 60, "x_" + "y" * 60)])
    def test_lossy_mappings_never_share_an_object(self, pair: tuple[str, str]) -> None:
        first, second = pair
        for derive in (naming.role_request_name, naming.database_request_name, naming.role_secret_name):
            a, b = derive("main", first), derive("main", second)
            assert a != b, (derive.__name__, a)
            assert naming.is_rfc1123_label(a) and naming.is_rfc1123_label(b)

    def test_a_crafted_underscore_name_cannot_take_a_hashed_name(self) -> None:
        hashed = naming.role_request_name("main", "app-user")
        crafted = hashed.removeprefix("main-").replace("-", "_")
        assert naming.role_request_name("main", crafted) != hashed

    def test_plain_names_keep_their_readable_mapping(self) -> None:
        assert naming.role_request_name("main", "app_user") == "main-app-user"
        assert naming.role_secret_name("main", "app_user") == "cnpg-main-user-app-user"

    @pytest.mark.parametrize("name", ACCEPTED)
    def test_label_values_are_valid(self, name: str) -> None:
        value = naming.role_label_value(name)
        assert naming.is_label_value(value), value
