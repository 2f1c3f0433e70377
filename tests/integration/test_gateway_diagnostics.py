"""get_cluster_logs and get_connection_info through a real MCP client, against the control plane, the
CNPG simulator (instance Pods, logs through the API server's `pods/log`) and the real PostgreSQL."""

from __future__ import annotations

import json
import secrets
import time
from typing import Any

import anyio
import pytest
from kubernetes import client
from mcp import Client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from devcluster.postgres import PostgresServer
from tests.integration.gateway_helpers import error, gateway_server, ok, secret_password, text
from tests.integration.test_cnpg_simulator import create_cluster, unique, wait_healthy
from tests.integration.test_simulator_pods_logs import wait_pods

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("cnpg_simulator")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def logs_until(mcp: Client, arguments: dict[str, Any], wanted: str) -> dict[str, Any]:
    """Call get_cluster_logs until a line containing `wanted` shows up (the kubelet serves what exists now)."""
    deadline = time.monotonic() + 15.0
    while True:
        data = ok(await mcp.call_tool("get_cluster_logs", arguments))
        if any(wanted in e["message"] for e in data["entries"]) or time.monotonic() > deadline:
            return data
        await anyio.sleep(0.5)


async def test_cluster_logs_merge_filter_and_bound(control_plane: ControlPlane, k8s: Any, namespace: str,
                                                   postgres: PostgresServer) -> None:
    create_cluster(k8s, namespace, "pg-diag", instances=2, database=unique("diag"))
    wait_healthy(k8s, namespace, "pg-diag")
    wait_pods(k8s, namespace, "pg-diag", {"pg-diag-1", "pg-diag-2"})
    intruder = f"intruder_{secrets.token_hex(3)}"
    for _ in range(8):  # the real server logs a FATAL line on the primary for each
        assert not postgres.can_login(intruder, "wrong")

    async with Client(gateway_server(control_plane)) as mcp:
        every = ok(await mcp.call_tool("get_cluster_logs", {"name": "pg-diag", "namespace": namespace}))
        assert [(i["pod"], i["role"], i["error"]) for i in every["instances"]] == [
            ("pg-diag-1", "primary", None), ("pg-diag-2", "replica", None)]
        assert {e["pod"] for e in every["entries"]} == {"pg-diag-1", "pg-diag-2"}
        times = [e["time"] for e in every["entries"]]
        assert times == sorted(times)  # both instances merged in time order
        assert any(e["logger"] == "postgres" and e["message"] == "LOG: database system is ready to accept "
                   "connections" for e in every["entries"])

        errors_only = await logs_until(mcp, {"name": "pg-diag", "namespace": namespace, "level": "error",
                                             "contains": intruder}, intruder)
        assert errors_only["entries"], "the failed login is in the primary's log"
        for entry in errors_only["entries"]:
            assert (entry["pod"], entry["level"], entry["logger"]) == ("pg-diag-1", "error", "postgres")
            assert entry["message"].startswith("FATAL: ") and intruder in entry["message"]

        replica = ok(await mcp.call_tool("get_cluster_logs", {"name": "pg-diag", "namespace": namespace,
                                                              "instance": "pg-diag-2"}))
        assert {e["pod"] for e in replica["entries"]} == {"pg-diag-2"} and replica["count"] > 0

        short = await mcp.call_tool("get_cluster_logs", {"name": "pg-diag", "namespace": namespace,
                                                         "tail_lines": 2})
        data = ok(short)
        assert data["count"] == 2 and data["truncated"] and data["omitted"] > 0
        assert data["entries"][0]["time"] >= every["entries"][-2]["time"]  # the newest two (more may have come)
        assert "truncated:" in text(short) and f"{data['omitted']} older line(s) left out" in text(short)

        await logs_until(mcp, {"name": "pg-diag", "namespace": namespace, "contains": intruder,
                               "tail_lines": 8}, intruder)
        small = await mcp.call_tool("get_cluster_logs", {"name": "pg-diag", "namespace": namespace,
                                                         "max_bytes": 1000, "format": "json"})
        bounded = json.loads(text(small))
        shown = sum(len(f"{e['time']} {e['pod']} {e['level'].upper()} [{e['logger']}] {e['message']}\n".encode())
                    for e in bounded["entries"])
        assert shown <= 1000 and bounded["truncated"]

        error(await mcp.call_tool("get_cluster_logs", {"name": "pg-diag", "namespace": namespace,
                                                       "instance": "pg-diag-9"}), "NOT_FOUND")
        message = error(await mcp.call_tool("get_cluster_logs", {"name": "pg-none", "namespace": namespace}),
                        "NOT_FOUND")
        assert "list_postgres_clusters" in message
        error(await mcp.call_tool("get_cluster_logs", {"name": "pg-diag", "namespace": namespace,
                                                       "tail_lines": 5000}), "INVALID_ARGUMENT")


async def test_connection_info_names_the_secret_and_never_the_password(
        control_plane: ControlPlane, k8s: Any, namespace: str, postgres: PostgresServer) -> None:
    database = unique("conn")
    create_cluster(k8s, namespace, "pg-conn", instances=1, database=database)
    wait_healthy(k8s, namespace, "pg-conn")
    async with Client(gateway_server(control_plane)) as mcp:
        answer = await mcp.call_tool("get_connection_info", {"name": "pg-conn", "namespace": namespace})
        info = ok(answer)
        assert (info["user"], info["database"], info["password_secret"]) == (database, database, "pg-conn-app")
        assert [s["host"] for s in info["services"]] == [f"pg-conn-{s}.{namespace}.svc" for s in ("rw", "ro", "r")]
        assert info["uri"] == (f"postgresql://{database}@pg-conn-rw.{namespace}.svc:5432/{database}"
                               "?sslmode=verify-full&sslrootcert=pg-conn-ca.crt")
        assert info["ca_secret"] == "pg-conn-ca" and info["ca_secret_key"] == "ca.crt"
        # What the answer names is what logs in: the user and database, with the password from that Secret.
        password = secret_password(k8s, namespace, info["password_secret"])
        assert postgres.can_login(info["user"], password, info["database"])
        assert password not in text(answer) and password not in json.dumps(info)
        assert f"kubectl get secret pg-conn-app -n {namespace}" in text(answer)

        message = error(await mcp.call_tool("get_connection_info", {"name": "pg-conn", "namespace": namespace,
                                                                    "role": "ghost"}), "NOT_FOUND")
        assert "list_postgres_roles" in message
        error(await mcp.call_tool("get_connection_info", {"name": "pg-none", "namespace": namespace}), "NOT_FOUND")


async def test_status_digest_names_the_problem_and_the_next_check(control_plane: ControlPlane, k8s: Any,
                                                                  namespace: str) -> None:
    create_cluster(k8s, namespace, "pg-digest", instances=2, database=unique("digest"))
    wait_healthy(k8s, namespace, "pg-digest")
    arguments = {"name": "pg-digest", "namespace": namespace}
    async with Client(gateway_server(control_plane)) as mcp:
        healthy = ok(await mcp.call_tool("get_cluster_status", arguments))
        assert healthy["verdict"] == "healthy: 2/2 instances ready, primary pg-digest-1"
        assert healthy["next_check"] is None
        assert [(i["name"], i["role"], i["status"]) for i in healthy["instances_status"]] == [
            ("pg-digest-1", "primary", "healthy"), ("pg-digest-2", "replica", "healthy")]
        assert healthy["key_conditions"]["Ready"].startswith("True")
        # What CNPG reports when WAL archiving fails and a certificate is about to expire.
        soon = time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(time.time() + 3 * 86400 + 3600))
        client.CustomObjectsApi(k8s).patch_namespaced_custom_object_status(
            constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS, "pg-digest",
            {"status": {"certificates": {"expirations": {"pg-digest-server": soon}},
                        "conditions": [*(healthy_conditions(k8s, namespace, "pg-digest")),
                                       {"type": "ContinuousArchiving", "status": "False", "reason": "Failing",
                                        "message": "archive failed", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}},
            _content_type="application/merge-patch+json")

        async def reported() -> dict[str, Any]:
            for _ in range(30):
                status = ok(await mcp.call_tool("get_cluster_status", arguments))
                if status["problems"]:
                    return status
                await anyio.sleep(0.5)
            return status

        status = await reported()
        assert status["verdict"] == ("attention: WAL archiving is failing (point-in-time recovery is at risk) "
                                     "(+1 more)")
        assert status["next_check"] == f'get_cluster_logs(name="pg-digest", namespace="{namespace}", ' \
                                       'contains="archive")'
        assert status["certificates"] == [{"secret": "pg-digest-server", "expires": soon, "days_left": 3}]
        assert status["problems"][1] == "certificate in Secret pg-digest-server expires in 3 day(s)"
        answer = text(await mcp.call_tool("get_cluster_status", arguments))
        assert answer.splitlines()[1].startswith("- Verdict: attention: WAL archiving is failing")


def healthy_conditions(k8s: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    cluster = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS, name)
    return list((cluster.get("status") or {}).get("conditions") or [])
