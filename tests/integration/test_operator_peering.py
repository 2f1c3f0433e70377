"""Two operator replicas with Kopf peering: one reconciles, the other stands by and takes over.

Both processes run `--all-namespaces --peering=<name>` as deploy/ does (ClusterKopfPeering). The first
one started is the active one (an older replica is never pre-empted by a newcomer); the standby
writes nothing while the active one lives, and resumes once the active one's keep-alive expires.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client

from tests.integration.conftest import Intents, OperatorProcess

CLUSTER = "PgClusterRequest"
LIFETIME_S = 10  # peering keep-alive lifetime for the test: how long a killed active replica blocks the standby
PEERING_GROUP, PEERING_VERSION, PEERING_PLURAL = "kopf.dev", "v1", "clusterkopfpeerings"


PROBE_CACHE_S = 10.5  # Kopf answers the liveness probe from a 10 s cache


def writes(process: OperatorProcess) -> int:
    return int(process.probe().get("writes", {}).get("total", 0))


def wait_for_writes(process: OperatorProcess, timeout: float = PROBE_CACHE_S + 5) -> int:
    deadline = time.monotonic() + timeout
    while (count := writes(process)) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    return count


def peers(k8s: Any, name: str) -> dict[str, Any]:
    found = client.CustomObjectsApi(k8s).get_cluster_custom_object(PEERING_GROUP, PEERING_VERSION,
                                                                   PEERING_PLURAL, name)
    return dict(found.get("status") or {})


def wait_for_peers(k8s: Any, name: str, count: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len(peers(k8s, name)) != count:
        assert time.monotonic() < deadline, f"peering {name}: {peers(k8s, name)}"
        time.sleep(0.2)


def test_standby_writes_nothing_then_takes_over_when_the_active_dies(
    operator_factory: Callable[..., OperatorProcess], cnpg_simulator: Any, k8s: Any, namespace: str,
    intents: Intents,
) -> None:
    peering = f"cnpg-mcp-test-{secrets.token_hex(3)}"
    flags = ("--all-namespaces", f"--peering={peering}", f"--peering-lifetime={LIFETIME_S}")
    active = operator_factory(*flags)
    standby = operator_factory(*flags)
    try:
        wait_for_peers(k8s, peering, 2)  # both announced themselves in the peering object

        intents.create(CLUSTER, namespace, "while-both-run", {"instances": 1})
        intents.wait_ready(CLUSTER, namespace, "while-both-run")
        assert wait_for_writes(active) > 0
        time.sleep(PROBE_CACHE_S)  # a fresh answer, and time for any late reaction of the standby
        assert writes(standby) == 0
        assert "while-both-run" not in standby.log_since_start()

        active.kill()  # SIGKILL: no goodbye in the peering object, the standby must wait for the lifetime
        killed_at = time.monotonic()
        intents.create(CLUSTER, namespace, "after-failover", {"instances": 1})
        intents.wait_ready(CLUSTER, namespace, "after-failover", timeout=LIFETIME_S + 45)
        took = time.monotonic() - killed_at
        print(f"standby took over and reconciled {took:.1f}s after the active replica was killed")
        assert wait_for_writes(standby) > 0
    finally:
        client.CustomObjectsApi(k8s).delete_cluster_custom_object(PEERING_GROUP, PEERING_VERSION,
                                                                  PEERING_PLURAL, peering)


def test_graceful_stop_hands_over_at_once(
    operator_factory: Callable[..., OperatorProcess], cnpg_simulator: Any, k8s: Any, namespace: str,
    intents: Intents,
) -> None:
    """SIGTERM (a rollout, a drain): the active replica leaves the peering, the standby resumes at once."""
    peering = f"cnpg-mcp-test-{secrets.token_hex(3)}"
    flags = ("--all-namespaces", f"--peering={peering}", "--peering-lifetime=60")
    active = operator_factory(*flags)
    standby = operator_factory(*flags)
    try:
        active.stop()
        stopped_at = time.monotonic()
        intents.create(CLUSTER, namespace, "after-handover", {"instances": 1})
        intents.wait_ready(CLUSTER, namespace, "after-handover", timeout=30)  # far below the 60 s lifetime
        print(f"standby reconciled {time.monotonic() - stopped_at:.1f}s after the active replica stopped")
        assert wait_for_writes(standby) > 0
    finally:
        client.CustomObjectsApi(k8s).delete_cluster_custom_object(PEERING_GROUP, PEERING_VERSION,
                                                                  PEERING_PLURAL, peering)
