"""A Backup or ScheduledBackup that CloudNativePG's webhook refuses is reported on the request (issue #11).

The real CNPG webhook refuses method volumeSnapshot here: the control plane has no VolumeSnapshot CRD.
The request says so once (Ready=False, Invalid, CNPG's reason in status.message, a Warning Event) and the
operator does not retry: only a spec change could help.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from mcp import Client

from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import ok, text
from tests.integration.test_gateway_backups import anyio_backend, gateway
from tests.integration.test_operator_backups import BACKUP_KIND, CNPG, SCHEDULE_KIND, get
from tests.integration.test_operator_roles import make_cluster

CNPG_REASON = "missing VolumeSnapshot CRD"
__all__ = ["anyio_backend", "gateway"]  # fixtures reused from test_gateway_backups


def assert_refusal_reported_once(intents: Intents, kind: str, namespace: str, name: str) -> None:
    refused = intents.wait_reason(kind, namespace, name, "Invalid")
    assert CNPG_REASON in refused["status"]["message"], refused["status"]
    assert refused["status"]["observedGeneration"] == refused["metadata"]["generation"]
    warnings = [e for e in intents.events_for(namespace, name) if e.reason == "Invalid"]
    assert [e.type for e in warnings] == ["Warning"] and CNPG_REASON in warnings[0].message
    time.sleep(4)  # a retry loop (Kopf's backoff starts at a second or so) would write the request again
    again = intents.get(kind, namespace, name) or {}
    assert again["metadata"]["resourceVersion"] == refused["metadata"]["resourceVersion"], again


def test_a_refused_backup_is_reported_with_cnpgs_reason(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
                                                        namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    name = f"{cluster}-snap"
    intents.create(BACKUP_KIND, namespace, name, {"cluster": cluster, "method": "volumeSnapshot"})
    assert_refusal_reported_once(intents, BACKUP_KIND, namespace, name)
    assert get(k8s, CNPG, namespace, "backups", name) is None


def test_a_refused_schedule_is_reported_with_cnpgs_reason(operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
                                                          namespace: str, intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    name = f"{cluster}-nightly"
    intents.create(SCHEDULE_KIND, namespace, name,
                   {"cluster": cluster, "schedule": "0 0 2 * * *", "method": "volumeSnapshot"})
    assert_refusal_reported_once(intents, SCHEDULE_KIND, namespace, name)
    assert get(k8s, CNPG, namespace, "scheduledbackups", name) is None

    intents.patch_spec(SCHEDULE_KIND, namespace, name, {"method": "plugin"})  # the spec change that helps
    intents.wait_for(SCHEDULE_KIND, namespace, name,
                     lambda o: (Intents.ready(o) or {}).get("reason") != "Invalid", "out of Invalid")
    assert (get(k8s, CNPG, namespace, "scheduledbackups", name) or {})["spec"]["method"] == "plugin"


@pytest.mark.anyio
async def test_schedule_postgres_backup_reports_cnpgs_refusal(gateway: Any, namespace: str,
                                                              intents: Intents) -> None:
    cluster = make_cluster(intents, namespace)
    async with Client(gateway) as mcp:
        answer = await mcp.call_tool("schedule_postgres_backup", {
            "cluster_name": cluster, "schedule": "0 0 2 * * *", "method": "volumeSnapshot",
            "namespace": namespace})
    state = ok(answer)["state"]
    assert state["ready"] is False and state["reason"] == "Invalid", state
    assert "not ready (Invalid): CloudNativePG refused the ScheduledBackup" in text(answer), text(answer)
    headline = text(answer).splitlines()[0]  # claims no schedule CNPG refused
    assert "NOT scheduled" in headline and " created " not in headline, text(answer)
    assert CNPG_REASON in text(answer)
