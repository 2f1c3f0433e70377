"""One running operation per cluster, even when two requests are started at the same moment: the claim
is checked and taken with no await in between (the operator's API calls yield to the other one)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from cnpg_mcp_api import constants
from cnpg_mcp_operator.handlers import operation_requests


class SlowApi:
    """Every call yields to the event loop, as a real API round trip does."""

    def __init__(self) -> None:
        self.patches: list[str] = []

    async def list(self, resource: Any, namespace: str, **_: Any) -> list[dict[str, Any]]:
        await asyncio.sleep(0.01)
        return []  # neither request is stored as Running yet

    async def get(self, resource: Any, namespace: str, name: str) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        return {"metadata": {"name": name, "namespace": namespace, "uid": "c1", "resourceVersion": "7"},
                "status": {"phase": constants.CNPG_HEALTHY_PHASE, "instanceNames": ["db-1", "db-2"],
                           "currentPrimary": "db-1", "targetPrimary": "db-1"}}

    async def patch(self, resource: Any, namespace: str, name: str, patch: Any, **_: Any) -> dict[str, Any]:
        await asyncio.sleep(0.01)
        self.patches.append(name)
        return {"metadata": {"resourceVersion": "8"}}


class FakeRuntime:
    def __init__(self) -> None:
        self.api = SlowApi()


def request(name: str, uid: str) -> dict[str, Any]:
    return {"kind": constants.OPERATION_REQUEST_KIND,
            "metadata": {"name": name, "namespace": "ns", "uid": uid},
            "spec": {"type": "reload", "cluster": "db"}}


def test_two_requests_started_together_one_is_busy() -> None:
    rt = FakeRuntime()

    async def both() -> list[Any]:
        return list(await asyncio.gather(operation_requests._start(rt, request("a", "u1")),  # type: ignore[arg-type]
                                    operation_requests._start(rt, request("b", "u2")),  # type: ignore[arg-type]
                                    return_exceptions=True))

    try:
        outcomes = asyncio.run(both())
    finally:
        operation_requests._claims.clear()
    refused = [o for o in outcomes if isinstance(o, operation_requests.Refused)]
    assert len(rt.api.patches) == 1, outcomes
    assert len(refused) == 1 and refused[0].reason == "Busy"


class FlakyStatus:
    """The status writer fails once, as an API hiccup right after the trigger was written would."""

    def __init__(self) -> None:
        self.failures_left = 1
        self.written: list[dict[str, Any]] = []

    def freshest(self, body: dict[str, Any]) -> dict[str, Any]:
        return body

    async def write(self, resource: Any, body: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
        if self.failures_left:
            self.failures_left -= 1
            raise RuntimeError("status write failed")
        self.written.append(desired)
        return {**body, "status": desired}


def test_a_failed_status_write_after_the_trigger_never_triggers_again() -> None:
    from cnpg_mcp_operator.wakeups import KeyedLocks  # noqa: PLC0415

    rt = FakeRuntime()
    rt.locks = KeyedLocks()  # type: ignore[attr-defined]
    rt.status = FlakyStatus()  # type: ignore[attr-defined]
    body = request("a", "u1")

    async def twice() -> None:
        with contextlib.suppress(RuntimeError):  # the failed status write; Kopf retries the handler
            await operation_requests._advance(rt, body)  # type: ignore[arg-type]
        await operation_requests._advance(rt, body)  # type: ignore[arg-type]
        for task in list(operation_requests._watchers.values()):
            task.cancel()

    try:
        asyncio.run(twice())
    finally:
        operation_requests._claims.clear()
        operation_requests._watchers.clear()
    assert rt.api.patches == ["db"], "the trigger was written once"
    assert rt.status.written[-1]["phase"] == "Running"  # type: ignore[attr-defined]
