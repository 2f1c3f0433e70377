"""The operator's pure state, without Kopf running or an API server: what CNPG's status means, drift,
index projections, deletion decisions, and how an intent kind registers its handlers."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf
import pytest

from cnpg_mcp_api.conditions import ready_condition, ready_reason
from cnpg_mcp_api.constants import CNPG_HEALTHY_PHASE
from cnpg_mcp_api.models import RECREATE_ANNOTATION
from cnpg_mcp_operator.deletion import ReleaseWording, Write, release_plan
from cnpg_mcp_operator.drift import merge_patch, owned_by
from cnpg_mcp_operator.handlers import database_requests, role_requests
from cnpg_mcp_operator.handlers.common import ROLE_REQUESTS
from cnpg_mcp_operator.handlers.intents import INTENT_KINDS
from cnpg_mcp_operator.handlers.kinds import IntentKind, intent_view, register_intent_kind
from cnpg_mcp_operator.managed_roles import OWNERS_ANNOTATION, ManagedRoles, owners_annotation_value
from cnpg_mcp_operator.readiness import (
    CLUSTER_STATUS_READ,
    Verdict,
    cluster_verdict,
    crd_applied_verdict,
    managed_role_dropped,
    managed_role_verdict,
)
from cnpg_mcp_operator.views import plain, project

Json = dict[str, Any]
UID = "uid-request"


def cluster(phase: str = CNPG_HEALTHY_PHASE, *, instances: int = 2, ready: int = 2, **status: Any) -> Json:
    return {"metadata": {"name": "pg", "namespace": "ns"}, "spec": {"instances": instances},
            "status": {"phase": phase, "readyInstances": ready, **status}}


# ---------------------------------------------------------------------------------- readiness


def test_the_ready_condition_is_read_in_one_place() -> None:
    body = {"status": {"conditions": [{"type": "Other", "reason": "X"},
                                      {"type": "Ready", "status": "False", "reason": "Blocked"}]}}
    assert ready_condition(body) == {"type": "Ready", "status": "False", "reason": "Blocked"}
    assert ready_reason(body) == "Blocked"
    assert ready_condition({"status": {}}) == {} and ready_reason(None) is None


def test_a_cluster_is_applied_only_when_healthy_with_every_desired_instance_ready() -> None:
    assert cluster_verdict(2, cluster()) == Verdict(True, "Applied", "Cluster healthy, 2/2 instances ready")
    assert cluster_verdict(2, cluster(ready=1)).reason == "Pending"
    assert cluster_verdict(3, cluster()).message == "waiting for the Cluster to take instances=3"
    assert cluster_verdict(2, None).reason == "Pending"
    failed = cluster_verdict(2, cluster("Invalid cluster definition", phaseReason="bad storage"))
    assert failed == Verdict(False, "Blocked", "CNPG reports: Invalid cluster definition (bad storage)")


def test_a_database_object_counts_as_applied_only_for_its_current_generation() -> None:
    def obj(generation: int, observed: int, **status: Any) -> Json:
        return {"metadata": {"generation": generation}, "status": {"observedGeneration": observed, **status}}

    assert crd_applied_verdict("Database", obj(2, 2, applied=True), True, "pg").ready
    assert crd_applied_verdict("Database", obj(3, 2, applied=True), True, "pg").reason == "Pending"
    assert crd_applied_verdict("Database", obj(1, 1, applied=False, message="boom"), True, "pg") == Verdict(
        False, "Blocked", "CNPG reports: boom")
    assert crd_applied_verdict("DatabaseRole", obj(1, 1, applied=False, message="role x is already managed"),
                               True, "pg").reason == "Conflict"
    assert crd_applied_verdict("Database", None, False, "pg").reason == "ClusterNotFound"
    assert crd_applied_verdict("Database", None, True, "pg").reason == "Pending"


def test_a_managed_role_is_applied_when_reconciled_with_our_entry_and_dropped_without_password_state() -> None:
    entry = {"name": "app_user", "ensure": "present", "login": True}
    reconciled: Any = {"byStatus": {"reconciled": ["app_user"]}}
    live = {**cluster(managedRolesStatus=reconciled), "spec": {"managed": {"roles": [entry]}}}
    assert managed_role_verdict(live, "app_user", "pg", entry).ready
    assert managed_role_verdict(live, "app_user", "pg", {**entry, "login": False}).reason == "Pending"
    blocked = {**live, "status": {"managedRolesStatus": {"cannotReconcile": {"app_user": ["owns objects"]}}}}
    assert managed_role_verdict(blocked, "app_user", "pg", entry).reason == "Blocked"
    absent = {**live, "spec": {"managed": {"roles": [{**entry, "ensure": "absent"}]}}}
    assert managed_role_dropped(absent, "app_user")
    with_password = {**absent, "status": {"managedRolesStatus": {
        "byStatus": {"reconciled": ["app_user"]}, "passwordStatus": {"app_user": {}}}}}
    assert not managed_role_dropped(with_password, "app_user")  # the role still exists


# -------------------------------------------------------------------------------------- drift


def test_merge_patch_names_only_differences_and_removes_dropped_optional_keys() -> None:
    actual = {"login": True, "comment": "old", "defaulted": 1, "inRoles": ["a"]}
    assert merge_patch({"login": True, "comment": "new"}, actual, ("inRoles", "validUntil")) == {
        "comment": "new", "inRoles": None}
    assert merge_patch({"login": True}, {"login": True, "defaulted": 1}) is None
    assert owned_by({"metadata": {"ownerReferences": [{"uid": UID}]}}, UID)
    assert not owned_by({"metadata": {}}, UID) and not owned_by(None, UID)


# ---------------------------------------------------------------------------------- projections


def test_an_index_keeps_what_handlers_read_and_nothing_else() -> None:
    body = {
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": {"name": "pg", "namespace": "ns", "uid": "u", "resourceVersion": "7", "generation": 2,
                     "labels": {"cnpg-mcp.io/request": "pg"}, "ownerReferences": [{"uid": "o"}],
                     "managedFields": [{"manager": "kubectl"}], "finalizers": ["x"],
                     "annotations": {OWNERS_ANNOTATION: "{}",
                                     "kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
        "spec": {"instances": 2, "managed": {"roles": [{"name": "a"}]}},
        "status": {"phase": CNPG_HEALTHY_PHASE, "managedRolesStatus": {}, "certificates": {"big": "x"},
                   "instancesStatus": {"healthy": ["pg-1"]}},
    }
    slim = project(body, annotations=(OWNERS_ANNOTATION,), status=CLUSTER_STATUS_READ)
    assert slim == {
        "apiVersion": "postgresql.cnpg.io/v1", "kind": "Cluster",
        "metadata": {"name": "pg", "namespace": "ns", "uid": "u", "resourceVersion": "7", "generation": 2,
                     "labels": {"cnpg-mcp.io/request": "pg"}, "ownerReferences": [{"uid": "o"}],
                     "annotations": {OWNERS_ANNOTATION: "{}"}},
        "spec": {"instances": 2, "managed": {"roles": [{"name": "a"}]}},
        "status": {"phase": CNPG_HEALTHY_PHASE, "managedRolesStatus": {}},
    }
    slim["spec"]["managed"]["roles"].append({"name": "b"})
    assert body["spec"] == {"instances": 2, "managed": {"roles": [{"name": "a"}]}}  # a detached copy


def test_an_intent_index_keeps_its_whole_status_and_the_recreate_annotation() -> None:
    status = {"observedGeneration": 1, "conditions": [{"type": "Ready"}], "clusterUID": "u"}
    body = {"kind": "PgClusterRequest", "metadata": {
        "name": "pg", "namespace": "ns", "uid": "u", "deletionTimestamp": "2026-01-01T00:00:00Z",
        "annotations": {RECREATE_ANNOTATION: "1", "cnpg-mcp.io/last-handled-configuration": "{}"}},
        "spec": {"instances": 1}, "status": status}
    view = intent_view(body)  # type: ignore[arg-type]
    assert view["status"] == status and view["metadata"]["annotations"] == {RECREATE_ANNOTATION: "1"}
    assert view["metadata"]["deletionTimestamp"] and plain(body) == body


# ----------------------------------------------------------------------------- deletion plans

WORDING = ReleaseWording(asked="asked", cannot="cannot", waiting="waiting", hint="hint")


def owned(policy: str, *, deleting: bool = False, **status: Any) -> Json:
    meta: Json = {"name": "r", "namespace": "ns", **({"deletionTimestamp": "t"} if deleting else {})}
    return {"metadata": meta, "spec": {"databaseRoleReclaimPolicy": policy}, "status": status}


def plan(obj: Json, policy: str, cluster_exists: bool = True) -> tuple[tuple[Write, ...], Verdict | None]:
    result = release_plan(obj, policy_field="databaseRoleReclaimPolicy", policy=policy,
                          cluster_exists=cluster_exists, wording=WORDING)
    return result.writes, result.verdict


def test_release_sets_the_current_policy_then_deletes_then_waits() -> None:
    assert plan(owned("delete"), "delete") == ((Write("delete"),), Verdict(False, "Deleting", "asked"))
    assert plan(owned("retain"), "delete") == (
        (Write("patch", {"spec": {"databaseRoleReclaimPolicy": "delete"}}), Write("delete")),
        Verdict(False, "Deleting", "asked"))
    assert plan(owned("delete", deleting=True), "delete") == ((), Verdict(False, "Deleting", "waiting"))


def test_a_refused_drop_is_blocked_until_switched_to_retain() -> None:
    refused = owned("delete", deleting=True, applied=False, message="role owns objects")
    assert plan(refused, "delete") == ((), Verdict(False, "Blocked", "cannot: role owns objects; hint"))
    # switched to retain while CNPG is deleting: the policy is set again, no Blocked any more
    assert plan(refused, "retain") == ((Write("patch", {"spec": {"databaseRoleReclaimPolicy": "retain"}}),),
                                       Verdict(False, "Deleting", "waiting"))


def test_without_its_cluster_the_object_is_deleted_and_cleanup_completes() -> None:
    assert plan(owned("delete"), "delete", cluster_exists=False) == ((Write("delete"),), None)
    assert plan(owned("delete", deleting=True), "delete", cluster_exists=False) == ((), None)


def test_kinds_keep_their_own_wording() -> None:
    assert role_requests.release_wording("app", drop=False).asked == "asked CNPG to release role app"
    assert database_requests.release_wording("db").waiting == "waiting for CNPG to release Database db"


def managed(entry: Json | None, owner: str | None, **status: Any) -> Json:
    owners = {"app": owner} if owner else {}
    return {"metadata": {"annotations": {OWNERS_ANNOTATION: owners_annotation_value(owners)}},
            "spec": {"managed": {"roles": [entry] if entry else []}}, "status": status}


def apply(edit: Any, live: Json) -> ManagedRoles:
    entry = live["spec"]["managed"]["roles"]
    state, _ = edit(ManagedRoles(list(entry), {"app": UID}))
    return state  # type: ignore[no-any-return]


def test_managed_entry_deletion_marks_absent_waits_then_removes_only_our_entry() -> None:
    present = {"name": "app", "ensure": "present"}
    edit, verdict = role_requests.managed_entry_release_plan(managed(present, UID), "app", UID, drop=True)
    assert verdict == Verdict(False, "Deleting", "asked CNPG to drop role app")
    assert apply(edit, managed(present, UID)).roles == [{"name": "app", "ensure": "absent"}]

    absent = {"name": "app", "ensure": "absent"}
    edit, verdict = role_requests.managed_entry_release_plan(
        managed(absent, UID, managedRolesStatus={"cannotReconcile": {"app": ["owns table t"]}}), "app", UID, True)
    assert edit is None and verdict is not None and verdict.reason == "Blocked"
    assert "owns table t" in verdict.message

    dropped = managed(absent, UID, managedRolesStatus={"byStatus": {"reconciled": ["app"]}})
    edit, verdict = role_requests.managed_entry_release_plan(dropped, "app", UID, drop=True)
    assert verdict is None and apply(edit, dropped) == ManagedRoles([], {})

    edit, verdict = role_requests.managed_entry_release_plan(managed(present, UID), "app", UID, drop=False)
    assert verdict is None and apply(edit, managed(present, UID)).roles == []  # retain: removed, not dropped


def test_an_entry_recorded_under_another_uid_is_never_touched() -> None:
    for live in (managed({"name": "app"}, "uid-other"), managed({"name": "app"}, None), managed(None, UID)):
        assert role_requests.managed_entry_release_plan(live, "app", UID, drop=True) == (None, None)
    assert role_requests.managed_entry_release_plan(None, "app", UID, drop=True) == (None, None)


# ------------------------------------------------------------------------------- registration


def handler_ids(registry: kopf.OperatorRegistry) -> dict[str, list[str]]:
    return {
        "index": sorted(h.id for h in registry._indexing.get_all_handlers()),
        # a resume handler has no reason: it is the one marked initial
        "changing": sorted(f"{'resume' if h.initial else h.reason}:{h.id}"
                           for h in registry._changing.get_all_handlers()),
    }


def test_a_kind_registers_its_indexes_and_handlers_under_stable_ids() -> None:
    async def noop(*_: Any) -> None:
        return None

    registry = kopf.OperatorRegistry()
    register_intent_kind(IntentKind(ROLE_REQUESTS, "role_request", noop, noop, noop, lambda *_: False), registry)
    assert handler_ids(registry) == {
        "index": ["role_requests", "role_requests_by_cluster"],
        "changing": ["create:reconcile_role_request", "delete:delete_role_request",
                     "resume:reconcile_role_request", "update:reconcile_role_request"],
    }


def test_the_served_kinds_keep_the_index_names_the_observers_read() -> None:
    assert [(k.index, k.cluster_index) for k in INTENT_KINDS] == [
        ("cluster_requests", "cluster_requests"),
        ("role_requests", "role_requests_by_cluster"),
        ("database_requests", "database_requests_by_cluster"),
        ("backup_store_requests", "backup_store_requests_by_cluster"),
        ("backup_requests", "backup_requests_by_cluster"),
        ("backup_schedule_requests", "backup_schedule_requests_by_cluster"),
        ("pooler_requests", "pooler_requests_by_cluster"),
        ("operation_requests", "operation_requests_by_cluster"),
    ]


@pytest.mark.parametrize("kind", INTENT_KINDS, ids=lambda k: k.name)
def test_every_kind_indexes_a_slim_projection(kind: IntentKind) -> None:
    registry = kopf.OperatorRegistry()
    register_intent_kind(kind, registry)
    raw: Any = {"kind": kind.resource.kind, "metadata": {
        "name": "x", "namespace": "ns", "uid": "u", "managedFields": [{}]}, "spec": {"cluster": "pg"}}
    body = kopf.Body(raw)
    for handler in registry._indexing.get_all_handlers():
        index_fn: Any = handler.fn
        entry = asyncio.run(index_fn(body=body, namespace="ns", name="x", spec=body["spec"]))
        ((key, value),) = entry.items()
        assert key == ("ns", "pg" if handler.id.endswith("_by_cluster") else "x")
        assert "managedFields" not in value["metadata"]
