"""Pure parts of read-only SQL credentials: the role's request, the policy exemption, the projected JSON."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import PgClusterRequestSpec
from cnpg_mcp_api.policy import role_request_violations
from cnpg_mcp_api.readonly_sql import READONLY_ROLE_NAME, credentials_key, readonly_request_name
from cnpg_mcp_operator import config
from cnpg_mcp_operator.builders.readonly import (
    ca_secret_name,
    credentials_document,
    credentials_patch,
    credentials_secret,
    is_operator_readonly_request,
    readonly_host,
    readonly_role_request,
    readonly_spec,
)
from cnpg_mcp_operator.drift import merge_patch
from cnpg_mcp_operator.handlers.readonly_queries import pending

UID = "11111111-2222-3333-4444-555555555555"


def cluster_request(enabled: bool | None = True, uid: str = UID, **status: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"instances": 1}
    if enabled is not None:
        spec["readOnlyQueries"] = {"enabled": enabled}
    return {"apiVersion": constants.API_VERSION, "kind": constants.CLUSTER_REQUEST_KIND,
            "metadata": {"name": "pg", "namespace": "team", "uid": uid}, "spec": spec,
            **({"status": {"readOnlyQueries": status}} if status else {})}


def test_the_role_name_is_free_of_reserved_prefixes_and_a_valid_identifier() -> None:
    # PostgreSQL reserves pg_, CloudNativePG's webhook refuses DatabaseRoles named cnpg_*.
    assert not READONLY_ROLE_NAME.startswith(("pg_", "cnpg_"))
    assert READONLY_ROLE_NAME.isidentifier() and READONLY_ROLE_NAME.islower()


def test_the_role_request_is_login_pg_monitor_only_and_owned_by_uid() -> None:
    body = readonly_role_request(cluster_request())
    assert body["kind"] == constants.ROLE_REQUEST_KIND and body["metadata"]["name"] == readonly_request_name("pg")
    assert body["metadata"]["ownerReferences"] == [{
        "apiVersion": constants.API_VERSION, "kind": constants.CLUSTER_REQUEST_KIND, "name": "pg", "uid": UID,
        "controller": True, "blockOwnerDeletion": True}]
    spec = body["spec"]
    assert (spec["cluster"], spec["roleName"], spec["login"], spec["inRoles"]) == (
        "pg", READONLY_ROLE_NAME, True, ["pg_monitor"])
    assert not any(spec[a] for a in ("superuser", "createdb", "createrole", "replication", "bypassrls"))
    assert "pg_read_all_data" not in json.dumps(spec)
    # It would be refused for an ordinary request in an ordinary namespace (pg_monitor is privileged) ...
    assert role_request_violations(spec, allow_privileged=False, bootstrap_owner="app", joinable_roles=set())


def test_the_policy_exemption_holds_only_for_the_operators_own_request() -> None:
    owner = cluster_request()
    ours = readonly_role_request(owner)
    assert is_operator_readonly_request(ours, owner)
    assert not is_operator_readonly_request(ours, None)
    assert not is_operator_readonly_request(ours, cluster_request(enabled=False))
    assert not is_operator_readonly_request(ours, cluster_request(enabled=None))
    assert not is_operator_readonly_request(ours, cluster_request(uid="another-uid"))  # forged ownerReference
    for change in ({"superuser": True}, {"inRoles": ["pg_monitor", "pg_read_all_data"]}, {"createrole": True},
                   {"roleName": "other"}, {"password": {"rotation": "x"}}):
        assert not is_operator_readonly_request({**ours, "spec": {**ours["spec"], **change}}, owner), change
    renamed = {**ours, "metadata": {**ours["metadata"], "name": "pg-other"}}
    assert not is_operator_readonly_request(renamed, owner)
    unowned = {**ours, "metadata": {k: v for k, v in ours["metadata"].items() if k != "ownerReferences"}}
    assert not is_operator_readonly_request(unowned, owner)


def test_the_read_only_service_is_never_rw() -> None:
    assert readonly_host("team", "pg", 3) == "pg-ro.team.svc"
    assert readonly_host("team", "pg", 1) == "pg-r.team.svc"  # no replica: -ro would have no endpoints


def test_the_ca_secret_is_cnpgs_or_the_one_the_user_brings() -> None:
    assert ca_secret_name({"metadata": {"name": "pg"}, "spec": {}}) == "pg-ca"
    assert ca_secret_name({"metadata": {"name": "pg"},
                           "spec": {"certificates": {"serverCASecret": "my-ca"}}}) == "my-ca"


def test_the_projected_document_and_patches() -> None:
    document = credentials_document(host="pg-r.team.svc", dbname="app", user=READONLY_ROLE_NAME, password="pw",
                                    ca_cert="-----BEGIN CERTIFICATE-----\n")
    assert json.loads(document) == {"host": "pg-r.team.svc", "port": 5432, "dbname": "app",
                                    "user": READONLY_ROLE_NAME, "password": "pw", "sslmode": "verify-full",
                                    "sslrootcert": "-----BEGIN CERTIFICATE-----\n"}
    key = credentials_key("team", "pg")
    assert key == "team.pg.json"
    secret = credentials_secret("gw", key, document)
    assert secret["metadata"]["name"] == "cnpg-mcp-sql-credentials" and "ownerReferences" not in secret["metadata"]
    assert base64.b64decode(secret["data"][key]).decode() == document
    assert credentials_patch(key, None) == {"data": {key: None}}
    assert base64.b64decode(credentials_patch(key, document)["data"][key]).decode() == document


def test_the_spec_field_defaults_and_pending() -> None:
    spec = PgClusterRequestSpec.model_validate({"readOnlyQueries": {"enabled": True}})
    assert spec.read_only_queries is not None and spec.read_only_queries.database == "app"
    assert readonly_spec(cluster_request(enabled=False)) is None
    assert pending(cluster_request())  # enabled, nothing reported yet
    assert not pending({**cluster_request(), "status": {"readOnlyQueries": {"enabled": True, "ready": True}}})
    assert pending({**cluster_request(enabled=False), "status": {"readOnlyQueries": {"enabled": True}}})
    assert not pending(cluster_request(enabled=None))


def test_a_null_in_the_desired_status_matches_a_missing_field() -> None:
    assert merge_patch({"r": {"enabled": False, "host": None}}, {"r": {"enabled": False}}) is None
    assert merge_patch({"r": {"enabled": False, "host": None}}, {"r": {"enabled": True, "host": "h"}}) == {
        "r": {"enabled": False, "host": None}}


def test_the_gateway_namespace_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(config.GATEWAY_NAMESPACE_ENV, raising=False)
    monkeypatch.setattr(config, "SERVICE_ACCOUNT_NAMESPACE_FILE", tmp_path / "missing")
    assert config.parse_args(["-A"]).gateway_namespace == "cnpg-mcp"
    own = tmp_path / "namespace"
    own.write_text("ops\n")
    monkeypatch.setattr(config, "SERVICE_ACCOUNT_NAMESPACE_FILE", own)
    assert config.parse_args(["-A"]).gateway_namespace == "ops"
    monkeypatch.setenv(config.GATEWAY_NAMESPACE_ENV, "mcp")
    assert config.parse_args(["-A"]).gateway_namespace == "mcp"
    assert config.parse_args(["-A", "--gateway-namespace", "gw"]).gateway_namespace == "gw"
