"""`resources/updated` for clients that subscribe to a cluster's digest, driven by Kubernetes watches.

A subscription names `cnpg://{namespace}/{cluster}/status`. While at least one client subscribes to a
cluster of a namespace, the gateway watches that namespace's Clusters (one watch per namespace, as the
gateway's own identity, stopped with the last subscription there); every change or deletion of a Cluster
publishes `resources/updated` for its URI, and only subscribers of that exact URI receive it.

Both protocol eras: 2026-07-28 clients subscribe with `subscriptions/listen` (the SDK's listen handler
delivers from our bus; a middleware checks and counts the URIs for the stream's lifetime); 2025-era
clients use `resources/subscribe` / `resources/unsubscribe` (handlers registered here; a session is
forgotten when a notification to it fails). Subscribing is a read: the caller must be allowed to read the
Cluster (impersonated with --impersonate) in a namespace the gateway serves, else the request is refused.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from typing import Any

import mcp_types as types
from mcp.server import MCPServer
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError

from cnpg_mcp_api import constants
from mcp_gateway import metrics
from mcp_gateway.gateway import Gateway
from mcp_gateway.watch_cache import Mirror

log = logging.getLogger(__name__)
_STATUS_URI = re.compile(r"^cnpg://(?P<namespace>[a-z0-9]([-a-z0-9]*[a-z0-9])?)/"
                         r"(?P<cluster>[a-z0-9]([-a-z0-9]*[a-z0-9])?)/status$")
# Legacy subscriptions are per session and a session that vanished is only noticed at the next send:
# bound them, so no client can make the gateway hold an unbounded number.
MAX_LEGACY_SUBSCRIPTIONS = 1024
# Each URI is checked with one API read, and each namespace costs a watch (a thread): bound both.
MAX_URIS_PER_LISTEN = 100
MAX_WATCHED_NAMESPACES = 64


def status_uri(namespace: str, cluster: str) -> str:
    return f"cnpg://{namespace}/{cluster}/status"


def parse_status_uri(uri: str) -> tuple[str, str] | None:
    """(namespace, cluster) of a digest URI; None for any other URI."""
    found = _STATUS_URI.match(uri)
    return (found["namespace"], found["cluster"]) if found else None


class ClusterWatches:
    """One Cluster watch per namespace with subscribers (reference counted); `on_change(namespace, name)`."""

    def __init__(self, gw: Gateway, on_change: Callable[[str, str], None]) -> None:
        self._gw, self._on_change = gw, on_change
        self._watches: dict[str, tuple[Mirror, int]] = {}

    def acquire(self, namespace: str) -> None:
        mirror, count = self._watches.get(namespace, (None, 0))
        if mirror is None:
            if len(self._watches) >= MAX_WATCHED_NAMESPACES:
                raise MCPError(types.INTERNAL_ERROR, f"subscriptions already watch {MAX_WATCHED_NAMESPACES} "
                                                     "namespaces, the most this gateway holds; try again later")
            key = (constants.CNPG_GROUP, constants.CNPG_VERSION, constants.CNPG_CLUSTERS, namespace)
            mirror = Mirror(self._gw.kube.custom.list_namespaced_custom_object, key,
                            on_change=lambda name: self._on_change(namespace, name))
            metrics.SUBSCRIPTION_WATCHES.inc()
        self._watches[namespace] = (mirror, count + 1)

    def release(self, namespace: str) -> None:
        mirror, count = self._watches.get(namespace, (None, 0))
        if mirror is None:
            return
        if count <= 1:
            del self._watches[namespace]
            mirror.stop()
            metrics.SUBSCRIPTION_WATCHES.dec()
        else:
            self._watches[namespace] = (mirror, count - 1)

    def stop(self) -> None:
        for mirror, _ in self._watches.values():
            mirror.stop()
            metrics.SUBSCRIPTION_WATCHES.dec()
        self._watches.clear()


class Subscriptions:
    """Checks subscriptions, keeps the watches they need, and publishes `resources/updated`."""

    def __init__(self, gw: Gateway, bus: SubscriptionBus) -> None:
        self._gw, self._bus = gw, bus
        self.watches = ClusterWatches(gw, self._changed)
        self._legacy: dict[str, list[Any]] = {}  # URI → connections subscribed with resources/subscribe
        self._loop: asyncio.AbstractEventLoop | None = None

    def _changed(self, namespace: str, name: str) -> None:
        """Called in a watch thread: hand the publication to the event loop."""
        if self._loop is not None and not self._loop.is_closed():
            asyncio.run_coroutine_threadsafe(self.publish(status_uri(namespace, name)), self._loop)

    async def publish(self, uri: str) -> None:
        await self._bus.publish(ResourceUpdated(uri=uri))
        for connection in list(self._legacy.get(uri, [])):
            try:
                await connection.send_resource_updated(uri)
            except Exception as exc:  # the client is gone: forget its subscription
                log.info("dropping the subscription of a closed connection to %s (%s)", uri, type(exc).__name__)
                self._forget(uri, connection)

    async def authorize(self, uri: str) -> str:
        """The namespace of a digest URI the caller may read; MCPError (INVALID_PARAMS, coded message) if not."""
        parsed = parse_status_uri(uri)
        if parsed is None:
            raise MCPError(types.INVALID_PARAMS, f"cannot subscribe to {uri!r}: only cluster digests "
                                                 "(cnpg://{namespace}/{cluster}/status) send resources/updated")
        namespace, cluster = parsed
        try:
            namespace = self._gw.namespace(namespace)
            async with self._gw.acting(f"subscribing to cluster {namespace}/{cluster}"):
                # A cluster not created yet may be subscribed to (its creation is an update); a refusal may not.
                await self._gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, namespace, cluster)
        except ToolError as exc:
            raise MCPError(types.INVALID_PARAMS, str(exc)) from exc
        self._loop = asyncio.get_running_loop()
        return namespace

    # ---------------------------------------------------------------- 2026-07-28: subscriptions/listen
    async def listen_middleware(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        """Checks a listen stream's resource URIs and keeps their namespaces watched while it is open."""
        if ctx.method != "subscriptions/listen" or ctx.request_id is None:
            return await call_next(ctx)
        wanted = ((ctx.params or {}).get("notifications") or {}).get("resourceSubscriptions") or []
        if len(wanted) > MAX_URIS_PER_LISTEN:
            raise MCPError(types.INVALID_PARAMS, f"{len(wanted)} resource URIs in one listen request; at most "
                                                 f"{MAX_URIS_PER_LISTEN}")
        namespaces = sorted({await self.authorize(str(uri)) for uri in wanted})
        acquired: list[str] = []
        try:
            for namespace in namespaces:
                self.watches.acquire(namespace)
                acquired.append(namespace)
        except MCPError:
            for namespace in acquired:
                self.watches.release(namespace)
            raise
        counted = bool(wanted)
        if counted:
            metrics.SUBSCRIPTIONS.inc()
        try:
            return await call_next(ctx)
        finally:
            for namespace in acquired:
                self.watches.release(namespace)
            if counted:
                metrics.SUBSCRIPTIONS.dec()

    # ---------------------------------------------------------------- 2025-era: resources/(un)subscribe
    async def subscribe(self, ctx: ServerRequestContext[Any, Any],
                        params: types.SubscribeRequestParams) -> types.EmptyResult:
        uri = str(params.uri)
        namespace = await self.authorize(uri)
        connection = _connection(ctx)
        if connection not in self._legacy.get(uri, []):
            if sum(map(len, self._legacy.values())) >= MAX_LEGACY_SUBSCRIPTIONS:
                raise MCPError(types.INTERNAL_ERROR, "subscription limit reached; unsubscribe from something first")
            self.watches.acquire(namespace)
            self._legacy.setdefault(uri, []).append(connection)
            metrics.SUBSCRIPTIONS.inc()
        return types.EmptyResult()

    async def unsubscribe(self, ctx: ServerRequestContext[Any, Any],
                          params: types.UnsubscribeRequestParams) -> types.EmptyResult:
        self._forget(str(params.uri), _connection(ctx))
        return types.EmptyResult()

    def _forget(self, uri: str, connection: Any) -> None:
        connections = self._legacy.get(uri, [])
        if connection in connections:
            connections.remove(connection)
            if not connections:
                del self._legacy[uri]
            metrics.SUBSCRIPTIONS.dec()
            parsed = parse_status_uri(uri)
            if parsed is not None:
                self.watches.release(parsed[0])


def _connection(ctx: ServerRequestContext[Any, Any]) -> Any:
    """The client's connection: the SDK hands each request its own ServerSession around it, and only the
    connection outlives the request (its standalone channel carries notifications sent later)."""
    return getattr(ctx.session, "_connection", ctx.session)


def register(mcp: MCPServer, gw: Gateway, bus: SubscriptionBus) -> Subscriptions:
    """Serve subscriptions on `mcp`, whose listen handler delivers from `bus` (MCPServer(subscriptions=bus))."""
    subscriptions = Subscriptions(gw, bus)
    mcp.middleware.append(subscriptions.listen_middleware)
    # MCPServer registers no resources/(un)subscribe handlers; the low-level server takes them (and then
    # advertises resources.subscribe to 2025-era clients).
    lowlevel = mcp._lowlevel_server
    lowlevel.add_request_handler("resources/subscribe", types.SubscribeRequestParams, subscriptions.subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", types.UnsubscribeRequestParams, subscriptions.unsubscribe)
    return subscriptions
