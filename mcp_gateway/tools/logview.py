"""Pure handling of CNPG instance logs: parse the JSON lines, filter, merge, bound, redact.

CloudNativePG's instance manager writes one JSON object per line (`level`, `ts`, `logger`, `msg`,
`logging_pod`; PostgreSQL's own lines as `logger: postgres`, `msg: record`, `record: {error_severity,
message, …}`). Lines that are not JSON (another container, a crash dump) are kept as plain text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

# zap's levels plus PostgreSQL severities an agent may name; unknown levels rank as info (never hidden by default).
LEVEL_RANK = {"trace": 0, "debug": 1, "info": 2, "notice": 2, "log": 2, "warning": 3, "warn": 3, "error": 4,
              "fatal": 5, "panic": 5, "dpanic": 5}
LEVELS = ("debug", "info", "warning", "error")
MESSAGE_LIMIT = 2_000  # one entry never floods the answer
# A password in a logged statement or connection string never leaves the gateway.
_SECRETS = (
    re.compile(r"(?i)(\bpassword\s+)('(?:[^']|'')*')"),  # SQL: a password is a string literal
    re.compile(r"(?i)(\bpassword\s*=\s*)('(?:[^']|'')*'|[^\s&;]+)"),
    re.compile(r"(?i)(://[^:/@\s]+:)([^@\s]+)(@)"),
)
REDACTED = "[REDACTED]"


def redact(text: str) -> str:
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED + (m.group(3) if m.lastindex == 3 else ""), text)
    return text


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + " …(clipped)"


def parse_line(pod: str, line: str) -> dict[str, Any]:
    """One log line → {pod, time, level, logger, message} (message redacted and clipped)."""
    try:
        body = json.loads(line)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return {"pod": pod, "time": None, "level": None, "logger": None, "message": _clip(redact(line))}
    record = body.get("record")
    if body.get("logger") == "postgres" and isinstance(record, Mapping):
        severity = record.get("error_severity")
        text = str(record.get("message") or "")
        detail = record.get("detail") or record.get("hint")
        message = (f"{severity}: " if severity else "") + text + (f" ({detail})" if detail else "")
    else:
        message = str(body.get("msg") or "")
        extra = body.get("error") or body.get("err")
        if extra:
            message += f": {extra}"
    return {"pod": pod, "time": body.get("ts"), "level": body.get("level"), "logger": body.get("logger"),
            "message": _clip(redact(message))}


def parse(pod: str, text: str) -> list[dict[str, Any]]:
    return [parse_line(pod, line) for line in text.splitlines() if line.strip()]


def rank(level: str | None) -> int:
    return LEVEL_RANK.get((level or "").lower(), LEVEL_RANK["info"])


def keep(entry: Mapping[str, Any], *, min_level: str | None, contains: str | None) -> bool:
    if min_level is not None and rank(entry.get("level")) < LEVEL_RANK[min_level]:
        return False
    return contains is None or contains.lower() in str(entry.get("message") or "").lower()


def entry_text(entry: Mapping[str, Any]) -> str:
    level = (entry.get("level") or "-").upper()
    return f"{entry.get('time') or '-'} {entry['pod']} {level} [{entry.get('logger') or '-'}] {entry['message']}"


def bounded(entries: Iterable[Mapping[str, Any]], *, max_lines: int, max_bytes: int) -> tuple[list[Any], int]:
    """The newest entries (time order) within `max_lines` and `max_bytes` of text; and how many were left out."""
    ordered = sorted(entries, key=lambda e: str(e.get("time") or ""))
    chosen: list[Any] = []
    size = 0
    for entry in reversed(ordered):
        cost = len(entry_text(entry).encode()) + 1
        if len(chosen) >= max_lines or size + cost > max_bytes:
            break
        chosen.append(entry)
        size += cost
    chosen.reverse()
    return chosen, len(ordered) - len(chosen)
