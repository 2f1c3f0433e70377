"""Many writers on one cluster at once: concurrent MCP clients and kubectl users create, update and delete
roles and scale the cluster, while "someone else" edits the CNPG Cluster spec and adds a managed role
entry of their own. The final state is exactly the union of the intents; foreign edits survive."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devcluster.controlplane import ControlPlane
from devcluster.postgres import PostgresServer
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.test_operator_roles import pg_role
from tests.reliability.conftest import McpClients, Row, Scale
from tests.reliability.helpers import (
    CLUSTER,
    ROLE,
    check_produced,
    cnpg_objects,
    is_ready,
    tool_error_code,
    wait_all,
    wait_gone_all,
)

RETRYABLE = {"UNAVAILABLE", "CONFLICT"}
FOREIGN_EDITS = 5


def _text(result: Any) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def test_concurrent_writers_and_foreign_edits(
    control_plane: ControlPlane, operator: OperatorProcess, cnpg_simulator: Any, k8s: Any,
    postgres: PostgresServer, namespace: str, intents: Intents, scale: Scale, report: list[Row],
    mcp_clients: McpClients,
) -> None:
    token = secrets.token_hex(2)
    cluster = f"shared-{token}"
    intents.create(CLUSTER, namespace, cluster, {"instances": 1})
    intents.wait_ready(CLUSTER, namespace, cluster)
    sessions = [mcp_clients.open() for _ in range(scale.mcp_writers)]
    codes: Counter[str] = Counter()
    scaled_to: list[int] = []
    lock = threading.Lock()

    def tool(session: Any, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """One MCP call, retried on a coded retryable error as an agent would."""
        for _ in range(20):
            result = mcp_clients.call(session, name, {"namespace": namespace, **arguments})
            if not result.is_error:
                return dict(result.structured_content or {})
            code = tool_error_code(_text(result))
            with lock:
                codes[code or "UNCODED"] += 1
            assert code in RETRYABLE, f"{name}{arguments}: {_text(result)}"
            time.sleep(0.2)
        raise AssertionError(f"{name}{arguments} kept failing")

    def mcp_writer(i: int) -> None:
        session = sessions[i]
        keep, drop = f"m{i:02d}k_{token}", f"m{i:02d}d_{token}"
        for role in (keep, drop):
            tool(session, "create_postgres_role", {"cluster_name": cluster, "role_name": role})
        tool(session, "update_postgres_role", {"cluster_name": cluster, "role_name": keep, "createdb": True})
        tool(session, "delete_postgres_role", {"cluster_name": cluster, "role_name": drop})
        if i % 5 == 0:
            instances = 1 + (i // 5) % 3
            tool(session, "scale_postgres_cluster", {"name": cluster, "instances": instances})
            with lock:
                scaled_to.append(instances)
        tool(session, "list_postgres_roles", {"cluster_name": cluster})

    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}

    def kubectl(*args: str, stdin: str | None = None) -> None:
        for _ in range(20):
            done = subprocess.run([control_plane.kubectl, "-n", namespace, *args], input=stdin, env=env,
                                  capture_output=True, text=True, check=False)
            if done.returncode == 0:
                return
            with lock:
                codes[f"kubectl: {done.stderr.strip()[:60]}"] += 1
            time.sleep(0.2)
        raise AssertionError(f"kubectl {args} failed: {done.stderr}")

    def kubectl_writer(j: int) -> None:
        if j == 0:  # someone else edits the Cluster spec directly, repeatedly
            for k in range(FOREIGN_EDITS):
                kubectl("patch", "clusters.postgresql.cnpg.io", cluster, "--type=merge", "-p", json.dumps(
                    {"spec": {"description": f"edited by someone else #{k}",
                              "postgresql": {"parameters": {"work_mem": f"{4 + k}MB"}}}}))
            return
        if j == 1:  # ... and declares a managed role of their own inline
            kubectl("patch", "clusters.postgresql.cnpg.io", cluster, "--type=merge", "-p", json.dumps(
                {"spec": {"managed": {"roles": [{"name": f"foreign_{token}", "ensure": "present", "login": True}]}}}))
            return
        keep, drop = f"{cluster}-k{j:02d}k", f"{cluster}-k{j:02d}d"
        for name, role in ((keep, f"k{j:02d}k_{token}"), (drop, f"k{j:02d}d_{token}")):
            kubectl("apply", "-f", "-", stdin=json.dumps({
                "apiVersion": "cnpg-mcp.io/v1alpha1", "kind": ROLE, "metadata": {"name": name},
                "spec": {"cluster": cluster, "roleName": role}}))
        kubectl("patch", "pgrolerequests.cnpg-mcp.io", keep, "--type=merge", "-p", '{"spec":{"createdb":true}}')
        kubectl("delete", "pgrolerequests.cnpg-mcp.io", drop, "--wait=false")

    started = time.monotonic()
    writers = scale.mcp_writers + scale.kubectl_writers
    with ThreadPoolExecutor(max_workers=writers) as pool:
        futures = [pool.submit(mcp_writer, i) for i in range(scale.mcp_writers)]
        futures += [pool.submit(kubectl_writer, j) for j in range(scale.kubectl_writers)]
        for future in futures:
            future.result()
    written_s = time.monotonic() - started

    kept = {f"m{i:02d}k_{token}" for i in range(scale.mcp_writers)}
    kept |= {f"k{j:02d}k_{token}" for j in range(2, scale.kubectl_writers)}
    dropped = {f"m{i:02d}d_{token}" for i in range(scale.mcp_writers)}
    dropped |= {f"k{j:02d}d_{token}" for j in range(2, scale.kubectl_writers)}
    doomed = {r["metadata"]["name"] for r in intents.list_all(ROLE, namespace) if r["spec"]["roleName"] in dropped}
    wait_gone_all(intents, namespace, ROLE, doomed, scale.settle_s)
    converged = wait_all(intents, namespace, (CLUSTER, ROLE), is_ready, scale.settle_s)

    requests = intents.list_all(ROLE, namespace)
    assert {r["spec"]["roleName"] for r in requests} == kept, "the final intents are not the union of the writers'"
    lost = [r["spec"]["roleName"] for r in requests if r["spec"].get("createdb") is not True]
    assert not lost, f"lost createdb updates in the intents: {lost}"
    not_applied = [role for role in kept if not (pg_role(postgres, role) or {}).get("createdb")]
    assert not not_applied, f"roles missing or without CREATEDB in PostgreSQL: {not_applied}"
    resurrected = [role for role in dropped if pg_role(postgres, role) is not None]
    assert not resurrected, f"deleted roles still in PostgreSQL: {resurrected}"
    produced = check_produced(k8s, intents, namespace)

    request = intents.get(CLUSTER, namespace, cluster)
    assert request is not None
    live = next(c for c in cnpg_objects(k8s, namespace, "clusters") if c["metadata"]["name"] == cluster)
    spec = live["spec"]
    assert spec.get("description") == f"edited by someone else #{FOREIGN_EDITS - 1}", "foreign edit lost"
    assert (spec.get("postgresql") or {}).get("parameters", {}).get("work_mem") == f"{4 + FOREIGN_EDITS - 1}MB"
    managed = [r["name"] for r in (spec.get("managed") or {}).get("roles") or []]
    assert f"foreign_{token}" in managed, f"the foreign managed role entry was removed: {managed}"
    expected_instances = request["spec"]["instances"]
    assert not scaled_to or expected_instances in scaled_to
    assert spec["instances"] == expected_instances, "the last scale request did not reach the Cluster"

    report.append(Row(
        "conflicting writers",
        f"{scale.mcp_writers} MCP clients + {scale.kubectl_writers} kubectl writers on 1 cluster "
        f"({2 * (scale.mcp_writers + scale.kubectl_writers - 2)} roles created, half deleted, {len(scaled_to)} scales, "
        f"{FOREIGN_EDITS} foreign spec edits, 1 foreign managed role)",
        "concurrency only",
        "final state = union of intents; 0 lost updates; foreign edits kept",
        f"writes done in {written_s:.1f}s, converged {converged:.1f}s later; {produced['roles']} roles exactly as "
        f"intended with createdb, {len(dropped)} dropped; foreign description/work_mem/managed role kept; instances "
        f"{spec['instances']} = last request; retried errors: {dict(codes) or 'none'}",
    ))
