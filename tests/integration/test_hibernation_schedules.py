"""Hibernating a cluster through MCP suspends its backup schedules (no backup of a stopped cluster can
succeed); resuming re-enables exactly those, never a schedule the user had paused on purpose."""

from __future__ import annotations

from typing import Any

import pytest
from mcp import Client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from mcp_gateway.tools.operations import SUSPENDED_FOR_HIBERNATION
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import gateway_server, ok, text

pytestmark = pytest.mark.anyio
SCHEDULE = constants.BACKUP_SCHEDULE_REQUEST_KIND


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_hibernation_suspends_and_resume_restores_only_its_own_suspensions(
        control_plane: ControlPlane, operator: OperatorProcess, namespace: str, intents: Intents) -> None:
    intents.create(constants.CLUSTER_REQUEST_KIND, namespace, "sleepy", {"instances": 1})
    intents.wait_ready(constants.CLUSTER_REQUEST_KIND, namespace, "sleepy")
    intents.create(SCHEDULE, namespace, "sleepy-nightly", {"cluster": "sleepy", "schedule": "0 0 2 * * *"})
    intents.create(SCHEDULE, namespace, "sleepy-paused", {"cluster": "sleepy", "schedule": "0 0 3 * * *",
                                                          "suspend": True})

    def schedule(name: str) -> dict[str, Any]:
        found = intents.get(SCHEDULE, namespace, name)
        assert found is not None
        return found

    async with Client(gateway_server(control_plane)) as mcp:
        asleep = await mcp.call_tool("hibernate_postgres_cluster", {"name": "sleepy", "namespace": namespace})
        assert ok(asleep)["phase"] == "Succeeded", text(asleep)
        assert "Backup schedules suspended while hibernated: sleepy-nightly" in text(asleep)
        nightly = schedule("sleepy-nightly")
        assert nightly["spec"]["suspend"] is True
        assert nightly["metadata"]["annotations"][SUSPENDED_FOR_HIBERNATION] == "true"
        assert SUSPENDED_FOR_HIBERNATION not in (schedule("sleepy-paused")["metadata"].get("annotations") or {})

        awake = await mcp.call_tool("hibernate_postgres_cluster", {"name": "sleepy", "state": "off",
                                                                   "namespace": namespace})
        assert ok(awake)["phase"] == "Succeeded", text(awake)
        assert "Backup schedules resumed: sleepy-nightly" in text(awake)
    nightly = schedule("sleepy-nightly")
    assert nightly["spec"]["suspend"] is False
    assert SUSPENDED_FOR_HIBERNATION not in (nightly["metadata"].get("annotations") or {})
    assert schedule("sleepy-paused")["spec"]["suspend"] is True  # the user's own pause is kept
