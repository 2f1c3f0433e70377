"""Instance Pod logs in CNPG's JSON format, served by the kubelet endpoint (kubelet.py).

CNPG's instance manager writes one JSON object per line to stdout: `level`, `ts` (RFC 3339 with
fractional seconds), `logger`, `msg`, `logging_pod`, and for PostgreSQL's own log (`logger:
"postgres"`, `msg: "record"`) a `record` with the csvlog fields. Here each Pod gets the instance
manager's lines the simulation produces (start, ready), and a primary also gets the REAL PostgreSQL
server's log lines (the shared server's log, so every cluster's activity shows in every primary).
Pure formatting and selection functions are unit-tested; LogStore is the thread-safe memory.
"""

from __future__ import annotations

import json
import re
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LINES_KEPT_PER_POD = 500
SERVER_LOG_TAIL_BYTES = 512 * 1024
# PostgreSQL's default log_line_prefix '%m [%p] ': "2026-01-02 03:04:05.678 UTC [123] LOG:  message"
_STDERR_LINE = re.compile(
    r"^(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) (?P<zone>\S+) \[(?P<pid>\d+)\] "
    r"(?P<severity>[A-Z0-9]+):  (?P<message>.*)$")
_LEVELS = {"DEBUG": "debug", "INFO": "info", "NOTICE": "info", "LOG": "info", "WARNING": "warning",
           "ERROR": "error", "FATAL": "error", "PANIC": "error"}


@dataclass(frozen=True)
class LogEntry:
    at: datetime  # aware, UTC
    line: str  # one JSON object, no newline


def rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def instance_line(at: datetime, pod: str, msg: str, *, logger: str = "instance-manager", level: str = "info",
                  **fields: Any) -> LogEntry:
    """One instance-manager line, in CNPG's key order."""
    body: dict[str, Any] = {"level": level, "ts": rfc3339(at), "logger": logger, "msg": msg,
                            "logging_pod": pod, **fields}
    return LogEntry(at, json.dumps(body, separators=(",", ":")))


def postgres_record_line(at: datetime, pod: str, record: dict[str, str], level: str = "info") -> LogEntry:
    """One PostgreSQL log record as CNPG's instance manager forwards it (logger postgres, msg record)."""
    return instance_line(at, pod, "record", logger="postgres", level=level, record=record)


def parse_server_line(text: str) -> tuple[datetime, dict[str, str], str] | None:
    """A PostgreSQL stderr log line → (time, csvlog-like record, level); None if it is a continuation."""
    match = _STDERR_LINE.match(text.rstrip("\n"))
    if match is None:
        return None
    zone = match["zone"]
    at = datetime.fromisoformat(match["time"]).replace(tzinfo=UTC)  # the sandbox's server logs in UTC
    record = {"log_time": f"{match['time']} {zone}", "process_id": match["pid"],
              "error_severity": match["severity"], "message": match["message"]}
    return at, record, _LEVELS.get(match["severity"], "info")


def startup_entries(at: datetime, pod: str, cluster: str, primary: bool) -> list[LogEntry]:
    """What an instance says when it starts (simulated: no instance manager runs)."""
    role = "primary" if primary else "replica"
    return [
        instance_line(at, pod, "Starting CloudNativePG Instance Manager (simulated by cnpg-simulator)",
                      logger="setup", cluster=cluster),
        postgres_record_line(at, pod, {"error_severity": "LOG", "message":
                                       "database system is ready to accept connections",
                                       "backend_type": "postmaster"}),
        instance_line(at, pod, f"Instance is ready ({role})", cluster=cluster),
    ]


def select(entries: Sequence[LogEntry], *, tail_lines: int | None = None, since: datetime | None = None,
           timestamps: bool = False, limit_bytes: int | None = None) -> bytes:
    """The kubelet's containerLogs options applied to entries (oldest first): the response body."""
    chosen = [e for e in entries if since is None or e.at >= since]
    if tail_lines is not None:
        chosen = chosen[-tail_lines:] if tail_lines > 0 else []
    text = "".join((f"{rfc3339(e.at)} " if timestamps else "") + e.line + "\n" for e in chosen).encode()
    return text[:limit_bytes] if limit_bytes is not None and limit_bytes >= 0 else text


def server_entries(lines: Iterable[str], pod: str, since: datetime) -> list[LogEntry]:
    """The real server's log lines from `since` on, as this Pod's postgres records."""
    entries: list[LogEntry] = []
    for text in lines:
        parsed = parse_server_line(text)
        if parsed is None:
            continue
        at, record, level = parsed
        if at >= since:
            entries.append(postgres_record_line(at, pod, record, level))
    return entries


@dataclass
class _PodLog:
    cluster: str
    started: datetime
    primary: bool
    entries: deque[LogEntry]


class LogStore:
    """The log of every instance Pod the simulator's kubelet runs (bounded per Pod)."""

    def __init__(self, server_log: Path | None) -> None:
        self._server_log = server_log
        self._pods: dict[tuple[str, str], _PodLog] = {}
        self._lock = threading.Lock()

    def started(self, namespace: str, pod: str, cluster: str, *, primary: bool) -> None:
        now = datetime.now(UTC)
        with self._lock:
            entries: deque[LogEntry] = deque(startup_entries(now, pod, cluster, primary), LINES_KEPT_PER_POD)
            self._pods[(namespace, pod)] = _PodLog(cluster, now, primary, entries)

    def set_primary(self, namespace: str, pod: str, primary: bool) -> None:
        with self._lock:
            known = self._pods.get((namespace, pod))
            if known is not None and known.primary != primary:
                known.primary = primary
                role = "primary" if primary else "replica"
                known.entries.append(instance_line(datetime.now(UTC), pod, f"Instance is now {role}",
                                                   cluster=known.cluster))

    def knows(self, namespace: str, pod: str) -> bool:
        with self._lock:
            return (namespace, pod) in self._pods

    def forget(self, namespace: str, pod: str) -> None:
        with self._lock:
            self._pods.pop((namespace, pod), None)

    def entries(self, namespace: str, pod: str) -> list[LogEntry] | None:
        """Oldest first; None for a Pod this kubelet does not run."""
        with self._lock:
            known = self._pods.get((namespace, pod))
            if known is None:
                return None
            own, primary, started = list(known.entries), known.primary, known.started
        if primary:
            own += server_entries(self._server_log_tail(), pod, started)
        return sorted(own, key=lambda e: e.at)

    def _server_log_tail(self) -> list[str]:
        if self._server_log is None:
            return []
        try:
            with self._server_log.open("rb") as stream:
                start = max(0, stream.seek(0, 2) - SERVER_LOG_TAIL_BYTES)
                stream.seek(start)
                lines = stream.read().decode(errors="replace").splitlines()
                return lines[1:] if start else lines  # a cut first line is dropped
        except OSError:
            return []
