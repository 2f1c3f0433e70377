"""Two operator replicas with Kopf peering: the active one is SIGKILLed mid-batch; the standby, which wrote
nothing until then, takes over and finishes the batch without re-issuing or duplicating anything."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from devcluster.postgres import PostgresServer
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_operator_peering import PROBE_CACHE_S, wait_for_peers, writes
from tests.integration.test_operator_roles import read_password
from tests.reliability.conftest import Row, Scale
from tests.reliability.helpers import CLUSTER, ROLE, PasswordWatch, check_produced, is_ready, wait_all

LIFETIME_S = 8
PEERING_GROUP, PEERING_VERSION, PEERING_PLURAL = "kopf.dev", "v1", "clusterkopfpeerings"


def test_active_replica_killed_mid_batch(
    operator_factory: Callable[..., OperatorProcess], cnpg_simulator: Any, k8s: Any, postgres: PostgresServer,
    namespace: str, intents: Intents, scale: Scale, report: list[Row],
) -> None:
    token = secrets.token_hex(2)
    peering = f"cnpg-mcp-reliability-{token}"
    flags = ("--all-namespaces", f"--peering={peering}", f"--peering-lifetime={LIFETIME_S}")
    active = operator_factory(*flags)
    standby = operator_factory(*flags)
    try:
        wait_for_peers(k8s, peering, 2)
        cluster = f"replicas-{token}"
        intents.create(CLUSTER, namespace, cluster, {"instances": 1})
        roles = {f"{cluster}-r{i:02d}": f"rep{i:02d}_{token}" for i in range(scale.replica_roles)}
        names = list(roles)
        half = len(names) // 2

        def create(batch: list[str]) -> None:
            for name in batch:
                intents.create(ROLE, namespace, name, {"cluster": cluster, "roleName": roles[name]})

        with PasswordWatch(k8s, namespace) as watch:
            create(names[:half])
            intents.wait_ready(CLUSTER, namespace, cluster)
            time.sleep(PROBE_CACHE_S)  # a fresh probe answer: the standby's counters cover the first half
            standby_writes_before = writes(standby)
            active_writes = writes(active)
            later = threading.Thread(target=create, args=(names[half:],))
            later.start()
            time.sleep(0.3)
            active.kill()
            killed_at = time.monotonic()
            later.join()
            taken_over = wait_all(intents, namespace, (CLUSTER, ROLE), is_ready, LIFETIME_S + scale.settle_s)
            took = time.monotonic() - killed_at  # kill → everything Ready
    finally:
        client.CustomObjectsApi(k8s).delete_cluster_custom_object(PEERING_GROUP, PEERING_VERSION,
                                                                  PEERING_PLURAL, peering)

    assert active_writes > 0
    assert standby_writes_before == 0, "the standby wrote while the active replica was alive"
    produced = check_produced(k8s, intents, namespace)
    assert produced["roles"] == len(roles)
    assert not watch.recreated(), f"Secrets deleted and made again: {watch.recreated()}"
    assert not watch.changed(), f"passwords re-issued: {watch.changed()}"
    for name, role in roles.items():
        request = intents.get(ROLE, namespace, name)
        assert request is not None
        assert postgres.can_login(role, read_password(k8s, namespace, request["status"]["secretName"])), role

    report.append(Row(
        "two replicas, active SIGKILLed",
        f"{len(roles)} roles (half in flight at the kill), peering lifetime {LIFETIME_S}s",
        "SIGKILL of the active replica",
        "standby idle until then, takes over; no double writes",
        f"standby writes while active alive: {standby_writes_before} (active: {active_writes}); all Ready "
        f"{took:.1f}s after the kill (waited {taken_over:.1f}s); 1 Secret per role, 0 re-issued, logins OK",
    ))
