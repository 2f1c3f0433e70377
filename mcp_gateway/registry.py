"""The tool registry: a tool is a value (a ToolSpec); one filter decides what a configuration offers.

Every call goes through `dispatch` (one small wrapper around each handler), which counts it (metrics.py)
and writes its audit line (audit.py); calls the SDK refuses before dispatch are reported by the server.
"""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from mcp_gateway import audit, identity, metrics, render

if TYPE_CHECKING:
    from mcp_gateway.gateway import Gateway

# Toolsets in the order they are documented; later issues add backups, operations, poolers.
TOOLSETS = ("clusters", "roles", "databases", "diagnostics", "backups", "operations", "poolers", "sql")
# Offered only when --toolsets names them (arbitrary read-only SQL is opt-in).
OPT_IN_TOOLSETS = ("sql",)
Handler = Callable[..., Awaitable[CallToolResult]]
UNKNOWN_TOOL = "unknown"  # the label and audit name of a call to a tool not offered (names are caller-chosen)


def hints(*, read_only: bool, destructive: bool, idempotent: bool) -> ToolAnnotations:
    """Explicit annotations; every tool acts only on this Kubernetes cluster (closed world)."""
    return ToolAnnotations(read_only_hint=read_only, destructive_hint=destructive, idempotent_hint=idempotent,
                           open_world_hint=False)


READ = hints(read_only=True, destructive=False, idempotent=True)
CREATE = hints(read_only=False, destructive=False, idempotent=False)
DELETE = hints(read_only=False, destructive=True, idempotent=False)


@dataclass(frozen=True)
class ToolSpec:
    """One tool: what tools/list publishes, which toolset offers it, the codes it fails with, its handler.

    The handler is a module-level `async def handler(gw: Gateway, <tool parameters>) -> CallToolResult`;
    its docstring is the description (its first sentence says when to use the tool).
    """

    name: str
    title: str
    toolset: str
    annotations: ToolAnnotations
    output: type[BaseModel]
    handler: Handler
    errors: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        """The handler's docstring as one paragraph: no source indentation reaches the agent."""
        return re.sub(r"\s*\n\s*", " ", inspect.cleandoc(self.handler.__doc__ or "")).strip()

    @property
    def read_only(self) -> bool:
        return bool(self.annotations.read_only_hint)

    @property
    def destructive(self) -> bool:
        # MCP's default for a non-read-only tool without the hint is "destructive".
        return not self.read_only and self.annotations.destructive_hint is not False


def offered(specs: Iterable[ToolSpec], *, toolsets: Sequence[str] = (), read_only: bool = False,
            disable_destructive: bool = False) -> list[ToolSpec]:
    """The one filter: the tools a configuration offers (toolsets empty: all but the opt-in ones), decided by
    annotations only."""
    return [spec for spec in specs
            if (spec.toolset in toolsets if toolsets else spec.toolset not in OPT_IN_TOOLSETS)
            and (spec.read_only or not read_only)
            and not (disable_destructive and spec.destructive)]


def dispatch(spec: ToolSpec, gw: Gateway) -> Handler:
    """The function the SDK calls for `spec`: the handler's parameters without `gw`, the output model as schema."""
    signature = inspect.signature(spec.handler, eval_str=True)
    parameters = list(signature.parameters.values())[1:]  # the first one is the Gateway
    # The SDK hands arguments over by their wire name: a parameter named after a Python keyword
    # (`continue_`, published as `continue` through its Field alias) gets its value back here.
    python_names = {alias: p.name for p in parameters if (alias := _alias(p.annotation))}

    async def call(**arguments: Any) -> CallToolResult:
        # Single dispatch point: every call that reaches a handler is measured and audited here.
        started = time.perf_counter()
        failure: BaseException | None = None
        details = audit.begin()
        try:
            result = await spec.handler(gw, **{python_names.get(k, k): v for k, v in arguments.items()})
        except BaseException as exc:
            failure = exc
            raise
        finally:
            observe(spec, gw, arguments, failure, time.perf_counter() - started,
                    details=audit.finish(details))
        if any(isinstance(c, TextContent) and c.text.endswith(render.TRUNCATION_NOTE) for c in result.content):
            metrics.truncated(spec.name)
        return result

    returns = Annotated[CallToolResult, spec.output]
    call.__name__ = call.__qualname__ = spec.name
    call.__doc__ = spec.description
    call.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=parameters, return_annotation=returns)
    call.__annotations__ = {p.name: p.annotation for p in parameters} | {"return": returns}
    return call


def _alias(annotation: Any) -> str | None:
    """The Field alias in an `Annotated[..., Field(alias=...)]` parameter annotation, if any."""
    return next((m.alias for m in getattr(annotation, "__metadata__", ()) if isinstance(m, FieldInfo) and m.alias),
                None)


def observe(spec: ToolSpec, gw: Gateway, arguments: dict[str, Any], failure: BaseException | None,
            seconds: float, *, details: dict[str, Any] | None = None) -> None:
    """One tool call's metrics and audit line (never its arguments beyond the target fields)."""
    _observe(spec.name, gw, arguments, audit.verdict(failure), seconds, details=details)


def observe_refused(tool: str | None, gw: Gateway | None, arguments: dict[str, Any], code: str) -> None:
    """A call refused with `code` before dispatch: arguments against the inputSchema, or a tool not offered (None)."""
    if gw is not None:
        _observe(tool or UNKNOWN_TOOL, gw, arguments, code, 0.0)


def _observe(tool: str, gw: Gateway, arguments: dict[str, Any], verdict: str, seconds: float,
             *, details: dict[str, Any] | None = None) -> None:
    metrics.tool_call(tool, verdict, seconds)
    try:
        who = identity.caller()
        caller: str | None = gw.requested_by()
    except ToolError:  # a refused identity acts as nobody; the verdict says why
        who, caller = None, None
    audit.record(tool=tool, caller=caller, impersonated=who.user if who and gw.config.impersonate else None,
                 target=audit.target(arguments, gw.default_namespace), verdict=verdict, seconds=seconds,
                 details=details)


def register(mcp: MCPServer, gw: Gateway, specs: Iterable[ToolSpec]) -> None:
    for spec in specs:
        mcp.add_tool(dispatch(spec, gw), name=spec.name, title=spec.title, description=spec.description,
                     annotations=spec.annotations)
