"""How many times the operator writes a role intent on its way to Ready (issue #14: writes per intent).

Counted from a watch on the intent, started before it is created: every accepted write is one event.
Not timed: the figures under load are bench/burst.py's."""

from __future__ import annotations

import threading
import time
from typing import Any

from kubernetes import client, watch

from tests.integration.conftest import GROUP, VERSION, Intents, OperatorProcess
from tests.integration.gateway_helpers import unique

# Kopf's finalizer and one status write: the handler waits (briefly, without its lock) for CNPG to apply
# the DatabaseRole it produced and writes Ready once, instead of Pending then Ready. Kopf's diff base is
# kept in memory (operator/cnpg_mcp_operator/diffbase.py), not written as an annotation.
INTENT_WRITES_TO_READY = 2
# One transition (none → Ready), so one Event.
EVENTS_TO_READY = 1
TRAILING_WRITES_WAIT_S = 3.0


def record_statuses(k8s: Any, namespace: str, name: str, seen: list[dict[str, Any]], stop: threading.Event,
                    started: threading.Event) -> None:
    custom = client.CustomObjectsApi(k8s)
    version = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "pgrolerequests")["metadata"][
        "resourceVersion"]
    started.set()
    while not stop.is_set():
        for event in watch.Watch().stream(custom.list_namespaced_custom_object, GROUP, VERSION, namespace,
                                          "pgrolerequests", resource_version=version, timeout_seconds=2,
                                          field_selector=f"metadata.name={name}"):
            version = event["object"]["metadata"]["resourceVersion"]
            if event["type"] == "MODIFIED":
                seen.append(event["object"])


def test_a_role_intent_is_written_twice_with_one_event_on_its_way_to_ready(
        operator: OperatorProcess, k8s: Any, namespace: str, intents: Intents) -> None:
    intents.create("PgClusterRequest", namespace, "writes", {"instances": 1})
    intents.wait_ready("PgClusterRequest", namespace, "writes")
    seen: list[dict[str, Any]] = []
    stop, started = threading.Event(), threading.Event()
    watcher = threading.Thread(target=record_statuses, args=(k8s, namespace, "w-role", seen, stop, started),
                               daemon=True)
    watcher.start()
    assert started.wait(30)
    intents.create("PgRoleRequest", namespace, "w-role", {"cluster": "writes", "roleName": unique("w")})
    intents.wait_ready("PgRoleRequest", namespace, "w-role")
    deadline = time.monotonic() + 30
    while not any((Intents.ready(body) or {}).get("status") == "True" for body in seen):
        assert time.monotonic() < deadline, "the watch never showed the Ready status"
        time.sleep(0.1)
    time.sleep(TRAILING_WRITES_WAIT_S)  # Kopf's bookkeeping used to follow the handler: let it show
    stop.set()
    watcher.join(10)
    messages = [(Intents.ready(body) or {}).get("message") for body in seen]
    annotations = [key for body in seen for key in (body["metadata"].get("annotations") or {})]
    assert not any(key.endswith("last-handled-configuration") for key in annotations), annotations
    assert "waiting for the DatabaseRole to be created" not in messages, messages
    assert len(seen) <= INTENT_WRITES_TO_READY, messages
    statuses = [Intents.ready(body) for body in seen if Intents.ready(body) is not None]
    assert [(c or {}).get("reason") for c in statuses] == ["Applied"], messages  # never a Pending in between
    database_role = k8s_custom_get(k8s, namespace, "databaseroles", "w-role")
    assert (database_role.get("status") or {}).get("applied") is True  # Ready only once CNPG applied it
    reasons = [event.reason for event in intents.events_for(namespace, "w-role")]
    assert len(reasons) <= EVENTS_TO_READY, reasons


def k8s_custom_get(k8s: Any, namespace: str, plural: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        "postgresql.cnpg.io", "v1", namespace, plural, name)
    return obj
