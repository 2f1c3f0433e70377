"""Read-only SQL: `run_readonly_query` (toolset `sql`, opt-in) and `run_diagnostic_query` (toolset
`diagnostics`), both through the same guard, credentials and executor (mcp_gateway/sql)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

from mcp.types import CallToolResult, ToolAnnotations
from pydantic import Field

from cnpg_mcp_api import constants
from cnpg_mcp_api.naming import identifier_problem
from mcp_gateway import audit, errors
from mcp_gateway.gateway import Gateway
from mcp_gateway.registry import ToolSpec
from mcp_gateway.sql import checks, credentials, executor, guard
from mcp_gateway.tools import logview, outputs, result
from mcp_gateway.tools.clusters import ClusterName, Format, Namespace

# Read-only, and open-world: the answer comes from PostgreSQL's data, not from Kubernetes objects.
READ_SQL = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
DIAGNOSTIC_MAX_ROWS = 100
CELL_CHARS = 60  # the text table clips each value; the structured content has it whole
SQLSTATE_HINTS = {
    "57014": "the statement ran longer than the statement_timeout; narrow it (WHERE, LIMIT) or use EXPLAIN",
    "55P03": "it waited too long for a lock (lock_timeout)",
    "25006": "it tried to write; the session is read-only",
    "42501": "the read-only role has no privilege on that object; an admin can GRANT SELECT on it",
    "42P01": "no such table or view (check the schema and the database)",
    "42883": "no such function (or not with those argument types)",
    "3D000": "no such database",
}
Database = Annotated[str | None, Field(max_length=63, description=(
    "Database to query; default: the one in the cluster's read-only credentials (the application database)"))]
CheckName = Literal[
    "long_running_queries", "blocking_locks", "connections_by_state", "database_sizes", "table_sizes",
    "index_usage", "replication", "replication_slots", "recovery_status", "changed_settings"]


def sql_sha256(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


def _limits(gw: Gateway) -> executor.Limits:
    return executor.Limits(statement_timeout_ms=gw.config.sql_statement_timeout_ms, max_bytes=gw.config.sql_max_bytes)


def _redacted(value: Any) -> Any:
    return logview.redact(value) if isinstance(value, str) else value


async def _execute(gw: Gateway, ns: str, cluster: str, sql: str, *, database: str | None,
                   max_rows: int) -> tuple[str, str, executor.QueryResult]:
    """(statement kind, database, result) of one guarded call; every refusal and failure is coded and audited."""
    audit.note(sql_sha256=sql_sha256(sql))
    if database is not None and (problem := identifier_problem(database, "database")):
        raise errors.tool_error(errors.INVALID_ARGUMENT, f"{problem}.")
    try:
        accepted = guard.check(sql)
    except guard.Refusal as refusal:
        audit.note(guard_rule=refusal.rule)
        raise errors.tool_error(errors.QUERY_REFUSED, f"{refusal.reason}. Nothing was sent to PostgreSQL; only one "
                                "SELECT, EXPLAIN (without ANALYZE) or SHOW is accepted.") from None
    # The caller must be allowed to read the Cluster (with --impersonate, as themselves).
    async with gw.acting(f"reading cluster {ns}/{cluster}"):
        if await gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, cluster) is None:
            raise errors.tool_error(errors.NOT_FOUND, f"no cluster {cluster!r} in namespace {ns!r}; "
                                                      "list_postgres_clusters shows what exists")
    try:
        login = credentials.load(gw.config.sql_credentials_dir, ns, cluster)
    except (credentials.NotEnabled, credentials.Unusable) as exc:
        raise errors.tool_error(errors.SQL_NOT_ENABLED, str(exc)) from None
    chosen = database or login.dbname
    try:
        answer = await executor.run(login, sql, accepted.kind, database=database, max_rows=max_rows,
                                    limits=_limits(gw), endpoint_override=gw.config.sql_endpoint_override)
    except executor.ConnectFailed as exc:
        audit.note(sqlstate=exc.sqlstate)
        raise errors.tool_error(errors.DATABASE_UNAVAILABLE, f"cannot log in to {ns}/{cluster} as the read-only role"
                                + (f" (SQLSTATE {exc.sqlstate})" if exc.sqlstate else "") + f": {exc}. Retry later; "
                                "get_cluster_status shows whether the cluster is healthy.") from None
    except executor.QueryFailed as exc:
        audit.note(sqlstate=exc.sqlstate)
        hint = SQLSTATE_HINTS.get(exc.sqlstate or "")
        raise errors.tool_error(errors.QUERY_FAILED, f"PostgreSQL refused the query (SQLSTATE {exc.sqlstate}): {exc}"
                                + (f" — {hint}." if hint else ".") + " The transaction was rolled back.") from None
    except TimeoutError:
        raise errors.tool_error(errors.QUERY_FAILED, "the query did not finish in time and was abandoned; the "
                                "transaction was rolled back.") from None
    answer.rows = [[_redacted(value) for value in row] for row in answer.rows]
    audit.note(rows=len(answer.rows), truncated=answer.truncated)
    return accepted.kind, chosen, answer


def _cell(value: Any) -> str:
    shown = "NULL" if value is None else str(value)
    return shown if len(shown) <= CELL_CHARS else shown[:CELL_CHARS - 1] + "…"


def _table_text(header: str, columns: list[str], rows: list[list[Any]], truncated_by: str | None) -> str:
    lines = [header, " | ".join(columns)]
    lines += [" | ".join(_cell(value) for value in row) for row in rows]
    if truncated_by:
        lines.append(f"… truncated by {truncated_by}: more rows exist; narrow the query (WHERE, LIMIT) or raise "
                     "max_rows.")
    return "\n".join(lines)


async def run_readonly_query(
    gw: Gateway, cluster_name: ClusterName,
    sql: Annotated[str, Field(min_length=1, max_length=guard.MAX_SQL_CHARS, description=(
        "One SELECT, EXPLAIN (without ANALYZE) or SHOW statement"))],
    database: Database = None,
    max_rows: Annotated[int, Field(ge=1, le=1000, description="Most rows returned (1-1000)")] = 100,
    namespace: Namespace = None, format: Format = "text",
) -> CallToolResult:
    """Use to ask a cluster's PostgreSQL a read-only question (statistics views, catalog, the tables an admin
    granted). Accepts one SELECT, EXPLAIN without ANALYZE or SHOW, parsed by PostgreSQL's own parser; writes,
    session changes and functions with side effects are refused. Runs as the cluster's dedicated read-only
    role in a READ ONLY transaction that is always rolled back, with a statement timeout; returns at most
    max_rows rows and says when more existed. Needs spec.readOnlyQueries.enabled on the PgClusterRequest."""
    ns = gw.namespace(namespace)
    kind, chosen, answer = await _execute(gw, ns, cluster_name, sql, database=database, max_rows=max_rows)
    data: dict[str, Any] = {"cluster": cluster_name, "namespace": ns, "database": chosen, "statement": kind,
                            "columns": answer.columns, "rows": answer.rows, "row_count": len(answer.rows),
                            "truncated": answer.truncated, "truncated_by": answer.truncated_by,
                            "duration_ms": answer.duration_ms}
    header = (f"{kind} on {ns}/{cluster_name}, database {chosen}: {len(answer.rows)} row(s) in "
              f"{answer.duration_ms} ms")
    return result(_table_text(header, [c["name"] for c in answer.columns], answer.rows, answer.truncated_by), data,
                  as_json=format == "json")


async def run_diagnostic_query(
    gw: Gateway, cluster_name: ClusterName,
    check: Annotated[CheckName, Field(description=(
        "long_running_queries (over 5 s), blocking_locks (who waits on whom), connections_by_state (against "
        "max_connections), database_sizes, table_sizes (30 largest, live/dead rows), index_usage (scans, unused "
        "indexes), replication (replicas and their lag), replication_slots (WAL retained), recovery_status "
        "(replica or primary, replay delay), changed_settings (not at their defaults)"))],
    database: Database = None, namespace: Namespace = None, format: Format = "text",
) -> CallToolResult:
    """Use to diagnose a slow or unhealthy PostgreSQL without writing SQL: runs one ready-made check as the
    cluster's read-only role and returns named fields per row. Same safety as run_readonly_query (guard,
    READ ONLY transaction, timeouts); table_sizes and index_usage look at one database (default: the
    application database). Needs spec.readOnlyQueries.enabled on the PgClusterRequest."""
    ns = gw.namespace(namespace)
    chosen_check = checks.BY_NAME[check]
    _, chosen, answer = await _execute(gw, ns, cluster_name, chosen_check.sql, database=database,
                                       max_rows=DIAGNOSTIC_MAX_ROWS)
    names = [c["name"] for c in answer.columns]
    records = [dict(zip(names, row, strict=True)) for row in answer.rows]
    data: dict[str, Any] = {"cluster": cluster_name, "namespace": ns, "database": chosen, "check": check,
                            "description": chosen_check.description, "rows": records, "row_count": len(records),
                            "truncated": answer.truncated, "duration_ms": answer.duration_ms}
    header = (f"{check} on {ns}/{cluster_name} (database {chosen}): {chosen_check.description} — "
              f"{len(records)} row(s)")
    if not records:
        return result(header + "\n(none)", data, as_json=format == "json")
    return result(_table_text(header, names, answer.rows, answer.truncated_by), data, as_json=format == "json")


TOOLS = (
    ToolSpec("run_readonly_query", "Run a read-only SQL query", "sql", READ_SQL, outputs.QueryResult,
             run_readonly_query, (errors.NOT_FOUND, errors.SQL_NOT_ENABLED, errors.QUERY_REFUSED, errors.QUERY_FAILED,
                                  errors.DATABASE_UNAVAILABLE)),
    ToolSpec("run_diagnostic_query", "Run a diagnostic query", "diagnostics", READ_SQL, outputs.DiagnosticResult,
             run_diagnostic_query, (errors.NOT_FOUND, errors.SQL_NOT_ENABLED, errors.QUERY_FAILED,
                                    errors.DATABASE_UNAVAILABLE)),
)
