"""The caller's acknowledgement of privileged role attributes (issue #8 item 11).

The gateway never sets `privileged: true` on its own. The acknowledgement comes from the caller: the
user through MCP elicitation when the client declares it, otherwise an explicit `privileged=true`
argument (a first call without it fails with PRIVILEGE_ACK_REQUIRED saying so). Acknowledged is not
granted: the operator's admin policy still decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult
from pydantic import BaseModel, Field

from cnpg_mcp_api.policy import PRIVILEGED_ATTRIBUTES
from mcp_gateway import errors

# The codes a tool asking for privileged attributes can fail with (documented per tool).
ERRORS = (errors.PRIVILEGE_ACK_REQUIRED, errors.REFUSED)


class PrivilegeAck(BaseModel):
    acknowledged: bool = Field(description="Yes: request these privileged attributes (the cluster admin's "
                                           "policy still decides whether they are granted)")


def asked(flags: Mapping[str, bool | None]) -> list[str]:
    """The privileged attributes this call turns on."""
    return [flag for flag in PRIVILEGED_ATTRIBUTES if flags.get(flag)]


def client_can_elicit(ctx: Context[Any, Any]) -> bool:
    """Whether the client declared form elicitation (a bare `elicitation: {}` counts as form)."""
    elicitation = getattr(ctx.client_capabilities, "elicitation", None)
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def question(flags: Mapping[str, bool | None], privileged: bool, role: str, cluster: str,
             ctx: Context[Any, Any]) -> Elicit[PrivilegeAck] | PrivilegeAck:
    """For a Resolve(...) resolver: ask the user only when the call needs it and the client can answer."""
    attributes = asked(flags)
    if not attributes or privileged or not client_can_elicit(ctx):
        return PrivilegeAck(acknowledged=False)  # nothing asked; require() decides
    return Elicit(f"Request the privileged attribute(s) {', '.join(attributes)} for role {role!r} in cluster "
                  f"{cluster!r}? They give near-superuser power; the cluster admin's policy decides whether "
                  "they are granted.", PrivilegeAck)


def require(flags: Mapping[str, bool | None], privileged: bool, answer: ElicitationResult[PrivilegeAck],
            ctx: Context[Any, Any], retry_hint: str) -> bool:
    """The value for spec.privileged: True when acknowledged, raises when it is needed and missing."""
    attributes = asked(flags)
    if not attributes or privileged:
        return privileged
    if not client_can_elicit(ctx):
        raise errors.tool_error(errors.PRIVILEGE_ACK_REQUIRED, (
            f"{', '.join(attributes)} are privileged attributes and need the caller's explicit "
            f"acknowledgement. Confirm with the user, then call again with privileged=true ({retry_hint}). "
            "The cluster admin's policy still decides whether they are granted."))
    if isinstance(answer, AcceptedElicitation) and answer.data.acknowledged:
        return True
    raise errors.tool_error(errors.REFUSED, f"the user did not acknowledge {', '.join(attributes)}: nothing "
                                            "was changed")
