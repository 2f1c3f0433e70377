"""The operator's writers and the deletion loop against an in-memory API (no Kopf, no API server):
the status writer writes only differences and posts an Event per Ready transition, the managed-roles
writer batches concurrent edits into one read and one write and re-applies them on 409, and
run_deletion finishes, reports, waits on wake-ups and hands back to Kopf after its attempt."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import kopf
import pytest

from cnpg_mcp_operator.handlers.common import ROLE_REQUESTS, run_deletion, verdict_status
from cnpg_mcp_operator.k8s import CLUSTERS, ApiError, Resource
from cnpg_mcp_operator.managed_roles import CLUSTER_MISSING, OWNERS_ANNOTATION, ManagedRoles, ManagedRolesWriter
from cnpg_mcp_operator.readiness import Verdict
from cnpg_mcp_operator.status_writer import StatusWriter
from cnpg_mcp_operator.wakeups import KeyedLocks, Wakeups

Json = dict[str, Any]


class FakeApi:
    """Objects by (plural, namespace, name); merge patches applied one level deep; resourceVersions move."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], Json] = {}
        self.calls: list[str] = []
        self.conflicts = 0  # answer the next N patches with 409
        self.version = 10

    def put(self, resource: Resource, obj: Json) -> None:
        self.version += 1
        obj["metadata"]["resourceVersion"] = str(self.version)
        self.objects[resource.plural, obj["metadata"]["namespace"], obj["metadata"]["name"]] = obj

    async def get(self, resource: Resource, namespace: str, name: str) -> Json | None:
        self.calls.append(f"get {resource.plural}")
        found = self.objects.get((resource.plural, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    async def create(self, resource: Resource, namespace: str, body: Mapping[str, Any]) -> Json | None:
        self.calls.append(f"create {resource.plural}")
        if (resource.plural, namespace, body["metadata"]["name"]) in self.objects:
            return None  # 409 AlreadyExists, as Api.create answers it
        obj = copy.deepcopy(dict(body))
        self.put(resource, obj)
        return copy.deepcopy(obj)

    def posted(self) -> list[tuple[str, str]]:
        """The Events created, oldest first: (reason, message)."""
        return [(obj["reason"], obj["message"]) for (plural, _, _), obj in self.objects.items() if plural == "events"]

    async def patch(self, resource: Resource, namespace: str, name: str, patch: Mapping[str, Any]) -> Json:
        self.calls.append(f"patch {resource.plural}")
        if self.conflicts:
            self.conflicts -= 1
            raise ApiError(409, "Conflict", "the object has been modified")
        obj = self.objects[resource.plural, namespace, name]
        for section, values in patch.items():
            if isinstance(values, Mapping) and isinstance(obj.get(section), dict):
                obj[section].update({k: v for k, v in values.items() if k != "resourceVersion"})
            else:
                obj[section] = values
        self.put(resource, obj)
        return copy.deepcopy(obj)

    async def delete(self, resource: Resource, namespace: str, name: str, *,
                     propagation: str = "Background", uid: str | None = None) -> bool:
        self.calls.append(f"delete {resource.plural}")
        return self.objects.pop((resource.plural, namespace, name), None) is not None

    async def patch_status(self, resource: Resource, namespace: str, name: str, patch: Mapping[str, Any]) -> Json:
        self.calls.append(f"patch {resource.plural}/status")
        obj = self.objects[resource.plural, namespace, name]
        obj.setdefault("status", {}).update(patch)
        self.put(resource, obj)
        return copy.deepcopy(obj)


def role_request(**status: Any) -> Json:
    return {"apiVersion": "cnpg-mcp.io/v1alpha1", "kind": "PgRoleRequest",
            "metadata": {"name": "app", "namespace": "ns", "uid": "uid-app", "generation": 1},
            "spec": {"cluster": "pg", "roleName": "app"}, "status": status}


# ------------------------------------------------------------------------------ status writer


def test_the_status_writer_writes_only_differences_and_an_event_per_transition() -> None:
    api = FakeApi()
    api.put(ROLE_REQUESTS, role_request())
    writer = StatusWriter(api)  # type: ignore[arg-type]

    async def scenario() -> None:
        body = writer.freshest(await api.get(ROLE_REQUESTS, "ns", "app") or {})
        pending = verdict_status(body, Verdict(False, "Pending", "waiting"))
        body = await writer.write(ROLE_REQUESTS, body, pending)
        again = await writer.write(ROLE_REQUESTS, writer.freshest(body), verdict_status(body, Verdict(
            False, "Pending", "waiting")))
        assert again == body  # converged: nothing written
        body = await writer.write(ROLE_REQUESTS, body, verdict_status(body, Verdict(False, "Pending", "still")))
        body = await writer.write(ROLE_REQUESTS, body, verdict_status(body, Verdict(True, "Applied", "done")))
        assert body["status"]["conditions"][0]["reason"] == "Applied"

    asyncio.run(scenario())
    assert api.calls.count("patch pgrolerequests/status") == 3
    assert api.posted() == [("Pending", "waiting"), ("Applied", "done")]  # a message-only change posts nothing


class Killed(BaseException):
    """The operator process dying (SIGKILL) at this point: nothing after it runs."""


@pytest.mark.parametrize("crash_in_status_write", [True, False])
def test_a_transition_is_announced_once_across_a_crash_around_the_status_write(crash_in_status_write: bool) -> None:
    """The Event is created (under a name derived from the transition) before the status is written:
    killed in between, the restarted operator announces the same transition again and gets
    AlreadyExists; killed after the write, it sees no transition. Either way exactly one Event."""
    api = FakeApi()
    api.put(ROLE_REQUESTS, role_request())
    real_patch_status = api.patch_status

    async def dying_patch_status(*args: Any, **kwargs: Any) -> Json:
        if crash_in_status_write:
            raise Killed
        await real_patch_status(*args, **kwargs)
        raise Killed  # the write reached the API server, the process died before it saw the answer

    async def scenario() -> None:
        body = await api.get(ROLE_REQUESTS, "ns", "app") or {}
        body = await StatusWriter(api).write(  # type: ignore[arg-type]
            ROLE_REQUESTS, body, verdict_status(body, Verdict(False, "Pending", "waiting")))
        api.patch_status = dying_patch_status  # type: ignore[method-assign]
        with pytest.raises(Killed):
            await StatusWriter(api).write(  # type: ignore[arg-type]
                ROLE_REQUESTS, body, verdict_status(body, Verdict(True, "Applied", "done")))
        api.patch_status = real_patch_status  # type: ignore[method-assign]
        restarted = StatusWriter(api)  # type: ignore[arg-type]
        body = restarted.freshest(await api.get(ROLE_REQUESTS, "ns", "app") or {})
        body = await restarted.write(ROLE_REQUESTS, body, verdict_status(body, Verdict(True, "Applied", "done")))
        assert body["status"]["conditions"][0]["reason"] == "Applied"

    asyncio.run(scenario())
    assert api.posted() == [("Pending", "waiting"), ("Applied", "done")]


def test_a_repeated_transition_is_announced_again() -> None:
    """Ready, then not, then Ready again: two real transitions to Applied, two Events."""
    api = FakeApi()
    api.put(ROLE_REQUESTS, role_request())
    writer = StatusWriter(api)  # type: ignore[arg-type]
    times = iter(["2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z", "2026-01-01T00:00:03Z", "2026-01-01T00:00:04Z"])

    async def scenario() -> None:
        body = await api.get(ROLE_REQUESTS, "ns", "app") or {}
        for ready, reason in ((False, "Pending"), (True, "Applied"), (False, "Pending"), (True, "Applied")):
            desired = verdict_status(body, Verdict(ready, reason, reason.lower()))
            desired["conditions"][-1]["lastTransitionTime"] = next(times)
            body = await writer.write(ROLE_REQUESTS, body, desired)

    asyncio.run(scenario())
    assert [reason for reason, _ in api.posted()] == ["Pending", "Applied", "Pending", "Applied"]


def test_freshest_prefers_the_writers_own_newer_write_over_a_lagging_cache() -> None:
    api = FakeApi()
    api.put(ROLE_REQUESTS, role_request())
    writer = StatusWriter(api)  # type: ignore[arg-type]

    async def scenario() -> None:
        stale = await api.get(ROLE_REQUESTS, "ns", "app") or {}
        written = await writer.write(ROLE_REQUESTS, writer.freshest(stale),
                                     verdict_status(stale, Verdict(True, "Applied", "done")))
        assert writer.freshest(stale) == written  # the watch cache still holds the older version
        writer.forget(stale)
        assert writer.freshest(stale) == stale

    asyncio.run(scenario())


# ------------------------------------------------------------------------ managed-roles writer


def add(role: str) -> Any:
    def edit(state: ManagedRoles) -> tuple[ManagedRoles, str]:
        return ManagedRoles([*state.roles, {"name": role}], {**state.owners, role: f"uid-{role}"}), "written"
    return edit


def pg_cluster() -> Json:
    return {"metadata": {"name": "pg", "namespace": "ns", "annotations": {}}, "spec": {"managed": {"roles": []}}}


def test_concurrent_edits_share_one_read_and_one_write_with_their_ownership_record() -> None:
    api = FakeApi()
    api.put(CLUSTERS, pg_cluster())
    writer = ManagedRolesWriter(api)  # type: ignore[arg-type]

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(writer.edit("ns", "pg", add(f"r{i}")) for i in range(20))))

    assert asyncio.run(scenario()) == ["written"] * 20
    cluster = api.objects["clusters", "ns", "pg"]
    assert [r["name"] for r in cluster["spec"]["managed"]["roles"]] == [f"r{i}" for i in range(20)]
    assert len(cluster["metadata"]["annotations"][OWNERS_ANNOTATION].split(",")) == 20
    assert api.calls.count("patch clusters") <= 2 and api.calls.count("get clusters") <= 2


def test_a_stale_write_is_read_and_applied_again_and_a_missing_cluster_is_said() -> None:
    api = FakeApi()
    api.put(CLUSTERS, pg_cluster())
    api.conflicts = 2
    writer = ManagedRolesWriter(api)  # type: ignore[arg-type]
    assert asyncio.run(writer.edit("ns", "pg", add("a"))) == "written"
    assert api.calls == ["get clusters", "patch clusters"] * 3
    assert asyncio.run(writer.edit("ns", "gone", add("a"))) == CLUSTER_MISSING


# ----------------------------------------------------------------------------- deletion loop


def runtime(api: FakeApi) -> Any:
    return SimpleNamespace(api=api, status=StatusWriter(api), locks=KeyedLocks(),  # type: ignore[arg-type]
                           wakeups=Wakeups())


def test_run_deletion_reports_each_step_and_finishes_once_when_woken() -> None:
    api = FakeApi()
    api.put(ROLE_REQUESTS, role_request())
    rt = runtime(api)
    steps = [Verdict(False, "Deleting", "asked"), Verdict(False, "Blocked", "owns objects"), None]
    done: list[str] = []

    async def step(_: Json) -> Verdict | None:
        return steps.pop(0)

    async def finish(body: Json) -> None:
        done.append(body["metadata"]["name"])

    async def scenario() -> None:
        body = await api.get(ROLE_REQUESTS, "ns", "app") or {}
        deletion = asyncio.create_task(run_deletion(rt, ROLE_REQUESTS, body, step, finish, attempt_s=5))
        for _ in range(2):  # what the observers do on every CNPG event
            await asyncio.sleep(0.05)
            rt.wakeups.notify(("PgRoleRequest", "ns", "app"))
        await asyncio.wait_for(deletion, 2)

    asyncio.run(scenario())
    assert done == ["app"] and not steps
    assert [reason for reason, _ in api.posted()] == ["Deleting", "Blocked"]


def test_run_deletion_hands_back_to_kopf_when_nothing_moves() -> None:
    api = FakeApi()
    api.put(ROLE_REQUESTS, role_request())
    rt = runtime(api)

    async def blocked(_: Json) -> Verdict | None:
        return Verdict(False, "Blocked", "role owns objects")

    async def never(_: Json) -> None:
        raise AssertionError("a blocked deletion must not finish")

    async def scenario() -> None:
        body = await api.get(ROLE_REQUESTS, "ns", "app") or {}
        await run_deletion(rt, ROLE_REQUESTS, body, blocked, never, attempt_s=0.1)

    with pytest.raises(kopf.TemporaryError, match="Blocked: role owns objects"):
        asyncio.run(scenario())
    assert api.calls.count("patch pgrolerequests/status") == 1  # the same verdict is written once


def test_run_deletion_does_not_lose_a_change_seen_while_it_writes_the_status() -> None:
    """CNPG can act (and the observer notify) between the step's read and the wait: look again at once."""
    api = FakeApi()
    api.put(ROLE_REQUESTS, role_request())
    rt = runtime(api)
    steps = [Verdict(False, "Deleting", "asked"), None]
    done: list[str] = []
    key = ("PgRoleRequest", "ns", "app")

    async def step(_: Json) -> Verdict | None:
        verdict = steps.pop(0)
        if verdict is not None:
            rt.wakeups.notify(key)  # CNPG released the object before the loop starts waiting
        return verdict

    async def finish(body: Json) -> None:
        done.append(body["metadata"]["name"])

    async def scenario() -> None:
        body = await api.get(ROLE_REQUESTS, "ns", "app") or {}
        await asyncio.wait_for(run_deletion(rt, ROLE_REQUESTS, body, step, finish, attempt_s=5), 1)

    asyncio.run(scenario())
    assert done == ["app"] and not steps
