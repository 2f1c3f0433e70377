"""Pure parts of the CNPG simulator: role SQL planning, password handling, status and object builders."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Any

import pytest
from psycopg import sql

from devcluster.simulator import clusters, common, databases, roles, workqueue


def render(statements: list[sql.Composed]) -> list[str]:
    return [" ".join(s.as_string(None).split()) for s in statements]


def actual_for(desired: roles.DesiredRole, **changes: Any) -> roles.ActualRole:
    """The pg_authid row that exactly matches `desired`, with some columns changed."""
    values: dict[str, Any] = {
        "name": desired.name, "superuser": desired.superuser, "inherit": desired.inherit,
        "createrole": desired.createrole, "createdb": desired.createdb, "login": desired.login,
        "replication": desired.replication, "bypassrls": desired.bypassrls,
        "connection_limit": desired.connection_limit, "valid_until_epoch": float("inf"),
        "has_password": True, "comment": desired.comment, "in_roles": frozenset(desired.in_roles), "xmin": 7,
    }
    values.update(changes)
    return roles.ActualRole(**values)


CLUSTER: dict[str, Any] = {
    "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
    "metadata": {"name": "pg", "namespace": "team", "uid": "u-1", "generation": 2},
    "spec": {"instances": 3},
}


# ----------------------------------------------------------------------------- roles


def test_desired_role_applies_cnpg_defaults() -> None:
    role = roles.desired_role({"name": "alice"})
    assert (role.ensure, role.login, role.inherit, role.connection_limit) == ("present", False, True, -1)
    assert role.password_secret is None and role.in_roles == ()


def test_new_role_is_created_with_every_attribute_memberships_and_comment() -> None:
    desired = roles.desired_role({"name": "alice", "login": True, "createdb": True, "connectionLimit": 5,
                                "inRoles": ["pg_monitor"], "comment": "it's alice",
                                "validUntil": "2030-01-01T00:00:00Z"})
    statements = render(roles.plan_role(desired, None, roles.PasswordAction("set", "SCRAM-SHA-256$x")))
    assert statements[0] == (
        'CREATE ROLE "alice" WITH NOBYPASSRLS CREATEDB NOCREATEROLE INHERIT LOGIN NOREPLICATION '
        "NOSUPERUSER CONNECTION LIMIT 5 PASSWORD 'SCRAM-SHA-256$x' VALID UNTIL '2030-01-01T00:00:00Z'")
    assert statements[1:] == ['GRANT "pg_monitor" TO "alice"', "COMMENT ON ROLE \"alice\" IS 'it''s alice'"]


def test_role_in_sync_needs_no_statement() -> None:
    desired = roles.desired_role({"name": "bob", "login": True, "inRoles": ["readers"], "comment": "c"})
    assert roles.plan_role(desired, actual_for(desired), roles.KEEP_PASSWORD) == []


def test_attribute_drift_alters_the_role_and_memberships_are_diffed() -> None:
    desired = roles.desired_role({"name": "bob", "login": True, "inRoles": ["readers"]})
    actual = actual_for(desired, login=False, in_roles=frozenset({"writers"}))
    statements = render(roles.plan_role(desired, actual, roles.KEEP_PASSWORD))
    assert statements[0].startswith('ALTER ROLE "bob" WITH') and " LOGIN " in statements[0]
    assert "PASSWORD" not in statements[0]
    assert statements[1:] == ['GRANT "readers" TO "bob"', 'REVOKE "writers" FROM "bob"']


def test_identifiers_are_quoted_safely() -> None:
    desired = roles.desired_role({"name": 'x"; DROP ROLE postgres; --'})
    statements = render(roles.plan_role(desired, None, roles.KEEP_PASSWORD))
    assert statements[0].startswith('CREATE ROLE "x""; DROP ROLE postgres; --" WITH')
    assert render([roles.drop_role_sql("a b")]) == ['DROP ROLE IF EXISTS "a b"']


def test_comment_removed_when_no_longer_wanted() -> None:
    desired = roles.desired_role({"name": "c"})
    assert render(roles.plan_role(desired, actual_for(desired, comment="old"), roles.KEEP_PASSWORD)) == [
        'COMMENT ON ROLE "c" IS NULL']


@pytest.mark.parametrize(("desired", "actual", "differs"), [
    (None, None, False), (None, float("inf"), False), (None, 1.0e9, True),
    ("2030-01-01T00:00:00Z", 1893456000.0, False), ("2030-01-01T00:00:00+00:00", 1893456000.4, False),
    ("2030-01-01T00:00:00Z", float("inf"), True), ("2030-01-01T00:00:00Z", 1.0e9, True),
])
def test_valid_until_comparison(desired: str | None, actual: float | None, differs: bool) -> None:
    assert roles.valid_until_differs(desired, actual) is differs


def test_membership_changes() -> None:
    assert roles.membership_changes(["a", "b"], ["b", "c"]) == (["a"], ["c"])


# -------------------------------------------------------------------------- passwords


def test_scram_verifier_matches_postgresql_format_and_math() -> None:
    salt = b"0123456789abcdef"
    verifier = roles.scram_sha256_verifier("s3cret", salt=salt)
    match = re.fullmatch(r"SCRAM-SHA-256\$4096:([^$]+)\$([^:]+):(.+)", verifier)
    assert match is not None
    assert base64.b64decode(match.group(1)) == salt
    salted = hashlib.pbkdf2_hmac("sha256", b"s3cret", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert base64.b64decode(match.group(2)) == hashlib.sha256(client_key).digest()
    assert roles.scram_sha256_verifier("s3cret", salt=salt) == verifier
    assert roles.scram_sha256_verifier("s3cret") != roles.scram_sha256_verifier("s3cret")  # random salt


def test_prehashed_and_non_ascii_passwords_pass_through() -> None:
    prehashed = "SCRAM-SHA-256$4096:c2FsdA==$a:b"
    assert roles.password_verifier(prehashed) == prehashed
    assert roles.password_verifier("pässword") == "pässword"
    assert roles.password_verifier("plain").startswith("SCRAM-SHA-256$4096:")


def test_password_action_follows_secret_versions() -> None:
    desired = roles.desired_role({"name": "r", "passwordSecret": {"name": "s"}})
    actual = actual_for(desired)
    assert roles.password_action(desired, None, "pw", "10", None).kind == "set"
    assert roles.password_action(desired, actual, "pw", "10", "10").kind == "keep"
    assert roles.password_action(desired, actual, "pw", "11", "10").kind == "set"
    no_password = actual_for(desired, has_password=False)
    assert roles.password_action(desired, no_password, "pw", "10", "10").kind == "set"
    assert roles.password_action(desired, actual, None, None, None).kind == "keep"
    disabled = roles.desired_role({"name": "r", "disablePassword": True})
    assert roles.password_action(disabled, actual, None, None, None).kind == "null"
    already_null = actual_for(disabled, has_password=False)
    assert roles.password_action(disabled, already_null, None, None, None).kind == "keep"


def test_password_never_appears_in_repr() -> None:
    assert "topsecret" not in repr(roles.PasswordAction("set", "topsecret"))


# ----------------------------------------------------------------------------- status


def test_managed_roles_status_shape() -> None:
    status = clusters.managed_roles_status([
        clusters.RoleOutcome("b", "reconciled", transaction_id=9, secret_version="41"),
        clusters.RoleOutcome("a", "reconciled"),
        clusters.RoleOutcome("postgres", "reserved"),
        clusters.RoleOutcome("c", "pending-reconciliation", error="cannot be dropped"),
    ])
    assert status == {
        "byStatus": {"pending-reconciliation": ["c"], "reconciled": ["a", "b"], "reserved": ["postgres"]},
        "cannotReconcile": {"c": ["cannot be dropped"]},
        "passwordStatus": {"b": {"transactionID": 9, "resourceVersion": "41"}},
    }
    assert clusters.applied_password_versions({"managedRolesStatus": status}) == {"b": "41"}


def test_healthy_cluster_status() -> None:
    status = clusters.cluster_status(CLUSTER, roles_status=None, app_secret_version="5", blocked_reason=None,
                                now="2030-01-01T00:00:00Z")
    assert status["phase"] == "Cluster in healthy state"
    assert (status["instances"], status["readyInstances"]) == (3, 3)
    assert status["currentPrimary"] == status["targetPrimary"] == "pg-1"
    assert status["instanceNames"] == ["pg-1", "pg-2", "pg-3"]
    assert status["latestGeneratedNode"] == 3
    assert status["managedRolesStatus"] is None  # removed when no role is managed
    assert status["secretsResourceVersion"] == {"applicationSecretVersion": "5"}
    [ready] = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"], ready["observedGeneration"]) == (
        "Ready", "True", "ClusterIsReady", 2)


def test_switchover_target_is_honoured_and_unknown_target_reset() -> None:
    switching = {**CLUSTER, "status": {"currentPrimary": "pg-1", "targetPrimary": "pg-3"}}
    status = clusters.cluster_status(switching, roles_status=None, app_secret_version=None, blocked_reason=None,
                                now="t")
    assert status["currentPrimary"] == status["targetPrimary"] == "pg-3"
    assert status["currentPrimaryTimestamp"] == "t"
    gone = {**CLUSTER, "status": {"currentPrimary": "pg-9", "targetPrimary": "pg-9"}}
    assert clusters.cluster_status(gone, roles_status=None, app_secret_version=None, blocked_reason=None,
                              now="t")["currentPrimary"] == "pg-1"


def test_blocked_cluster_is_not_ready() -> None:
    status = clusters.cluster_status(CLUSTER, roles_status=None, app_secret_version=None,
                                blocked_reason='secrets "x" not found', now="t")
    assert status["phase"] == "Setting up primary"
    assert status["readyInstances"] == 0
    assert status["phaseReason"] == 'secrets "x" not found'
    assert status["conditions"][0]["status"] == "False"
    assert status["conditions"][0]["reason"] == "ClusterIsNotReady"


def test_condition_keeps_transition_time_when_status_unchanged() -> None:
    first = common.upsert_condition([{"type": "Other", "status": "True"}], type_="Ready", status="True",
                                 reason="R", message="m", generation=1, now="t1")
    second = common.upsert_condition(first, type_="Ready", status="True", reason="R", message="m",
                                  generation=2, now="t2")
    third = common.upsert_condition(second, type_="Ready", status="False", reason="R", message="m",
                                 generation=2, now="t3")
    assert [c["type"] for c in second] == ["Other", "Ready"]
    assert second[-1]["lastTransitionTime"] == "t1"
    assert third[-1]["lastTransitionTime"] == "t3"


def test_crd_status_moves_observed_generation_only_on_success() -> None:
    assert common.crd_status(4, None) == {"applied": True, "message": None, "observedGeneration": 4}
    assert common.crd_status(4, "boom") == {"applied": False, "message": "boom"}


def test_merge_patch_and_status_patch() -> None:
    old = {"a": 1, "m": {"x": [1], "y": 2}, "gone": True}
    new = {"a": 1, "m": {"x": [1, 2]}, "added": "v"}
    assert common.merge_patch(old, new) == {"gone": None, "m": {"x": [1, 2], "y": None}, "added": "v"}
    assert common.merge_patch(new, new) == {}
    current = {"phase": "p", "message": "old", "foreign": 1}
    assert common.status_patch(current, {"phase": "p", "message": None, "applied": True}) == {
        "message": None, "applied": True}  # "foreign" is not ours: untouched


def test_finalizers_with() -> None:
    obj = {"metadata": {"finalizers": ["other"]}}
    assert common.finalizers_with(obj, "cnpg.io/deleteRole", present=True) == ["other", "cnpg.io/deleteRole"]
    assert common.finalizers_with(obj, "cnpg.io/deleteRole", present=False) is None
    assert common.finalizers_with({"metadata": {}}, "f", present=False) is None


def test_retry_delay_backs_off_and_is_capped() -> None:
    delays = [workqueue.retry_delay(n) for n in range(1, 10)]
    assert delays[0] == workqueue.RETRY_BASE_S and delays == sorted(delays) and delays[-1] == workqueue.RETRY_MAX_S


# ---------------------------------------------------------------------------- objects


def test_app_secret_in_cnpg_format() -> None:
    body = clusters.app_secret_body(CLUSTER, "app", "app", "p@ss/word")
    assert body["type"] == "kubernetes.io/basic-auth"
    assert body["metadata"]["name"] == "pg-app"
    assert body["metadata"]["labels"]["cnpg.io/userType"] == "app"
    assert body["metadata"]["labels"]["cnpg.io/reload"] == "true"
    assert body["metadata"]["labels"]["cnpg.io/cluster"] == "pg"
    assert body["metadata"]["ownerReferences"] == [{
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster", "name": "pg", "uid": "u-1",
        "controller": True, "blockOwnerDeletion": True}]
    data = body["stringData"]
    assert data["host"] == "pg-rw" and data["port"] == "5432" and data["password"] == "p@ss/word"
    assert data["uri"] == "postgresql://app:p%40ss%2Fword@pg-rw.team:5432/app"
    assert data["fqdn-uri"] == "postgresql://app:p%40ss%2Fword@pg-rw.team.svc.cluster.local:5432/app"
    assert data["jdbc-uri"].startswith("jdbc:postgresql://pg-rw.team:5432/app?")
    assert data["pgpass"] == "pg-rw:5432:app:app:p@ss/word\n"


def test_bootstrap_defaults_and_custom_secret() -> None:
    assert clusters.bootstrap_database(CLUSTER) == ("app", "app")
    custom = {**CLUSTER, "spec": {"bootstrap": {"initdb": {"database": "shop", "secret": {"name": "s"}}}}}
    assert clusters.bootstrap_database(custom) == ("shop", "shop")
    assert clusters.app_secret_name(custom) == "s"
    assert clusters.bootstrap_database({**CLUSTER, "spec": {"bootstrap": {"recovery": {}}}}) is None


@pytest.mark.parametrize(("suffix", "selector"), [
    ("rw", {"cnpg.io/cluster": "pg", "cnpg.io/instanceRole": "primary"}),
    ("ro", {"cnpg.io/cluster": "pg", "cnpg.io/instanceRole": "replica"}),
    ("r", {"cnpg.io/cluster": "pg", "cnpg.io/podRole": "instance"}),
])
def test_services(suffix: str, selector: dict[str, str]) -> None:
    body = clusters.service_body(CLUSTER, suffix)
    assert body["metadata"]["name"] == f"pg-{suffix}"
    assert body["spec"]["type"] == "ClusterIP"
    assert body["spec"]["selector"] == selector
    assert body["metadata"]["ownerReferences"][0]["uid"] == "u-1"


def test_database_sql() -> None:
    spec = {"name": "shop", "owner": "o", "template": "template0", "encoding": "UTF8", "connectionLimit": 3}
    assert render([databases.create_database_sql(spec)]) == [
        "CREATE DATABASE \"shop\" WITH OWNER \"o\" TEMPLATE \"template0\" ENCODING 'UTF8' CONNECTION LIMIT 3"]
    assert render(databases.alter_database_sql(spec, ("x", False, True, -1))) == [
        'ALTER DATABASE "shop" OWNER TO "o"', 'ALTER DATABASE "shop" WITH CONNECTION LIMIT 3']
    assert databases.alter_database_sql(spec, ("o", False, True, 3)) == []
    assert render([databases.drop_database_sql("shop")]) == ['DROP DATABASE IF EXISTS "shop" WITH (FORCE)']


def test_schema_and_extension_sql() -> None:
    assert render(databases.schema_sql({"name": "s", "owner": "o"})) == [
        'CREATE SCHEMA IF NOT EXISTS "s"', 'ALTER SCHEMA "s" OWNER TO "o"']
    assert render(databases.schema_sql({"name": "s", "ensure": "absent"})) == ['DROP SCHEMA IF EXISTS "s"']
    ext = {"name": "hstore", "version": "1.8", "schema": "public"}
    assert render(databases.extension_sql(ext, None)) == [
        "CREATE EXTENSION IF NOT EXISTS \"hstore\" SCHEMA \"public\" VERSION '1.8'"]
    assert databases.extension_sql(ext, ("1.8", "public")) == []
    assert render(databases.extension_sql(ext, ("1.7", "public"))) == ["ALTER EXTENSION \"hstore\" UPDATE TO '1.8'"]
    assert render(databases.extension_sql({"name": "hstore", "ensure": "absent"}, ("1.8", "public"))) == [
        'DROP EXTENSION IF EXISTS "hstore"']
    assert databases.extension_sql({"name": "hstore", "ensure": "absent"}, None) == []


def test_error_text_is_one_line() -> None:
    assert common.pg_error_text(LookupError('secrets "x"\nnot found')) == 'secrets "x" not found'
