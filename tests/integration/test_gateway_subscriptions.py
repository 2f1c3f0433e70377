"""`resources/updated` through real MCP clients (in-process, 2026-07-28 and 2025-era, and over streamable
HTTP), driven by the gateway's watch of real Cluster objects on the control plane: a subscriber of a
cluster's digest hears about its changes, a client subscribed to something else does not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.subscriptions import ResourceUpdated, Subscription
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp.types import ResourceUpdatedNotification
from prometheus_client import REGISTRY

from devcluster.controlplane import ControlPlane, free_port
from mcp_gateway.config import GatewayConfig
from tests.integration.gateway_helpers import bind_intent_editor, gateway_server
from tests.integration.test_cnpg_simulator import create_cluster, patch_cnpg
from tests.integration.test_gateway_http import serve, session

pytestmark = pytest.mark.anyio
HEARD_WITHIN = 15.0  # a watch event reaches a subscriber in well under a second; generous for a busy machine
QUIET_FOR = 3.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def gauge(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def change(k8s: Any, namespace: str, name: str, value: str) -> None:
    """A change a user would make (an annotation): the Cluster's resourceVersion moves on."""
    patch_cnpg(k8s, namespace, "clusters", name, {"metadata": {"annotations": {"cnpg-mcp.test/touch": value}}})


async def next_update(subscription: Subscription, seconds: float) -> str | None:
    """The URI of the next resources/updated on this stream, or None if none came in `seconds`."""
    with anyio.move_on_after(seconds):
        async for event in subscription:
            if isinstance(event, ResourceUpdated):
                return event.uri
    return None


async def test_listen_subscriber_hears_its_cluster_change_other_does_not(
        control_plane: ControlPlane, k8s: Any, namespace: str) -> None:
    create_cluster(k8s, namespace, "watched", instances=1)
    watched = f"cnpg://{namespace}/watched/status"
    server = gateway_server(control_plane)
    async with Client(server) as subscriber, Client(server) as bystander:
        assert subscriber.server_capabilities.resources is not None
        assert subscriber.server_capabilities.resources.subscribe is True
        open_before = gauge("cnpg_mcp_subscriptions_active")
        async with subscriber.listen(resource_subscriptions=[watched]) as mine, \
                bystander.listen(resource_subscriptions=[f"cnpg://{namespace}/absent/status"]) as theirs:
            assert gauge("cnpg_mcp_subscriptions_active") == open_before + 2
            await anyio.sleep(1.0)  # the namespace's watch starts with the first subscription
            change(k8s, namespace, "watched", "1")
            assert await next_update(mine, HEARD_WITHIN) == watched
            # Subscribed to another cluster of the same namespace (same watch; one nothing changes): nothing.
            assert await next_update(theirs, QUIET_FOR) is None
            # The digest it rereads shows the change's effect (here: the same cluster, still readable).
            assert '"name": "watched"' in getattr((await subscriber.read_resource(watched)).contents[0], "text", "")
        with anyio.fail_after(5):  # the server ends a stream's handler when the client lets it go
            while gauge("cnpg_mcp_subscriptions_active") != open_before:  # noqa: ASYNC110
                await anyio.sleep(0.1)


async def test_subscribing_to_anything_but_a_digest_or_a_refused_namespace_fails(
        control_plane: ControlPlane, namespace: str) -> None:
    async with Client(gateway_server(control_plane, namespace_allow=(namespace,))) as mcp:
        with pytest.raises(MCPError, match="only cluster digests"):
            async with mcp.listen(resource_subscriptions=[f"cnpg://{namespace}/pg/logs"]):
                pass
        with pytest.raises(MCPError, match="NAMESPACE_NOT_ALLOWED"):
            async with mcp.listen(resource_subscriptions=["cnpg://elsewhere/pg/status"]):
                pass
        with pytest.raises(MCPError, match="101 resource URIs in one listen request; at most 100"):
            async with mcp.listen(resource_subscriptions=[f"cnpg://{namespace}/pg-{i}/status" for i in range(101)]):
                pass


async def test_legacy_subscribe_and_unsubscribe(control_plane: ControlPlane, k8s: Any, namespace: str) -> None:
    create_cluster(k8s, namespace, "legacy", instances=1)
    uri = f"cnpg://{namespace}/legacy/status"
    heard: list[str] = []

    async def on_message(message: Any) -> None:
        notification = getattr(message, "root", message)
        if isinstance(notification, ResourceUpdatedNotification):
            heard.append(str(notification.params.uri))

    async def heard_within(seconds: float) -> bool:
        with anyio.move_on_after(seconds):
            while uri not in heard:  # noqa: ASYNC110  (the client delivers notifications to a callback)
                await anyio.sleep(0.1)
            return True
        return False

    async with Client(gateway_server(control_plane), mode="legacy", message_handler=on_message) as mcp:
        assert mcp.server_capabilities.resources is not None
        assert mcp.server_capabilities.resources.subscribe is True
        with pytest.warns(MCPDeprecationWarning):
            await mcp.subscribe_resource(uri)
        await anyio.sleep(1.0)
        change(k8s, namespace, "legacy", "1")
        assert await heard_within(HEARD_WITHIN), heard
        with pytest.warns(MCPDeprecationWarning):
            await mcp.unsubscribe_resource(uri)
        heard.clear()
        change(k8s, namespace, "legacy", "2")
        assert not await heard_within(QUIET_FOR), heard


async def test_listen_over_streamable_http(control_plane: ControlPlane, k8s: Any, namespace: str,
                                          tmp_path: Path) -> None:
    create_cluster(k8s, namespace, "remote", instances=1)
    uri = f"cnpg://{namespace}/remote/status"
    token_file = tmp_path / "tokens"
    token_file.write_text("s3cret-token,alice\n")
    config = GatewayConfig(transport="http", port=free_port(), token_file=token_file,
                           kubeconfig=str(control_plane.kubeconfig))
    async for url in serve(config, control_plane):
        async with (session(url, "s3cret-token") as subscriber, session(url, "s3cret-token") as bystander,
                    subscriber.listen(resource_subscriptions=[uri]) as mine,
                    bystander.listen(resource_subscriptions=[f"cnpg://{namespace}/absent/status"]) as theirs):
            await anyio.sleep(1.0)
            change(k8s, namespace, "remote", "1")
            assert await next_update(mine, HEARD_WITHIN) == uri
            assert await next_update(theirs, QUIET_FOR) is None


async def test_with_impersonation_only_a_caller_who_may_read_the_cluster_subscribes(
        control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path) -> None:
    create_cluster(k8s, namespace, "guarded", instances=1)
    bind_intent_editor(k8s, namespace, "token:dba")  # may read Clusters here; mallory may not
    uri = f"cnpg://{namespace}/guarded/status"
    token_file = tmp_path / "tokens"
    token_file.write_text("alice-token,alice,dba\nmallory-token,mallory,everyone\n")
    config = GatewayConfig(transport="http", port=free_port(), token_file=token_file, impersonate=True,
                           kubeconfig=str(control_plane.kubeconfig))
    async for url in serve(config, control_plane):
        async with session(url, "mallory-token") as mallory:
            with pytest.raises(MCPError, match=r"\[FORBIDDEN\].*mallory"):
                async with mallory.listen(resource_subscriptions=[uri]):
                    pass
        async with session(url, "alice-token") as alice, alice.listen(resource_subscriptions=[uri]) as hers:
            await anyio.sleep(1.0)
            change(k8s, namespace, "guarded", "1")
            assert await next_update(hers, HEARD_WITHIN) == uri
