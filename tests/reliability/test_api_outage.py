"""kube-apiserver (or etcd) stopped and started again in the middle of a batch: the operator and the gateway
reconnect by themselves, the gateway answers meanwhile with a coded retryable error, and everything
converges within 30 s of the API returning, nothing lost or duplicated."""

from __future__ import annotations

import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from devcluster.controlplane import ControlPlane
from devcluster.postgres import PostgresServer
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_operator_roles import read_password
from tests.reliability.conftest import McpClients, Row, Scale
from tests.reliability.helpers import (
    CLUSTER,
    ROLE,
    SDK_PREFIX,
    PasswordWatch,
    check_produced,
    is_ready,
    ready_cluster_and_client,
    retrying,
    tool_error_code,
    wait_all,
)

CONVERGE_S = 30.0  # the goal: everything Ready within this long after the API answers again
OUTAGE_S = 6.0  # how long the process stays down
CREATE_PAUSE_S = 0.25


def _text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def test_api_outage_mid_batch(
    outage: str, control_plane: ControlPlane, operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
    postgres: PostgresServer, namespace: str, intents: Intents, scale: Scale, report: list[Row],
    mcp_clients: McpClients,
) -> None:
    token = secrets.token_hex(2)
    cluster = f"outage-{token}"
    mcp = ready_cluster_and_client(intents, mcp_clients, namespace, cluster)

    roles = {f"{cluster}-r{i:02d}": f"out{i:02d}_{token}" for i in range(scale.restart_roles)}
    half_in = threading.Event()
    failures: list[BaseException] = []

    def apply_batch() -> None:
        try:
            for i, (name, role) in enumerate(roles.items()):
                retrying(partial(intents.create, ROLE, namespace, name, {"cluster": cluster, "roleName": role}))
                if i == len(roles) // 2:
                    half_in.set()
                time.sleep(CREATE_PAUSE_S)
        except BaseException as exc:
            failures.append(exc)
            half_in.set()

    answers: list[tuple[str, float, str]] = []  # (tool, seconds, first line) during the outage
    with PasswordWatch(k8s, namespace) as watch:
        batch = threading.Thread(target=apply_batch, daemon=True)
        batch.start()
        assert half_in.wait(60)
        down_at = time.monotonic()
        def ask(tool: str, arguments: dict[str, Any]) -> tuple[str, float, str]:
            asked = time.monotonic()
            result = mcp_clients.call(mcp, tool, arguments)
            return tool, time.monotonic() - asked, _text(result).splitlines()[0][:120]

        with control_plane.outage(outage), ThreadPoolExecutor(3) as pool:
            # side by side, so that the outage lasts OUTAGE_S, not the sum of the answers' times
            asking = [pool.submit(ask, tool, arguments) for tool, arguments in (
                ("create_postgres_role", {"cluster_name": cluster, "role_name": f"during_{token}",
                                          "namespace": namespace, "dry_run": True}),
                ("list_postgres_roles", {"cluster_name": cluster, "namespace": namespace}),
                ("get_cluster_status", {"name": cluster, "namespace": namespace}),
            )]
            answers.extend(future.result() for future in asking)
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        back_at = time.monotonic()
        batch.join(timeout=120)
        assert not failures, f"the batch writer failed: {failures}"
        batch_done = time.monotonic() - back_at
        wait_all(intents, namespace, (CLUSTER, ROLE), is_ready, max(0.0, CONVERGE_S - batch_done))
        converged = time.monotonic() - back_at

        # the gateway is back by itself: a real write through it, then a read that sees it
        after_role = f"after_{token}"
        asked = time.monotonic()
        created = mcp_clients.call(mcp, "create_postgres_role", {
            "cluster_name": cluster, "role_name": after_role, "namespace": namespace})
        assert not created.is_error, _text(created)
        gateway_write = time.monotonic() - asked
        wait_all(intents, namespace, (ROLE,), is_ready, CONVERGE_S)
    down_s = back_at - down_at

    write = answers[0]
    assert tool_error_code(write[2]) == "UNAVAILABLE", f"a write during the outage answered: {write}"
    for tool, _, first_line in answers[1:]:  # reads: an answer, or the same coded retryable error
        assert not first_line.startswith("Error") or tool_error_code(first_line) == "UNAVAILABLE", (tool, first_line)
    produced = check_produced(k8s, intents, namespace)
    assert produced["roles"] == len(roles) + 1
    assert not watch.changed(), f"passwords changed: {watch.changed()}"
    for name, role in roles.items():
        request = intents.get(ROLE, namespace, name)
        assert request is not None
        assert postgres.can_login(role, read_password(k8s, namespace, request["status"]["secretName"])), role
    listed = mcp_clients.call(mcp, "list_postgres_roles", {"cluster_name": cluster, "namespace": namespace})
    assert after_role in _text(listed)
    controller_manager_alive = os.path.exists(f"/proc/{control_plane.pids['kube-controller-manager']}")

    report.append(Row(
        f"{outage} restart mid-batch",
        f"{len(roles)} roles applied by a retrying writer + MCP calls during the outage",
        f"{outage} down {down_s:.1f}s (SIGTERM, SIGKILL after 5 s; restart until /readyz)",
        "gateway answers [UNAVAILABLE]; all Ready ≤ 30 s after the API returns; nothing lost/duplicated",
        "gateway during outage: "
        + "; ".join(f"{t} {s:.1f}s '{SDK_PREFIX.sub('', line)[:14]}…'" for t, s, line in answers)
        + f"; batch written {batch_done:.1f}s and all Ready {converged:.1f}s after the API returned; "
        f"then a gateway write took {gateway_write:.1f}s; "
        f"{produced['secrets']} Secrets for {produced['roles']} roles, 0 password changes, logins OK; "
        f"controller-manager {'alive' if controller_manager_alive else 'DIED'}",
    ))
