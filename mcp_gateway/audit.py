"""The tool-call audit trail: one JSON line per tool call on the `cnpg_mcp.audit` logger.

A line names who called (caller), who the Kubernetes calls ran as (impersonated, with
--impersonate), the tool, its target (namespace and the object names among the arguments),
the verdict (`ok` or the error code) and the duration. Arguments are never logged wholesale:
only the target fields below, so a password an agent passes by mistake never reaches the trail.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
from collections.abc import Mapping
from contextvars import ContextVar, Token
from pathlib import Path
from typing import Any

from mcp_gateway import errors

LOGGER_NAME = "cnpg_mcp.audit"
log = logging.getLogger(LOGGER_NAME)

OK = "ok"
# Arguments that name what a tool acts on (every tool's object names use one of these).
TARGET_FIELDS = ("name", "cluster_name", "role_name", "database_name")
MAX_NAME = 253  # the longest Kubernetes name; an invalid argument may be longer
_CODE = re.compile(r"\[([A-Z][A-Z_]+)\]")
# Facts a handler adds to its call's one audit line (e.g. the SQL's hash and row count), never arguments.
_details: ContextVar[dict[str, Any] | None] = ContextVar("cnpg_mcp_audit_details", default=None)


def configure(path: Path | None = None) -> None:
    """Audit lines go to `path` (appended), else to stderr; only the message, one JSON object a line."""
    handler: logging.Handler = logging.FileHandler(path, encoding="utf-8") if path else logging.StreamHandler(
        sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for old in list(log.handlers):
        log.removeHandler(old)
        old.close()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # not mixed into the operational log


def target(arguments: Mapping[str, Any], default_namespace: str) -> dict[str, str]:
    """The namespace (as the tool resolves it) and the object names among `arguments`, nothing else."""
    names = {field: str(arguments[field])[:MAX_NAME] for field in TARGET_FIELDS
             if arguments.get(field) not in (None, "")}
    return {"namespace": str(arguments.get("namespace") or default_namespace)[:MAX_NAME], **names}


def verdict(failure: BaseException | None) -> str:
    """`ok`, or the code of a coded error ([CODE] in its message), else INTERNAL (CANCELLED when cancelled)."""
    if failure is None:
        return OK
    if not isinstance(failure, Exception):
        return "CANCELLED"
    found = _CODE.search(str(failure))
    return found.group(1) if found and found.group(1) in errors.MEANINGS else errors.INTERNAL


def begin() -> Token[dict[str, Any] | None]:
    """Start collecting the details of one tool call (the dispatcher calls it; `finish` returns them)."""
    return _details.set({})


def finish(token: Token[dict[str, Any] | None]) -> dict[str, Any]:
    details = _details.get() or {}
    _details.reset(token)
    return details


def note(**fields: Any) -> None:
    """Add facts to the running call's audit line (no-op outside a call)."""
    details = _details.get()
    if details is not None:
        details.update(fields)


def line(*, tool: str, caller: str | None, impersonated: str | None, target: Mapping[str, str], verdict: str,
         seconds: float, now: dt.datetime | None = None, details: Mapping[str, Any] | None = None) -> str:
    moment = (now or dt.datetime.now(dt.UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    entry = {"time": moment, "event": "tool_call", "tool": tool, "caller": caller, "impersonated": impersonated,
             "target": dict(target), "verdict": verdict, "duration_ms": round(seconds * 1000, 1)}
    if details:
        entry["details"] = dict(details)
    return json.dumps(entry, sort_keys=False)


def record(**fields: Any) -> None:
    log.info(line(**fields))
