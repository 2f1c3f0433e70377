"""Pure gateway logic: tool arguments → intents, configuration safety, token parsing, rendering."""

from __future__ import annotations

import datetime as dt

import anyio
import pytest
from mcp.server.mcpserver.exceptions import ToolError

from mcp_gateway import auth, intents, render
from mcp_gateway.config import GatewayConfig, config_problem, parse_args


def test_cluster_intent_defaults_and_requester() -> None:
    body = intents.cluster_intent("main-db", "prod", instances=3, storage_size="10Gi", postgres_version="16",
                                  storage_class=None, requested_by="alice")
    assert body["kind"] == "PgClusterRequest" and body["metadata"]["namespace"] == "prod"
    assert body["metadata"]["annotations"] == {"cnpg-mcp.io/requested-by": "alice"}
    assert body["spec"]["instances"] == 3 and body["spec"]["storage"] == {"size": "10Gi"}


def test_bad_arguments_are_invalid_argument_errors() -> None:
    with pytest.raises(ToolError, match=r"\[INVALID_ARGUMENT\].*instances"):
        intents.cluster_intent("c", "ns", instances=11, storage_size="1Gi", postgres_version="16",
                               storage_class=None, requested_by=None)
    with pytest.raises(ToolError, match="INVALID_ARGUMENT"):
        intents.cluster_intent("c", "ns", instances=1, storage_size="lots", postgres_version="16",
                               storage_class=None, requested_by=None)


def test_role_intent_names_and_privilege_acknowledgement() -> None:
    body = intents.role_intent("main-db", "app_user", "ns", {"login": True, "superuser": False}, None)
    assert body["metadata"]["name"] == "main-db-app-user"
    assert body["spec"]["privileged"] is False
    # the acknowledgement is the caller's, never inferred from the flags (issue #8 item 11)
    assert intents.role_intent("main-db", "admin_user", "ns", {"superuser": True}, None)["spec"]["privileged"] is False
    admin = intents.role_intent("main-db", "admin_user", "ns", {"superuser": True}, None, privileged=True)
    assert admin["spec"]["privileged"] is True


def test_adoption_owns_only_the_instance_count() -> None:
    live = {"metadata": {"name": "legacy", "namespace": "ns"},
            "spec": {"instances": 1, "imageName": "ghcr.io/cloudnative-pg/postgresql:15.3",
                     "storage": {"size": "5Gi", "resizeInUseVolumes": True},
                     "postgresql": {"parameters": {"work_mem": "8MB"}}}}
    spec = intents.adoption_intent(live, instances=3, requested_by=None)["spec"]
    assert spec["adoptExisting"] is True and spec["parameters"] == {} and spec["deletionPolicy"] == "Retain"
    assert spec["instances"] == 3 and spec["storage"] == {"size": "5Gi"}
    assert spec["imageName"] == "ghcr.io/cloudnative-pg/postgresql:15.3"


def test_role_update_patch() -> None:
    current = {"cluster": "c", "roleName": "r", "login": True, "createdb": False}
    assert intents.role_update_patch(current, {"login": True, "createdb": None}, False) == {}
    assert intents.role_update_patch(current, {"createdb": True}, False) == {"spec": {"createdb": True}}
    rotated = intents.role_update_patch(current, {}, True, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert rotated == {"spec": {"password": {"rotation": "2026-01-01T00:00:00.000000Z"}}}
    assert intents.role_update_patch(current, {"superuser": True}, False) == {"spec": {"superuser": True}}
    acknowledged = intents.role_update_patch(current, {"superuser": True}, False, privileged=True)
    assert acknowledged == {"spec": {"superuser": True, "privileged": True}}


@pytest.mark.parametrize(("config", "problem"), [
    (GatewayConfig(transport="http"), "HTTP needs authentication"),
    (GatewayConfig(transport="http", insecure_no_auth=True, host="0.0.0.0"), "only allowed"),
    (GatewayConfig(transport="http", oidc_issuer="https://idp"), "needs --oidc-audience"),
    (GatewayConfig(transport="http", insecure_no_auth=True, impersonate=True), "--impersonate needs"),
])
def test_unsafe_configurations_are_refused(config: GatewayConfig, problem: str) -> None:
    found = config_problem(config)
    assert found is not None and problem in found


def test_safe_configurations() -> None:
    assert config_problem(GatewayConfig()) is None
    assert config_problem(GatewayConfig(transport="http", insecure_no_auth=True)) is None
    assert config_problem(GatewayConfig(transport="http", tokens_env="t")) is None
    with pytest.raises(SystemExit):
        parse_args(["--transport", "http"])


def test_token_file_parsing_and_verification() -> None:
    tokens = auth.parse_tokens(["# comment", "", "abc", "def,alice", "ghi,bob,dev|ops"])
    assert [(t.token, t.user, t.groups) for t in tokens] == [
        ("abc", "token-3", ()), ("def", "alice", ()), ("ghi", "bob", ("dev", "ops"))]
    verifier = auth.StaticTokenVerifier(tokens)
    found = anyio.run(verifier.verify_token, "ghi")
    assert found is not None and found.subject == "bob" and found.claims == {
        "iss": "static-token", "username": "token:bob", "groups": ["token:dev", "token:ops"]}
    assert anyio.run(verifier.verify_token, "nope") is None


def test_rendering_uses_the_original_field_names_and_a_real_version() -> None:
    cluster = {"metadata": {"name": "db", "namespace": "ns"},
               "spec": {"instances": 3, "imageName": "ghcr.io/cloudnative-pg/postgresql:16.4-bookworm",
                        "storage": {"size": "1Gi"}},
               "status": {"readyInstances": 2, "phase": "Cluster in healthy state", "currentPrimary": "db-1"}}
    summary = render.cluster_summary(cluster, None, detailed=True)
    assert summary["postgres_version"] == "16.4"
    assert {k: summary[k] for k in ("name", "namespace", "instances", "ready_instances", "phase",
                                    "current_primary")} == {
        "name": "db", "namespace": "ns", "instances": 3, "ready_instances": 2,
        "phase": "Cluster in healthy state", "current_primary": "db-1"}
    assert "Not managed by cnpg-mcp" in render.cluster_text(summary)
