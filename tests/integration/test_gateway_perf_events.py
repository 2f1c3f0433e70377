"""--watch-cache mirrors core/v1 Events (issue #14): get_cluster_status answers as without the cache, follows
new Events, and lists no Events from the API once the namespace's mirror is filled."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from kubernetes import client
from mcp import Client

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from mcp_gateway.config import GatewayConfig
from mcp_gateway.k8s import Kube
from mcp_gateway.server import build_server
from tests.integration.gateway_helpers import ok, text
from tests.integration.test_deploy_rbac import NAMESPACE, deployed, token_kubeconfig  # noqa: F401 (a fixture)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def post_event(k8s: Any, namespace: str, name: str, about: str, at: str, kind: str = "Cluster") -> None:
    client.CoreV1Api(k8s).create_namespaced_event(namespace, {
        "metadata": {"name": name},
        "involvedObject": {"kind": kind, "name": about, "namespace": namespace},
        "reason": "Tested", "message": f"{name} about {about}", "type": "Normal",
        "firstTimestamp": at, "lastTimestamp": at, "count": 1, "source": {"component": "test"}})


async def statuses(server: Any, namespace: str, name: str) -> list[tuple[Any, str]]:
    """The events of both detail levels, structured and as text (the rest of the answer follows the Cluster,
    which the CNPG simulator may be changing meanwhile)."""
    async with Client(server) as mcp:
        answers = [await mcp.call_tool("get_cluster_status", {"name": name, "namespace": namespace,
                                                              "detail_level": level})
                   for level in ("concise", "detailed")]
    return [(ok(answer)["events"], text(answer).partition("**Recent events:**")[2]) for answer in answers]


async def test_cached_status_events_match_the_api_and_follow_new_ones(
    control_plane: ControlPlane, k8s: Any, namespace: str
) -> None:
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS,
        {"apiVersion": constants.CNPG_API_VERSION, "kind": "Cluster", "metadata": {"name": "evented"},
         "spec": {"instances": 1, "storage": {"size": "1Gi"}}})
    # More than the detailed answer shows (10), two with the same time (the order then is the API's), and
    # Events about other objects that must not appear.
    for index in range(12):
        post_event(k8s, namespace, f"evented.{index:02d}", "evented", f"2026-01-01T00:00:{min(index, 10):02d}Z")
    post_event(k8s, namespace, "evented-request.00", "evented", "2026-01-01T00:00:05Z", kind="PgClusterRequest")
    post_event(k8s, namespace, "other.00", "other", "2026-01-01T00:00:59Z")

    kubeconfig = str(control_plane.kubeconfig)
    uncached = await statuses(build_server(GatewayConfig(kubeconfig=kubeconfig), Kube.connect(kubeconfig)),
                              namespace, "evented")
    assert len(uncached[1][0]) == 10 and len(uncached[0][0]) == 3
    assert "evented.10 about evented" in uncached[1][1] and "other.00" not in uncached[1][1]

    kube = Kube.connect(kubeconfig, watch_cache=True)
    listed: list[dict[str, Any]] = []
    original = kube.core.list_namespaced_event

    def counted(*args: Any, **kwargs: Any) -> Any:
        listed.append(kwargs)
        return original(*args, **kwargs)

    kube.core.list_namespaced_event = counted
    server = build_server(GatewayConfig(kubeconfig=kubeconfig, watch_cache=True), kube)
    try:
        assert await statuses(server, namespace, "evented") == uncached
        assert await statuses(server, namespace, "evented") == uncached
        # The mirror's one LIST and its WATCH; no per-call LIST with the field selector.
        assert not [call for call in listed if "field_selector" in call], listed
        assert len([call for call in listed if not call.get("watch")]) == 1

        post_event(k8s, namespace, "evented.99", "evented", "2026-01-01T00:01:00Z")
        deadline = time.monotonic() + 20
        while True:
            concise = (await statuses(server, namespace, "evented"))[0][0]
            if concise[0]["message"] == "evented.99 about evented":
                break
            assert time.monotonic() < deadline, "the new Event did not reach the mirror"
            await anyio.sleep(0.2)
        assert not [call for call in listed if "field_selector" in call]
    finally:
        kube.close()


@pytest.mark.usefixtures("deployed")
async def test_the_deployed_gateway_role_may_watch_events(
    control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path
) -> None:
    """deploy/'s gateway role lets the Events mirror watch: it keeps running, nothing is refused."""
    as_gateway = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-gateway", tmp_path / "gw")
    client.CustomObjectsApi(k8s).create_namespaced_custom_object(
        constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS,
        {"apiVersion": constants.CNPG_API_VERSION, "kind": "Cluster", "metadata": {"name": "watched"},
         "spec": {"instances": 1, "storage": {"size": "1Gi"}}})
    post_event(k8s, namespace, "watched.00", "watched", "2026-01-01T00:00:01Z")
    kube = Kube.connect(str(as_gateway), watch_cache=True)
    assert kube.cache is not None
    try:
        answer = (await statuses(build_server(GatewayConfig(kubeconfig=str(as_gateway), watch_cache=True), kube),
                                 namespace, "watched"))[0][0]
        assert [event["message"] for event in answer] == ["watched.00 about watched"]
        mirror = kube.cache.known(("", "v1", "events", namespace))
        assert mirror is not None
        await anyio.sleep(1.0)  # long enough for a refused watch to have stopped the mirror
        assert mirror.running and not mirror.refused and not mirror.stopped
    finally:
        kube.close()
