"""Runs one guarded statement on its own connection: libpq startup limits, BEGIN READ ONLY, capped fetch,
always ROLLBACK, then the connection is closed.

No pool: a connection per call costs a few milliseconds next to an agent's turn, and nothing a statement
does to its session (settings, prepared statements, temporary state) can reach the next caller, so there
is nothing for DISCARD ALL to clean up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import anyio
import psycopg

from mcp_gateway.sql import credentials as creds
from mcp_gateway.sql.credentials import Credentials

CURSOR_NAME = "cnpg_mcp_read"
FETCH_BATCH = 100


@dataclass(frozen=True)
class Limits:
    """Per-call bounds; the time limits reach PostgreSQL as libpq startup options, never as SET."""

    statement_timeout_ms: int = 5000
    lock_timeout_ms: int = 1000
    idle_in_transaction_timeout_ms: int = 10_000
    connect_timeout_s: int = 5
    max_bytes: int = 64_000  # of row data (as JSON) returned by one call

    def startup_options(self) -> str:
        # standard_conforming_strings=on: the server reads string literals as the guard's parser did
        # (with it off, a backslash could end a literal early and smuggle a second statement).
        settings = {"default_transaction_read_only": "on", "statement_timeout": self.statement_timeout_ms,
                    "lock_timeout": self.lock_timeout_ms,
                    "idle_in_transaction_session_timeout": self.idle_in_transaction_timeout_ms,
                    "standard_conforming_strings": "on"}
        return " ".join(f"-c {name}={value}" for name, value in settings.items())

    @property
    def deadline_s(self) -> float:
        """A wall-clock bound on the whole call, should the server's own timeouts not fire."""
        return self.connect_timeout_s + 2 * self.statement_timeout_ms / 1000 + 5


class QueryFailed(Exception):
    """PostgreSQL refused or aborted the statement; `sqlstate` says why (57014: statement_timeout)."""

    def __init__(self, sqlstate: str | None, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class ConnectFailed(Exception):
    """The server could not be reached or refused the login."""

    def __init__(self, sqlstate: str | None, message: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@dataclass
class QueryResult:
    columns: list[dict[str, str]]
    rows: list[list[Any]] = field(default_factory=list)
    truncated: bool = False
    truncated_by: str | None = None  # "max_rows" or "max_bytes"
    duration_ms: float = 0.0


def jsonable(value: Any) -> Any:
    """A PostgreSQL value as JSON: numbers, text, booleans and JSON stay; the rest as their text form."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    return str(value)


def _size(row: list[Any]) -> int:
    return len(json.dumps(row, ensure_ascii=False).encode())


def _message(exc: psycopg.Error) -> str:
    diag = exc.diag
    lines = str(exc).strip().splitlines()
    primary = diag.message_primary or (lines[0] if lines else type(exc).__name__)
    return primary + (f" ({diag.message_detail})" if diag.message_detail else "")


async def _fetch(cursor: psycopg.AsyncCursor[Any], result: QueryResult, *, max_rows: int, max_bytes: int) -> None:
    """Rows until max_rows or max_bytes; one row more than max_rows is read to know there were more."""
    used = 0
    while True:
        wanted = min(FETCH_BATCH, max_rows + 1 - len(result.rows))
        batch = await cursor.fetchmany(wanted)
        for raw in batch:
            if len(result.rows) == max_rows:
                result.truncated, result.truncated_by = True, "max_rows"
                return
            row = [jsonable(value) for value in raw]
            used += _size(row)
            if used > max_bytes:
                result.truncated, result.truncated_by = True, "max_bytes"
                return
            result.rows.append(row)
        if len(batch) < wanted:  # the result is exhausted
            return


async def _connect(credentials: Credentials, *, database: str | None, limits: Limits,
                   endpoint_override: str | None) -> psycopg.AsyncConnection[Any]:
    with creds.rootcert_file(credentials) as rootcert:  # libpq reads the CA while connecting
        params = creds.conninfo(credentials, database=database, options=limits.startup_options(),
                                connect_timeout=limits.connect_timeout_s, endpoint_override=endpoint_override,
                                rootcert_path=rootcert)
        try:
            return await psycopg.AsyncConnection.connect(**params, autocommit=True)
        except psycopg.Error as exc:
            raise ConnectFailed(exc.sqlstate, _message(exc)) from exc


async def run(credentials: Credentials, sql: str, kind: str, *, database: str | None, max_rows: int,
              limits: Limits, endpoint_override: str | None = None) -> QueryResult:
    """Run one statement the guard accepted (`kind`: SELECT, EXPLAIN or SHOW) in a READ ONLY transaction."""
    started = time.perf_counter()
    with anyio.fail_after(limits.deadline_s):
        connection = await _connect(credentials, database=database, limits=limits,
                                    endpoint_override=endpoint_override)
        try:
            result = await _run_in_transaction(connection, sql, kind, max_rows=max_rows, max_bytes=limits.max_bytes)
        finally:
            await connection.close()
    result.duration_ms = round((time.perf_counter() - started) * 1000, 1)
    return result


async def _run_in_transaction(connection: psycopg.AsyncConnection[Any], sql: str, kind: str, *, max_rows: int,
                              max_bytes: int) -> QueryResult:
    try:
        await connection.execute("BEGIN READ ONLY")
        try:
            if kind == "SELECT":  # a server-side cursor: rows beyond the caps never leave the server
                async with connection.cursor(name=CURSOR_NAME, scrollable=False, withhold=False) as cursor:
                    await cursor.execute(sql.encode())
                    return await _collect(connection, cursor, max_rows=max_rows, max_bytes=max_bytes)
            # SHOW and EXPLAIN cannot be DECLAREd; binary=True sends them with the extended protocol,
            # which runs one statement only (the simple protocol would run a stacked second one).
            async with connection.cursor() as plain:
                await plain.execute(sql.encode(), binary=True)
                return await _collect(connection, plain, max_rows=max_rows, max_bytes=max_bytes)
        finally:
            with contextlib.suppress(psycopg.Error):  # a broken connection ends its transaction when closed
                await connection.execute("ROLLBACK")
    except psycopg.Error as exc:
        raise QueryFailed(exc.sqlstate, _message(exc)) from exc


async def _collect(connection: psycopg.AsyncConnection[Any], cursor: psycopg.AsyncCursor[Any], *, max_rows: int,
                   max_bytes: int) -> QueryResult:
    types = connection.adapters.types
    columns = [{"name": column.name, "type": (info.name if (info := types.get(column.type_code)) else
                                              str(column.type_code))} for column in cursor.description or []]
    result = QueryResult(columns=columns)
    await _fetch(cursor, result, max_rows=max_rows, max_bytes=max_bytes)
    return result
