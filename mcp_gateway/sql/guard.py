"""The parser guard: PostgreSQL's own grammar (pglast/libpg_query) decides what a statement is; no regexes.

Allowed: exactly one SELECT (VALUES and TABLE included), EXPLAIN without ANALYZE of a SELECT, or SHOW.
Refused anywhere in the tree: any other statement (data-modifying CTEs, nested DDL), SELECT INTO, row
locking clauses, and calls to functions with side effects or escape hatches (matched on the parsed name,
whatever the schema or quoting). Anything the parser cannot read is refused (fail closed).
Pure: no I/O; the executor's other layers do not rely on this one being perfect.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pglast import ast, parse_sql

SELECT, EXPLAIN, SHOW = "SelectStmt", "ExplainStmt", "VariableShowStmt"
KINDS = {SELECT: "SELECT", EXPLAIN: "EXPLAIN", SHOW: "SHOW"}

# Whole names refused: each writes, signals, sleeps, changes session state, reads server files or
# runs a query string the guard never sees (query_to_xml, ts_stat…).
DENIED_FUNCTIONS = frozenset({
    # sequences (nextval/setval write; the value is consumed even on rollback)
    "nextval", "setval",
    # notifications
    "pg_notify",
    # backend signalling and server administration
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_promote",
    "pg_log_backend_memory_contexts", "pg_switch_wal", "pg_create_restore_point", "pg_start_backup",
    "pg_stop_backup", "pg_import_system_collations", "pg_nextoid", "pg_clear_attribute_stats",
    "pg_restore_attribute_stats", "pg_restore_relation_stats", "pg_clear_relation_stats",
    # session state
    "set_config",
    # server files
    "pg_read_file", "pg_read_binary_file", "pg_stat_file", "pg_ls_dir",
    # functions that execute a query given as text
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "ts_stat", "ts_rewrite",
    # transaction ids: calling them assigns an xid to the (read-only) transaction
    "txid_current", "pg_current_xact_id",
    # large objects without the lo_ prefix
    "loread", "lowrite",
})
# Name prefixes refused (families of functions).
DENIED_PREFIXES = (
    "lo_",  # large objects: lo_import/lo_export read and write server files, lo_create/lo_put write
    "dblink",  # another connection, outside this read-only transaction
    "pg_advisory", "pg_try_advisory",  # advisory locks outlive the statement (session locks)
    "pg_sleep",  # pg_sleep, pg_sleep_for, pg_sleep_until: holding a connection on purpose
    "pg_ls_",  # directory listings of the server (logdir, waldir, tmpdir, archive_statusdir…)
    "pg_file_",  # adminpack: pg_file_write, pg_file_rename, pg_file_unlink
    "pg_stat_reset", "pg_stat_statements_reset",  # statistics resets
    "pg_create_", "pg_drop_", "pg_copy_", "pg_replication_slot_", "pg_replication_origin_",  # replication
    "pg_logical_",  # logical decoding: consuming changes advances a slot; emit_message writes WAL
    "pg_wal_replay_", "pg_backup_",  # recovery and backup control
    "cursor_to_xml", "table_to_xml", "schema_to_xml", "database_to_xml",  # xml helpers that run queries
    "binary_upgrade_",
)
MAX_SQL_CHARS = 20_000


class Refusal(Exception):
    """Why the guard refused a statement: a stable rule name and a sentence for the caller."""

    def __init__(self, rule: str, reason: str) -> None:
        super().__init__(reason)
        self.rule = rule
        self.reason = reason


@dataclass(frozen=True)
class Accepted:
    kind: str  # SELECT, EXPLAIN or SHOW
    functions: tuple[str, ...]  # every function the statement calls (qualified as written)


def denied_function(qualified: str) -> bool:
    """Whether a function (`name` or `schema.name`, any case) is on the deny-list, whatever its schema."""
    name = qualified.rsplit(".", 1)[-1].lower()
    return name in DENIED_FUNCTIONS or name.startswith(DENIED_PREFIXES)


def _nodes(tree: Any) -> Iterator[tuple[str, Any]]:
    """Every parse node under `tree` (itself included) as (node type, node), typed fields and lists alike."""
    if isinstance(tree, list | tuple):
        for item in tree:
            yield from _nodes(item)
    elif isinstance(tree, ast.Node):
        yield type(tree).__name__, tree
        for attribute in tree:
            yield from _nodes(getattr(tree, attribute))


def _function_name(call: Any) -> str:
    return ".".join(str(getattr(part, "sval", "")) for part in call.funcname or ())


def _parse(sql: str) -> tuple[Any, ...]:
    if "\x00" in sql:  # C strings end at NUL: the parser and the server could read different texts
        raise Refusal("nul_byte", "the SQL contains a NUL character")
    if len(sql) > MAX_SQL_CHARS:
        raise Refusal("too_long", f"the SQL is longer than {MAX_SQL_CHARS} characters")
    try:
        statements: tuple[Any, ...] = tuple(parse_sql(sql))
    except Exception as exc:  # any parser failure refuses (fail closed)
        raise Refusal("parse_error", f"PostgreSQL's parser rejects it: {exc}") from exc
    return statements


def check(sql: str) -> Accepted:
    """Accept one read-only statement or raise Refusal saying which rule it breaks."""
    statements = _parse(sql)
    if len(statements) != 1:
        raise Refusal("statement_count", f"exactly one statement is allowed, found {len(statements)}")
    top = statements[0].stmt
    kind = type(top).__name__
    if kind not in KINDS:
        raise Refusal("statement_kind", f"only SELECT, EXPLAIN (without ANALYZE) and SHOW are allowed, not "
                                        f"a {kind.removesuffix('Stmt')} statement")
    if kind == EXPLAIN:
        _check_explain(top)
    functions: list[str] = []
    for node_kind, node in _nodes(top):
        if node_kind.endswith("Stmt") and node_kind not in (SELECT, kind):
            raise Refusal("nested_statement", f"a {node_kind.removesuffix('Stmt')} statement inside the query "
                                              "(e.g. a data-modifying WITH) is not allowed")
        if node_kind == "IntoClause":
            raise Refusal("select_into", "SELECT INTO creates a table; it is not allowed")
        if node_kind == "LockingClause":
            raise Refusal("locking_clause", "FOR UPDATE/SHARE locks rows; it is not allowed")
        if node_kind == "FuncCall":
            name = _function_name(node)
            if denied_function(name):
                raise Refusal("denied_function", f"function {name}() has side effects or escapes the "
                                                  "read-only session; it is not allowed")
            functions.append(name)
    return Accepted(KINDS[kind], tuple(functions))


def _check_explain(explain: Any) -> None:
    options = [str(getattr(option, "defname", "")).lower() for option in explain.options or ()]
    if "analyze" in options or "analyse" in options:  # EXPLAIN ANALYZE runs the statement
        raise Refusal("explain_analyze", "EXPLAIN ANALYZE executes the statement; use EXPLAIN without ANALYZE")
    if type(explain.query).__name__ != SELECT:
        raise Refusal("statement_kind", "EXPLAIN is allowed for a SELECT only")
