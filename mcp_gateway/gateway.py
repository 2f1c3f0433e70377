"""What every tool shares: configuration, the Kubernetes door, namespaces, who is asking."""

from __future__ import annotations

import getpass
import logging
import re
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import urllib3
from kubernetes.client.exceptions import ApiException
from mcp.server.mcpserver.exceptions import ToolError

from mcp_gateway import errors, identity
from mcp_gateway.config import GatewayConfig
from mcp_gateway.k8s import Kube

log = logging.getLogger(__name__)
T1 = TypeVar("T1")
T2 = TypeVar("T2")
_NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass
class Gateway:
    config: GatewayConfig
    kube: Kube
    default_namespace: str

    def namespace(self, requested: str | None) -> str:
        namespace = requested or self.default_namespace
        if not _NAMESPACE.match(namespace) or len(namespace) > 63:
            raise errors.tool_error(errors.INVALID_ARGUMENT, f"{namespace!r} is not a valid namespace name")
        if self.config.namespace_allow and namespace not in self.config.namespace_allow:
            raise errors.tool_error(
                errors.NAMESPACE_NOT_ALLOWED,
                f"namespace {namespace!r} is not served by this gateway; allowed: "
                + ", ".join(self.config.namespace_allow),
            )
        return namespace

    def requested_by(self) -> str:
        who = identity.caller()
        if who is not None:
            return who.user
        return f"local:{getpass.getuser()}"

    @asynccontextmanager
    async def acting(self, doing: str) -> AsyncIterator[None]:
        """Runs a tool's API calls as the caller (with --impersonate); every failure leaves with a stable code."""
        who = identity.caller() if self.config.impersonate else None
        token = identity.impersonate(who)
        try:
            yield
        except ToolError:
            raise
        except ApiException as exc:
            raise errors.from_api_exception(exc, doing) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:  # refused, reset, DNS, TLS, timeouts
            raise errors.from_transport_exception(exc, doing) from exc
        except Exception as exc:  # a bug or an unexpected answer: still a coded error, details in the log
            log.exception("%s failed", doing)
            raise errors.tool_error(errors.INTERNAL, f"{doing}: unexpected {type(exc).__name__}; "
                                                     "the gateway log has the details.") from exc
        finally:
            identity.reset(token)


async def both(first: Awaitable[T1], second: Awaitable[T2]) -> tuple[T1, T2]:
    """Run two independent API reads concurrently (a tool then costs about one round trip)."""
    results: dict[int, Any] = {}

    async def run(index: int, call: Awaitable[Any]) -> None:
        results[index] = await call

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run, 0, first)
            tasks.start_soon(run, 1, second)
    except BaseExceptionGroup as group:  # callers handle one API error, not a group of them
        raise group.exceptions[0] from None
    return results[0], results[1]
