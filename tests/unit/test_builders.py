"""The pure builders: intent → CNPG manifests, patches, Secrets and conditions."""

from __future__ import annotations

from typing import Any

from cnpg_mcp_operator.builders.cluster import build_cluster, build_cluster_patch
from cnpg_mcp_operator.builders.database import build_database
from cnpg_mcp_operator.builders.role import (
    build_database_role,
    build_managed_role_entry,
    build_role_secret,
    generate_password,
    merge_managed_roles,
    remove_managed_role,
    secret_needs_update,
)
from cnpg_mcp_operator.builders.status import make_condition
from cnpg_mcp_operator.drift import merge_patch


def intent(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "cnpg-mcp.io/v1alpha1", "kind": kind,
            "metadata": {"name": name, "namespace": "ns", "uid": "uid-1", "generation": 1}, "spec": spec}


class TestCluster:
    def test_defaults_give_the_original_cluster_shape_and_no_owner(self) -> None:
        cluster = build_cluster(intent("PgClusterRequest", "main-db", {}))
        assert cluster["metadata"]["name"] == "main-db"
        assert "ownerReferences" not in cluster["metadata"]  # GC must never delete data
        assert cluster["spec"] == {
            "instances": 3,
            "imageName": "ghcr.io/cloudnative-pg/postgresql:16",
            "storage": {"size": "10Gi"},
            "postgresql": {"parameters": {"max_connections": "100", "shared_buffers": "256MB"}},
        }

    def test_image_name_wins_and_bootstrap_is_passed(self) -> None:
        cluster = build_cluster(intent("PgClusterRequest", "c", {
            "imageName": "registry.example/pg:17.2", "bootstrap": {"database": "shop", "owner": "shop_owner"},
            "storage": {"size": "100Gi", "storageClass": "fast"},
        }))
        assert cluster["spec"]["imageName"] == "registry.example/pg:17.2"
        assert cluster["spec"]["bootstrap"] == {"initdb": {"database": "shop", "owner": "shop_owner"}}
        assert cluster["spec"]["storage"] == {"size": "100Gi", "storageClass": "fast"}

    def test_converged_cluster_needs_no_patch(self) -> None:
        body = intent("PgClusterRequest", "c", {"instances": 2})
        assert build_cluster_patch(body, build_cluster(body)) is None

    def test_scaling_patches_only_instances_and_leaves_foreign_fields(self) -> None:
        live = build_cluster(intent("PgClusterRequest", "c", {"instances": 2}))
        live["spec"]["postgresql"]["parameters"]["work_mem"] = "64MB"  # set by someone else
        live["spec"]["monitoring"] = {"enablePodMonitor": True}
        patch = build_cluster_patch(intent("PgClusterRequest", "c", {"instances": 5}), live)
        assert patch == {"spec": {"instances": 5}}

    def test_changed_parameter_is_patched_alone(self) -> None:
        live = build_cluster(intent("PgClusterRequest", "c", {}))
        body = intent("PgClusterRequest", "c", {"parameters": {"max_connections": "200", "shared_buffers": "256MB"}})
        assert build_cluster_patch(body, live) == {"spec": {"postgresql": {"parameters": {"max_connections": "200"}}}}


class TestRole:
    body = intent("PgRoleRequest", "main-db-app-user",
                  {"cluster": "main-db", "roleName": "app_user", "createdb": True, "inRoles": ["readers"]})

    def test_secret_has_cnpg_format_and_is_owned_by_the_request(self) -> None:
        secret = build_role_secret(self.body, "s3cretPassw0rd")
        meta = secret["metadata"]
        assert secret["type"] == "kubernetes.io/basic-auth"
        assert meta["name"] == "cnpg-main-db-user-app-user"
        assert meta["labels"]["cnpg.io/reload"] == "true"
        assert meta["labels"]["cnpg.io/cluster"] == "main-db"
        assert meta["ownerReferences"][0]["uid"] == "uid-1"
        data = secret["stringData"]
        assert data["username"] == "app_user"
        assert data["password"] == "s3cretPassw0rd"
        assert set(data) >= {"dbname", "host", "port", "uri", "jdbc-uri", "pgpass"}
        assert data["uri"] == "postgresql://app_user:s3cretPassw0rd@main-db-rw.ns:5432/app"
        # The password appears in the data only, never in metadata.
        assert "s3cretPassw0rd" not in str(meta)

    def test_password_rotates_only_when_the_token_changes(self) -> None:
        secret = build_role_secret(self.body, generate_password())
        assert not secret_needs_update(secret, self.body)
        rotated = {**self.body, "spec": {**self.body["spec"], "password": {"rotation": "2026-11-24T20:00"}}}
        assert secret_needs_update(secret, rotated)
        assert not secret_needs_update(build_role_secret(rotated, generate_password()), rotated)

    def test_generated_passwords_are_long_and_different(self) -> None:
        first, second = generate_password(), generate_password()
        assert len(first) == 32 and first != second and first.isalnum()

    def test_database_role(self) -> None:
        role = build_database_role(self.body, "cnpg-main-db-user-app-user")
        assert role["kind"] == "DatabaseRole"
        assert role["metadata"]["ownerReferences"][0]["kind"] == "PgRoleRequest"
        spec = role["spec"]
        assert spec["name"] == "app_user"
        assert spec["cluster"] == {"name": "main-db"}
        assert spec["databaseRoleReclaimPolicy"] == "delete"
        assert spec["passwordSecret"] == {"name": "cnpg-main-db-user-app-user"}
        assert spec["createdb"] is True and spec["superuser"] is False
        assert spec["inRoles"] == ["readers"]

    def test_managed_roles_upsert_keeps_every_other_entry(self) -> None:
        others = [{"name": "a", "ensure": "present"}, {"name": "b", "ensure": "present"}]
        entry = build_managed_role_entry(self.body, "cnpg-main-db-user-app-user")
        merged = merge_managed_roles(others, entry)
        assert [r["name"] for r in merged] == ["a", "b", "app_user"]
        again = merge_managed_roles(merged, {**entry, "createdb": False})
        assert [r["name"] for r in again] == ["a", "b", "app_user"] and again[2]["createdb"] is False
        assert remove_managed_role(again, "app_user") == others
        assert others == [{"name": "a", "ensure": "present"}, {"name": "b", "ensure": "present"}]  # not mutated

    def test_absent_entry(self) -> None:
        assert build_managed_role_entry(self.body, "s", ensure="absent")["ensure"] == "absent"


def test_database() -> None:
    database = build_database(intent("PgDatabaseRequest", "main-db-app-data", {
        "cluster": "main-db", "name": "app_data", "owner": "app_user",
        "extensions": [{"name": "pgcrypto"}], "schemas": [{"name": "sales", "owner": "app_user"}],
    }))
    assert database["kind"] == "Database"
    assert database["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert database["spec"] == {
        "cluster": {"name": "main-db"}, "name": "app_data", "owner": "app_user", "ensure": "present",
        "databaseReclaimPolicy": "retain",
        "extensions": [{"name": "pgcrypto", "ensure": "present"}],
        "schemas": [{"name": "sales", "owner": "app_user", "ensure": "present"}],
    }


class TestStatus:
    def test_transition_time_moves_only_when_status_flips(self) -> None:
        first = make_condition("Ready", False, "Pending", "waiting", observed_generation=1, previous=[],
                               now="2026-01-01T00:00:00Z")
        same = make_condition("Ready", False, "Blocked", "stuck", observed_generation=2, previous=[first],
                              now="2026-01-01T00:05:00Z")
        flipped = make_condition("Ready", True, "Applied", "ok", observed_generation=2, previous=[same],
                                 now="2026-01-01T00:09:00Z")
        assert same["lastTransitionTime"] == "2026-01-01T00:00:00Z"
        assert flipped["lastTransitionTime"] == "2026-01-01T00:09:00Z"
        assert flipped["status"] == "True" and flipped["observedGeneration"] == 2

    def test_patch_only_when_changed(self) -> None:
        assert merge_patch({"message": "ok"}, {"message": "ok", "applied": True}) is None
        assert merge_patch({"message": "new"}, {"message": "ok"}) == {"message": "new"}
