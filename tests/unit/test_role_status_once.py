"""The first production of a role request writes its status once (issue #14: ≤ 4 writes per role intent):
the handler holds the status back, without the intent's lock, until CNPG applies the DatabaseRole or a
short grace ends. Never Ready before CNPG reports applied; a slow apply still gets its Pending status."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from cnpg_mcp_operator.backend import RoleBackend
from cnpg_mcp_operator.handlers import role_requests
from cnpg_mcp_operator.handlers.common import ROLE_REQUESTS
from cnpg_mcp_operator.k8s import DATABASE_ROLES
from cnpg_mcp_operator.status_writer import StatusWriter, intent_key
from cnpg_mcp_operator.wakeups import KeyedLocks, Wakeups
from tests.unit.test_operator_writers import FakeApi, role_request

Json = dict[str, Any]
GRACE_S = 0.3


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(role_requests, "APPLY_GRACE_S", GRACE_S)


class World:
    """The API, the operator's runtime and its index of DatabaseRoles (what the watch has shown)."""

    def __init__(self) -> None:
        self.api = FakeApi()
        self.indexed: dict[str, Json] = {}
        self.rt: Any = SimpleNamespace(api=self.api, status=StatusWriter(self.api),  # type: ignore[arg-type]
                                       locks=KeyedLocks(), wakeups=Wakeups(),
                                       role_backend=RoleBackend.DATABASE_ROLE, privileged_allowed=lambda _: False)
        cluster = {"metadata": {"name": "pg", "namespace": "ns"}, "spec": {}}
        self.views: Any = SimpleNamespace(cluster=lambda *_: cluster, requested_roles=lambda *_, **__: set(),
                                          database_role=lambda _ns, name: self.indexed.get(name))
        self.request = role_request()
        self.request["spec"]["roleName"] = "alice"
        self.api.put(ROLE_REQUESTS, self.request)

    def cnpg_applies(self) -> None:
        """The simulator's status write arriving through the watch: index, then the observer's wake-up."""
        role = self.api.objects[DATABASE_ROLES.plural, "ns", "app"]
        role["metadata"].setdefault("generation", 1)  # the API server's, which FakeApi does not set
        role["status"] = {"applied": True, "observedGeneration": role["metadata"]["generation"]}
        self.indexed["app"] = role
        self.rt.wakeups.notify(intent_key(self.request))

    async def produced(self) -> None:
        """Until the handler created the DatabaseRole (it then holds the status back)."""
        for _ in range(200):
            if (DATABASE_ROLES.plural, "ns", "app") in self.api.objects:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("no DatabaseRole created")

    def status_writes(self) -> int:
        return self.api.calls.count("patch pgrolerequests/status")

    def reasons(self) -> list[str]:
        return [reason for reason, _ in self.api.posted()]


def test_a_quick_apply_gets_one_status_write_and_one_event() -> None:
    world = World()

    async def scenario() -> None:
        reconcile = asyncio.create_task(role_requests.reconcile(world.rt, world.request, world.views))
        await world.produced()
        await asyncio.sleep(0.05)
        assert world.status_writes() == 0  # held back: no Pending
        async with world.rt.locks(intent_key(world.request)):  # the wait does not hold the intent's lock
            pass
        world.cnpg_applies()
        await asyncio.wait_for(reconcile, GRACE_S)  # woken, not timed out

    asyncio.run(scenario())
    assert world.status_writes() == 1
    assert world.reasons() == ["Applied"]
    status = world.api.objects[ROLE_REQUESTS.plural, "ns", "app"]["status"]
    assert status["applied"] is True and status["backend"] == "DatabaseRole"


def test_a_slow_apply_gets_pending_after_the_grace_and_never_ready_before_cnpg() -> None:
    world = World()
    asyncio.run(role_requests.reconcile(world.rt, world.request, world.views))
    status = world.api.objects[ROLE_REQUESTS.plural, "ns", "app"]["status"]
    assert world.status_writes() == 1
    assert status["applied"] is False
    assert world.reasons() == ["Pending"]


def test_a_wake_up_that_is_not_the_apply_keeps_waiting() -> None:
    world = World()

    async def scenario() -> None:
        reconcile = asyncio.create_task(role_requests.reconcile(world.rt, world.request, world.views))
        await world.produced()
        world.indexed["app"] = world.api.objects[DATABASE_ROLES.plural, "ns", "app"]  # its ADDED event
        world.rt.wakeups.notify(intent_key(world.request))
        await asyncio.sleep(0.05)
        assert not reconcile.done()
        world.cnpg_applies()
        await asyncio.wait_for(reconcile, GRACE_S)

    asyncio.run(scenario())
    assert world.status_writes() == 1
    assert world.reasons() == ["Applied"]


def test_a_later_reconcile_writes_at_once() -> None:
    """Only the first production waits: once status.backend is recorded the observers keep it current."""
    world = World()
    asyncio.run(role_requests.reconcile(world.rt, world.request, world.views))  # Pending after the grace
    body = world.api.objects[ROLE_REQUESTS.plural, "ns", "app"]
    body["metadata"]["generation"] = 2
    body["spec"]["comment"] = "changed"

    async def timed() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await role_requests.reconcile(world.rt, dict(body), world.views)
        return loop.time() - started

    assert asyncio.run(timed()) < GRACE_S / 2
