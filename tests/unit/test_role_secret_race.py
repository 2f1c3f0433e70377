"""A role request deleted while a reconcile for it is queued (observers hand it the body from Kopf's
index, which lags the deletion): the stale reconcile must not issue a password Secret for a request
whose finalizer has already run (found as an orphan Secret by tests/reliability/test_conflicting_writers)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from cnpg_mcp_operator.backend import RoleBackend
from cnpg_mcp_operator.handlers import role_requests
from cnpg_mcp_operator.handlers.common import ROLE_REQUESTS
from cnpg_mcp_operator.k8s import DATABASE_ROLES
from cnpg_mcp_operator.status_writer import StatusWriter
from cnpg_mcp_operator.wakeups import KeyedLocks, Wakeups
from tests.unit.test_operator_writers import FakeApi, role_request


def views() -> Any:
    cluster = {"metadata": {"name": "pg", "namespace": "ns"}, "spec": {}}
    return SimpleNamespace(cluster=lambda *_: cluster, requested_roles=lambda *_, **__: set(),
                           database_role=lambda *_: None)


def runtime(api: FakeApi) -> Any:
    return SimpleNamespace(api=api, status=StatusWriter(api), locks=KeyedLocks(),  # type: ignore[arg-type]
                           wakeups=Wakeups(), role_backend=RoleBackend.DATABASE_ROLE,
                           privileged_allowed=lambda _: False)


def request() -> dict[str, Any]:
    body = role_request()
    body["spec"]["roleName"] = "alice"  # not the bootstrap owner (the policy refuses that one)
    return body


def test_a_stale_reconcile_of_a_deleted_request_issues_no_secret() -> None:
    api = FakeApi()  # the request is gone: its finalizer ran, the object was removed
    stale = request()
    stale["metadata"]["resourceVersion"] = "5"
    asyncio.run(role_requests.reconcile(runtime(api), stale, views()))
    assert "create secrets" not in api.calls, api.calls


def test_a_stale_reconcile_of_a_request_being_deleted_issues_no_secret() -> None:
    api = FakeApi()
    deleting = request()
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    api.put(ROLE_REQUESTS, deleting)
    stale = request()
    stale["metadata"]["resourceVersion"] = "5"
    asyncio.run(role_requests.reconcile(runtime(api), stale, views()))
    assert "create secrets" not in api.calls, api.calls


def test_a_deletion_releases_the_database_role_the_index_has_not_shown_yet() -> None:
    # Found by tests/reliability/test_conflicting_writers (role still in PostgreSQL after its request was
    # deleted): the request was deleted 1 s after it produced its DatabaseRole, the DatabaseRole index
    # lagged, and the deletion step concluded that nothing of the request's was left to release.
    api = FakeApi()
    deleting = request()
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    uid = deleting["metadata"]["uid"]
    produced = {"apiVersion": "postgresql.cnpg.io/v1", "kind": "DatabaseRole",
                "metadata": {"name": deleting["metadata"]["name"], "namespace": "ns", "resourceVersion": "7",
                             "ownerReferences": [{"uid": uid, "kind": "PgRoleRequest",
                                                  "name": deleting["metadata"]["name"]}]},
                "spec": {"cluster": {"name": "pg"}, "name": "alice", "ensure": "present",
                         "databaseRoleReclaimPolicy": "retain"},
                "status": {"applied": True, "observedGeneration": 1}}
    api.put(DATABASE_ROLES, produced)
    verdict = asyncio.run(role_requests._finalize_step(runtime(api), deleting, views()))
    assert verdict is not None, "the produced DatabaseRole was left behind"
    assert "get databaseroles" in api.calls
