"""Read-only SQL through a real MCP client against the real PostgreSQL: an attack corpus that must change
nothing, a positive list of diagnostic queries that must keep working, caps, timeouts and the audit line.

The read-only login role is created here (the operator's provisioning is another piece of work): LOGIN,
member of pg_monitor, SELECT on one table only; its credentials file is written the way the operator's
mounted Secret presents it (sslmode comes from the file)."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from mcp import Client
from psycopg import sql as pgsql

from devcluster.controlplane import ControlPlane
from devcluster.postgres import PostgresServer
from mcp_gateway import audit
from tests.integration.gateway_helpers import error, gateway_server, ok, text
from tests.integration.test_cnpg_simulator import create_cluster

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("cnpg_simulator")]
CLUSTER = "pg-sql"
STATEMENT_TIMEOUT_MS = 1000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass(frozen=True)
class Sandbox:
    postgres: PostgresServer
    database: str
    role: str
    password: str

    def superuser(self, database: str | None = None) -> psycopg.Connection[Any]:
        return psycopg.connect(self.postgres.superuser_dsn(database or self.database), autocommit=True)

    def credentials(self, **changes: Any) -> dict[str, Any]:
        return {"host": self.postgres.host, "port": self.postgres.port, "dbname": self.database, "user": self.role,
                "password": self.password, "sslmode": "prefer", "sslrootcert": ""} | changes


SETUP = """
CREATE TABLE public.orders (id int PRIMARY KEY, note text NOT NULL);
INSERT INTO public.orders SELECT g, 'order ' || g FROM generate_series(1, 50) AS g;
CREATE TABLE public.hidden (secret text);
INSERT INTO public.hidden VALUES ('not for the read-only role');
CREATE SEQUENCE public.order_seq;
GRANT SELECT ON public.orders TO {role};
-- SECURITY DEFINER functions owned by the superuser: what a careless admin might leave callable.
CREATE FUNCTION public.evil_writer() RETURNS int LANGUAGE plpgsql SECURITY DEFINER
  AS $$ BEGIN INSERT INTO public.orders VALUES (1000, 'written'); RETURN 1; END $$;
CREATE FUNCTION public.evil_nextval() RETURNS bigint LANGUAGE sql SECURITY DEFINER
  AS $$ SELECT nextval('public.order_seq') $$;
CREATE FUNCTION public.evil_read_write() RETURNS int LANGUAGE plpgsql SECURITY DEFINER
  AS $$ BEGIN SET TRANSACTION READ WRITE; DELETE FROM public.orders; RETURN 1; END $$;
CREATE FUNCTION public.evil_promote() RETURNS int LANGUAGE plpgsql SECURITY DEFINER
  AS $$ BEGIN EXECUTE 'ALTER ROLE {role} SUPERUSER'; RETURN 1; END $$;
CREATE FUNCTION public.evil_unlock() RETURNS int LANGUAGE plpgsql SECURITY DEFINER
  AS $$ BEGIN PERFORM set_config('default_transaction_read_only', 'off', false);
            PERFORM set_config('transaction_read_only', 'off', true);
            INSERT INTO public.orders VALUES (1001, 'unlocked'); RETURN 1; END $$;
"""


@pytest.fixture(scope="module")
def sandbox(postgres: PostgresServer) -> Iterator[Sandbox]:
    suffix = secrets.token_hex(3)
    box = Sandbox(postgres, f"sqlguard_{suffix}", f"sqlguard_ro_{suffix}", secrets.token_urlsafe(18))
    role = pgsql.Identifier(box.role)
    with box.superuser("postgres") as admin:
        admin.execute(pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE pg_monitor").format(
            role, pgsql.Literal(box.password)))
        admin.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(box.database)))
    with box.superuser() as admin:
        admin.execute(pgsql.SQL(SETUP).format(role=role))
    yield box
    with box.superuser("postgres") as admin:
        admin.execute(pgsql.SQL("DROP DATABASE {} WITH (FORCE)").format(pgsql.Identifier(box.database)))
        admin.execute(pgsql.SQL("DROP ROLE {}").format(role))


def state(box: Sandbox) -> dict[str, Any]:
    """Everything an attack could change, read by the superuser on a fresh connection."""
    queries = {
        "orders": "SELECT count(*), sum(id), md5(string_agg(note, ',' ORDER BY id)) FROM public.orders",
        "hidden": "SELECT count(*) FROM public.hidden",
        "sequence": "SELECT last_value, is_called FROM public.order_seq",
        "role": "SELECT rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication, rolbypassrls,"
                " rolconnlimit, rolpassword, rolvaliduntil FROM pg_authid WHERE rolname = %(role)s",
        "memberships": "SELECT array_agg(roleid::regrole::text ORDER BY 1) FROM pg_auth_members m "
                       "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %(role)s",
        "role_settings": "SELECT count(*), (SELECT rolconfig FROM pg_roles WHERE rolname = %(role)s) "
                         "FROM pg_db_role_setting",
        "large_objects": "SELECT count(*) FROM pg_largeobject_metadata",
        "relations": "SELECT count(*), md5(string_agg(relname || coalesce(relacl::text, ''), ',' ORDER BY relname)) "
                     "FROM pg_class WHERE relnamespace = 'public'::regnamespace",
        "functions": "SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace",
        "database_acl": "SELECT datacl::text FROM pg_database WHERE datname = current_database()",
        "settings": "SELECT md5(string_agg(name || '=' || setting, ',' ORDER BY name)) FROM pg_settings",
        "file_settings": "SELECT count(*) FROM pg_file_settings",
        "prepared_transactions": "SELECT count(*) FROM pg_prepared_xacts",
        "advisory_locks": "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'",
        "open_sessions": "SELECT count(*) FROM pg_stat_activity WHERE usename = %(role)s",
        "slots": "SELECT count(*) FROM pg_replication_slots",
    }
    with box.superuser() as admin:
        return {name: admin.execute(query, {"role": box.role}).fetchall() for name, query in queries.items()}


def settled_state(box: Sandbox) -> dict[str, Any]:
    """The state once the gateway's connection has gone (its backend exits just after the close)."""
    deadline = time.monotonic() + 5
    current = state(box)
    while current["open_sessions"] != [(0,)] and time.monotonic() < deadline:
        time.sleep(0.05)
        current = state(box)
    return current


@pytest.fixture
def cluster(k8s: Any, namespace: str, sandbox: Sandbox, tmp_path: Path) -> tuple[str, Path]:
    """A Cluster the caller may read, and the credentials directory holding its read-only login."""
    create_cluster(k8s, namespace, CLUSTER)
    folder = tmp_path / "sql"
    folder.mkdir()
    (folder / f"{namespace}.{CLUSTER}.json").write_text(json.dumps(sandbox.credentials()))
    return namespace, folder


def server(control_plane: ControlPlane, folder: Path, **options: Any) -> Any:
    options.setdefault("sql_statement_timeout_ms", STATEMENT_TIMEOUT_MS)
    return gateway_server(control_plane, toolsets=("sql", "diagnostics"), sql_credentials_dir=folder, **options)


async def query(mcp: Client, namespace: str, sql: str, **arguments: Any) -> Any:
    return await mcp.call_tool("run_readonly_query", {"cluster_name": CLUSTER, "namespace": namespace, "sql": sql,
                                                      **arguments})


# Each payload, and the code it must fail with; a SQLSTATE when PostgreSQL itself must be the layer that stops it.
ATTACKS: list[tuple[str, str, str | None]] = [
    # statement stacking and transaction control
    ("SELECT 1; COMMIT; DELETE FROM orders", "QUERY_REFUSED", None),
    ("COMMIT; DELETE FROM orders", "QUERY_REFUSED", None),
    ("END; DELETE FROM orders", "QUERY_REFUSED", None),
    ("ROLLBACK; INSERT INTO orders VALUES (2000, 'x')", "QUERY_REFUSED", None),
    ("BEGIN READ WRITE; DELETE FROM orders; COMMIT", "QUERY_REFUSED", None),
    ("SET TRANSACTION READ WRITE", "QUERY_REFUSED", None),
    ("SELECT 1; SET TRANSACTION READ WRITE; DELETE FROM orders", "QUERY_REFUSED", None),
    ("START TRANSACTION READ WRITE", "QUERY_REFUSED", None),
    # session settings
    ("SET default_transaction_read_only = off", "QUERY_REFUSED", None),
    ("SET SESSION statement_timeout = 0", "QUERY_REFUSED", None),
    ("RESET ALL", "QUERY_REFUSED", None),
    ("SELECT set_config('default_transaction_read_only', 'off', false)", "QUERY_REFUSED", None),
    ("SELECT pg_catalog.set_config('transaction_read_only', 'off', true)", "QUERY_REFUSED", None),
    # lexer tricks
    ("SELECT $q$x$q$; DELETE FROM orders", "QUERY_REFUSED", None),
    ("SELECT 1 -- comment\n; DELETE FROM orders", "QUERY_REFUSED", None),
    ("/* /* nested */ */ DELETE FROM orders", "QUERY_REFUSED", None),
    ("SELECT E'\\''; DELETE FROM orders; --'", "QUERY_REFUSED", None),
    ("SELECT U&\"\\0073et_config\"('default_transaction_read_only', 'off', false)", "QUERY_REFUSED", None),
    ('SELECT "pg_catalog"."set_config"(\'a.b\', \'c\', false)', "QUERY_REFUSED", None),
    ("SELECT 1\x00; DELETE FROM orders", "QUERY_REFUSED", None),
    # large objects, other connections, server files and programs
    ("SELECT lo_create(0)", "QUERY_REFUSED", None),
    ("SELECT lo_from_bytea(0, 'payload')", "QUERY_REFUSED", None),
    ("SELECT lo_import('/etc/hostname')", "QUERY_REFUSED", None),
    ("SELECT lowrite(lo_open(lo_creat(-1), 131072), 'x')", "QUERY_REFUSED", None),
    ("SELECT * FROM dblink('dbname=postgres', 'DELETE FROM orders') AS t(x text)", "QUERY_REFUSED", None),
    ("COPY (SELECT 1) TO PROGRAM 'touch /tmp/cnpg-mcp-pwned'", "QUERY_REFUSED", None),
    ("COPY orders FROM '/etc/hostname'", "QUERY_REFUSED", None),
    ("SELECT pg_read_file('/etc/hostname')", "QUERY_REFUSED", None),
    ("SELECT * FROM pg_ls_dir('.')", "QUERY_REFUSED", None),
    ("SELECT query_to_xml('DELETE FROM orders RETURNING 1', true, false, '')", "QUERY_REFUSED", None),
    # code execution and DDL
    ("DO $$ BEGIN DELETE FROM orders; END $$", "QUERY_REFUSED", None),
    ("CALL evil()", "QUERY_REFUSED", None),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", "QUERY_REFUSED", None),
    ("CREATE OR REPLACE FUNCTION public.evil_writer() RETURNS int LANGUAGE sql AS 'SELECT 2'", "QUERY_REFUSED",
     None),
    ("ALTER ROLE CURRENT_USER SUPERUSER", "QUERY_REFUSED", None),
    ("ALTER ROLE CURRENT_USER SET default_transaction_read_only = off", "QUERY_REFUSED", None),
    ("ALTER ROLE CURRENT_USER PASSWORD 'taken-over'", "QUERY_REFUSED", None),
    ("ALTER SYSTEM SET work_mem = '1GB'", "QUERY_REFUSED", None),
    ("GRANT SELECT ON hidden TO CURRENT_USER", "QUERY_REFUSED", None),
    ("CREATE TABLE loot AS SELECT * FROM orders", "QUERY_REFUSED", None),
    # writes, hidden or not
    ("INSERT INTO orders VALUES (2001, 'x')", "QUERY_REFUSED", None),
    ("UPDATE orders SET note = 'changed'", "QUERY_REFUSED", None),
    ("DELETE FROM orders", "QUERY_REFUSED", None),
    ("TRUNCATE orders", "QUERY_REFUSED", None),
    ("MERGE INTO orders o USING (SELECT 1 AS id) s ON o.id = s.id WHEN MATCHED THEN DELETE", "QUERY_REFUSED", None),
    ("WITH gone AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM gone", "QUERY_REFUSED", None),
    ("WITH moved AS (UPDATE orders SET note = 'x' RETURNING 1) SELECT 1", "QUERY_REFUSED", None),
    ("SELECT * INTO loot FROM orders", "QUERY_REFUSED", None),
    ("SELECT * FROM orders FOR UPDATE", "QUERY_REFUSED", None),
    ("SELECT * FROM orders FOR SHARE SKIP LOCKED", "QUERY_REFUSED", None),
    ("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", "QUERY_REFUSED", None),
    # denial of service, sequences, locks, notifications
    ("SELECT pg_sleep(30)", "QUERY_REFUSED", None),
    ("SELECT * FROM pg_catalog.pg_sleep_for('30 seconds')", "QUERY_REFUSED", None),
    ("SELECT nextval('order_seq')", "QUERY_REFUSED", None),
    ("SELECT setval('order_seq', 999)", "QUERY_REFUSED", None),
    ("SELECT pg_advisory_lock(42)", "QUERY_REFUSED", None),
    ("VALUES (pg_try_advisory_lock(43))", "QUERY_REFUSED", None),
    ("NOTIFY channel, 'payload'", "QUERY_REFUSED", None),
    ("SELECT pg_notify('channel', 'payload')", "QUERY_REFUSED", None),
    ("LISTEN channel", "QUERY_REFUSED", None),
    ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity", "QUERY_REFUSED", None),
    ("SELECT pg_cancel_backend(pg_backend_pid())", "QUERY_REFUSED", None),
    ("SELECT pg_reload_conf()", "QUERY_REFUSED", None),
    ("SELECT txid_current()", "QUERY_REFUSED", None),
    # session objects that would outlive the call
    ("PREPARE wipe AS DELETE FROM orders", "QUERY_REFUSED", None),
    ("EXECUTE wipe", "QUERY_REFUSED", None),
    ("DECLARE keep CURSOR WITH HOLD FOR SELECT * FROM orders", "QUERY_REFUSED", None),
    ("PREPARE TRANSACTION 'x'", "QUERY_REFUSED", None),
    # maintenance
    ("VACUUM orders", "QUERY_REFUSED", None),
    ("ANALYZE orders", "QUERY_REFUSED", None),
    ("CHECKPOINT", "QUERY_REFUSED", None),
    ("EXPLAIN ANALYZE DELETE FROM orders", "QUERY_REFUSED", None),
    ("EXPLAIN (ANALYZE, FORMAT JSON) SELECT * FROM orders", "QUERY_REFUSED", None),
    ("EXPLAIN DELETE FROM orders", "QUERY_REFUSED", None),
    # past the guard: PostgreSQL's read-only transaction and the role's privileges stop these
    ("SELECT public.evil_writer()", "QUERY_FAILED", "25006"),
    ("SELECT public.evil_nextval()", "QUERY_FAILED", "25006"),
    ("SELECT public.evil_read_write()", "QUERY_FAILED", "25001"),
    ("SELECT public.evil_promote()", "QUERY_FAILED", "25006"),
    ("SELECT public.evil_unlock()", "QUERY_FAILED", "25001"),
    ("SELECT * FROM hidden", "QUERY_FAILED", "42501"),
    ("SELECT rolname, rolpassword FROM pg_authid", "QUERY_FAILED", "42501"),
]


def test_the_attack_corpus_is_large_enough() -> None:
    assert len(ATTACKS) >= 40
    assert len({sql for sql, _, _ in ATTACKS}) == len(ATTACKS)


async def test_every_attack_is_refused_and_changes_nothing(control_plane: ControlPlane, sandbox: Sandbox,
                                                           cluster: tuple[str, Path]) -> None:
    namespace, folder = cluster
    before = settled_state(sandbox)
    async with Client(server(control_plane, folder)) as mcp:
        for sql, code, sqlstate in ATTACKS:
            message = error(await query(mcp, namespace, sql), code)
            if sqlstate:
                assert f"SQLSTATE {sqlstate}" in message, (sql, message)
            assert settled_state(sandbox) == before, f"{sql!r} changed PostgreSQL"
        # The session state the attacks tried to change did not reach the next call (a fresh connection each).
        after = ok(await query(mcp, namespace, "SELECT current_setting('transaction_read_only'), "
                                               "current_setting('default_transaction_read_only'), "
                                               "current_setting('statement_timeout'), "
                                               "(SELECT count(*) FROM pg_listening_channels())"))
        assert after["rows"] == [["on", "on", "1s", 0]]
        first = ok(await query(mcp, namespace, "SELECT pg_backend_pid()"))["rows"]
        second = ok(await query(mcp, namespace, "SELECT pg_backend_pid()"))["rows"]
        assert first != second
    assert settled_state(sandbox) == before


async def test_literals_that_look_like_stacked_statements_stay_literals(
        control_plane: ControlPlane, sandbox: Sandbox, cluster: tuple[str, Path]) -> None:
    namespace, folder = cluster
    before = settled_state(sandbox)
    async with Client(server(control_plane, folder)) as mcp:
        for sql, value in [("SELECT '\\'' ; DELETE FROM orders; --' AS v", "\\' ; DELETE FROM orders; --"),
                           ("SELECT $a$ $$; DELETE FROM orders; $$ $a$ AS v", " $$; DELETE FROM orders; $$ "),
                           ("SELECT 1 AS v /* /* */ ; DELETE FROM orders; */", 1)]:
            assert ok(await query(mcp, namespace, sql))["rows"] == [[value]], sql
    assert settled_state(sandbox) == before


TYPED = ("SELECT '100%' AS pct, '{}' AS braces, 1.5::numeric AS n, '\\x01ff'::bytea AS b, interval '1 day' AS i,"
         " '{\"a\": 1}'::jsonb AS j, ARRAY[1, 2] AS a, now()::date AS d")
POSITIVE: list[tuple[str, str]] = [
    ("SELECT version()", "SELECT"),
    ("SELECT count(*) AS orders FROM orders", "SELECT"),
    ("SELECT id, note FROM orders WHERE id <= 3 ORDER BY id", "SELECT"),
    ("TABLE orders", "SELECT"),
    ("VALUES (1, 'a'), (2, 'b')", "SELECT"),
    ("WITH t AS (SELECT 1 AS x) SELECT x FROM t", "SELECT"),
    ("SELECT datname, numbackends, xact_commit FROM pg_stat_database", "SELECT"),
    ("SELECT pid, usename, state, wait_event_type, query FROM pg_stat_activity", "SELECT"),
    ("SELECT locktype, mode, granted FROM pg_locks", "SELECT"),
    ("SELECT pg_is_in_recovery()", "SELECT"),
    ("SELECT pg_size_pretty(pg_database_size(current_database()))", "SELECT"),
    ("SELECT relname, n_live_tup, n_dead_tup, last_autovacuum FROM pg_stat_user_tables", "SELECT"),
    ("SELECT indexrelname, idx_scan FROM pg_stat_user_indexes", "SELECT"),
    ("SELECT name, setting, unit FROM pg_settings WHERE name IN ('max_connections', 'shared_buffers')", "SELECT"),
    ("SELECT * FROM pg_stat_bgwriter", "SELECT"),
    ("SELECT count(*) FILTER (WHERE active) AS active_slots FROM pg_replication_slots", "SELECT"),
    (TYPED, "SELECT"),
    ("SHOW work_mem", "SHOW"),
    ("SHOW ALL", "SHOW"),
    ("EXPLAIN SELECT * FROM orders WHERE id = 3", "EXPLAIN"),
    ("EXPLAIN (FORMAT JSON, COSTS OFF) SELECT count(*) FROM orders", "EXPLAIN"),
]


async def test_useful_diagnostic_queries_keep_working(control_plane: ControlPlane, sandbox: Sandbox,
                                                      cluster: tuple[str, Path]) -> None:
    namespace, folder = cluster
    async with Client(server(control_plane, folder)) as mcp:
        for sql, kind in POSITIVE:
            data = ok(await query(mcp, namespace, sql))
            assert data["statement"] == kind and data["database"] == sandbox.database, sql
            assert data["rows"] and data["columns"], sql
        assert ok(await query(mcp, namespace, "SELECT count(*) FROM orders"))["rows"] == [[50]]
        typed = ok(await query(mcp, namespace, TYPED))
        assert typed["rows"][0][:7] == ["100%", "{}", "1.5", "\\x01ff", 86400.0, {"a": 1}, [1, 2]]
        assert [c["type"] for c in typed["columns"]][:3] == ["text", "text", "numeric"]
        limits = ok(await query(mcp, namespace, "SELECT current_setting('transaction_read_only'), "
                                                "current_setting('statement_timeout'), "
                                                "current_setting('lock_timeout')"))
        assert limits["rows"] == [["on", "1s", "1s"]]
        other = ok(await query(mcp, namespace, "SELECT current_database()", database="postgres"))
        assert other["rows"] == [["postgres"]] and other["database"] == "postgres"
        shown = await query(mcp, namespace, "SELECT id, note FROM orders WHERE id = 7")
        assert "order 7" in text(shown) and "1 row(s)" in text(shown)


CHECKS = ("long_running_queries", "blocking_locks", "connections_by_state", "database_sizes", "table_sizes",
          "index_usage", "replication", "replication_slots", "recovery_status", "changed_settings")


async def test_every_diagnostic_check_answers_with_named_fields(control_plane: ControlPlane, sandbox: Sandbox,
                                                                cluster: tuple[str, Path]) -> None:
    namespace, folder = cluster
    async with Client(server(control_plane, folder)) as mcp:
        found = {}
        for check in CHECKS:
            found[check] = ok(await mcp.call_tool("run_diagnostic_query", {
                "cluster_name": CLUSTER, "namespace": namespace, "check": check}))
            assert found[check]["check"] == check and found[check]["description"]
    assert any(r["database"] == sandbox.database and r["bytes"] > 0 for r in found["database_sizes"]["rows"])
    assert any(r["table"] == "orders" and r["live_rows"] >= 0 for r in found["table_sizes"]["rows"])
    assert any(r["index"] == "orders_pkey" and r["is_unique"] for r in found["index_usage"]["rows"])
    assert found["connections_by_state"]["rows"] and all(r["max_connections"] > 0
                                                        for r in found["connections_by_state"]["rows"])
    assert found["recovery_status"]["rows"] == [{"in_recovery": False, "replay_delay_seconds": None,
                                                 "receive_lsn": None, "replay_lsn": None}]
    assert all(r["source"] not in ("default", "client") for r in found["changed_settings"]["rows"])


async def test_blocking_locks_names_the_waiter_and_its_blocker(control_plane: ControlPlane, sandbox: Sandbox,
                                                               cluster: tuple[str, Path]) -> None:
    namespace, folder = cluster
    holder = sandbox.superuser()
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE public.orders IN ACCESS EXCLUSIVE MODE")
    holder_pid = holder.info.backend_pid

    def wait_for_lock() -> None:
        with sandbox.superuser() as waiter:
            waiter.execute("SELECT count(*) FROM public.orders")

    waiter = threading.Thread(target=wait_for_lock)
    waiter.start()
    try:
        # lock_timeout (1 s) fires before statement_timeout (3 s here).
        async with Client(server(control_plane, folder, sql_statement_timeout_ms=3000)) as mcp:
            deadline = time.monotonic() + 10
            while True:
                rows = ok(await mcp.call_tool("run_diagnostic_query", {
                    "cluster_name": CLUSTER, "namespace": namespace, "check": "blocking_locks"}))["rows"]
                if rows or time.monotonic() > deadline:
                    break
            assert any(r["blocking_pid"] == holder_pid and "orders" in r["waiting_query"] for r in rows), rows
            # A read of the locked table by the tool gives up after lock_timeout, with its SQLSTATE.
            started = time.monotonic()
            message = error(await query(mcp, namespace, "SELECT count(*) FROM orders"), "QUERY_FAILED")
            assert "SQLSTATE 55P03" in message and time.monotonic() - started < 5
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        waiter.join(10)


async def test_rows_bytes_and_time_are_capped(control_plane: ControlPlane, sandbox: Sandbox,
                                              cluster: tuple[str, Path]) -> None:
    namespace, folder = cluster
    async with Client(server(control_plane, folder, sql_max_bytes=5000)) as mcp:
        capped = ok(await query(mcp, namespace, "SELECT g FROM generate_series(1, 100000) AS g", max_rows=7))
        assert capped["rows"] == [[g] for g in range(1, 8)]
        assert (capped["truncated"], capped["truncated_by"], capped["row_count"]) == (True, "max_rows", 7)
        exact = ok(await query(mcp, namespace, "SELECT g FROM generate_series(1, 7) AS g", max_rows=7))
        assert (exact["truncated"], exact["row_count"]) == (False, 7)
        wide = await query(mcp, namespace, "SELECT repeat('x', 500) FROM generate_series(1, 100)", max_rows=1000)
        data = ok(wide)
        assert (data["truncated"], data["truncated_by"]) == (True, "max_bytes")
        assert 0 < data["row_count"] < 10 and "truncated by max_bytes" in text(wide)
        started = time.monotonic()
        message = error(await query(mcp, namespace, "SELECT count(*) FROM generate_series(1, 10000000000)"),
                        "QUERY_FAILED")
        assert "SQLSTATE 57014" in message and "statement_timeout" in message
        assert time.monotonic() - started < STATEMENT_TIMEOUT_MS / 1000 + 4
        too_many = await query(mcp, namespace, "SELECT 1", max_rows=1001)
        error(too_many, "INVALID_ARGUMENT")
    assert settled_state(sandbox)["open_sessions"] == [(0,)]


class AuditLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(json.loads(record.getMessage()))


async def test_one_audit_line_per_call_with_the_hash_never_the_sql_or_password(
        control_plane: ControlPlane, sandbox: Sandbox, cluster: tuple[str, Path]) -> None:
    namespace, folder = cluster
    lines = AuditLines()
    logger = logging.getLogger(audit.LOGGER_NAME)
    logger.addHandler(lines)
    logger.setLevel(logging.INFO)
    marker = f"marker_{secrets.token_hex(4)}"
    accepted, refused = f"SELECT '{marker}' AS m", f"DELETE FROM orders WHERE note = '{marker}'"
    try:
        async with Client(server(control_plane, folder)) as mcp:
            ok(await query(mcp, namespace, accepted))
            error(await query(mcp, namespace, refused), "QUERY_REFUSED")
            error(await query(mcp, namespace, "SELECT * FROM hidden"), "QUERY_FAILED")
    finally:
        logger.removeHandler(lines)
    mine = [e for e in lines.entries if e["tool"] == "run_readonly_query"]
    assert [e["verdict"] for e in mine] == ["ok", "QUERY_REFUSED", "QUERY_FAILED"]
    assert mine[0]["target"] == {"namespace": namespace, "cluster_name": CLUSTER}
    assert mine[0]["details"] == {"sql_sha256": hashlib.sha256(accepted.encode()).hexdigest(), "rows": 1,
                                  "truncated": False}
    assert mine[1]["details"] == {"sql_sha256": hashlib.sha256(refused.encode()).hexdigest(),
                                  "guard_rule": "statement_kind"}
    assert mine[2]["details"]["sqlstate"] == "42501"
    assert all(e["caller"] and e["duration_ms"] >= 0 for e in mine)
    trail = json.dumps(lines.entries)
    assert marker not in trail and sandbox.password not in trail


async def test_without_credentials_read_only_sql_is_not_enabled(control_plane: ControlPlane, k8s: Any,
                                                                namespace: str, tmp_path: Path) -> None:
    create_cluster(k8s, namespace, CLUSTER)
    async with Client(server(control_plane, tmp_path)) as mcp:
        message = error(await query(mcp, namespace, "SELECT 1"), "SQL_NOT_ENABLED")
        assert "spec.readOnlyQueries.enabled" in message and f"{namespace}/{CLUSTER}" in message
        message = error(await mcp.call_tool("run_diagnostic_query", {
            "cluster_name": CLUSTER, "namespace": namespace, "check": "database_sizes"}), "SQL_NOT_ENABLED")
        error(await mcp.call_tool("run_readonly_query", {"cluster_name": "pg-nowhere", "namespace": namespace,
                                                         "sql": "SELECT 1"}), "NOT_FOUND")
    async with Client(gateway_server(control_plane, sql_credentials_dir=tmp_path)) as default:
        error(await default.call_tool("run_readonly_query", {"cluster_name": CLUSTER, "namespace": namespace,
                                                             "sql": "SELECT 1"}), "NOT_FOUND")  # not offered


async def test_sslmode_and_endpoint_come_from_the_file_and_the_override(
        control_plane: ControlPlane, sandbox: Sandbox, cluster: tuple[str, Path]) -> None:
    namespace, folder = cluster
    path = folder / f"{namespace}.{CLUSTER}.json"
    async with Client(server(control_plane, folder)) as mcp:
        # The sandbox's PostgreSQL serves TLS: "require" is met; "verify-full" without the CA that signed the
        # server's certificate is not (the file is re-read on every call).
        path.write_text(json.dumps(sandbox.credentials(sslmode="require")))
        ok(await query(mcp, namespace, "SELECT 1"))
        path.write_text(json.dumps(sandbox.credentials(sslmode="verify-full")))
        message = error(await query(mcp, namespace, "SELECT 1"), "DATABASE_UNAVAILABLE")
        assert sandbox.password not in message
        path.write_text(json.dumps(sandbox.credentials(password="wrong")))
        message = error(await query(mcp, namespace, "SELECT 1"), "DATABASE_UNAVAILABLE")
        assert "password authentication failed" in message and '"wrong"' not in message
        path.write_text(json.dumps(sandbox.credentials(host=f"{CLUSTER}-rw.{namespace}.svc")))
        assert "-ro or -r" in error(await query(mcp, namespace, "SELECT 1"), "SQL_NOT_ENABLED")
    # The sandbox's Service names do not resolve here: the override gives libpq the address, the name stays.
    path.write_text(json.dumps(sandbox.credentials(host=f"{CLUSTER}-ro.{namespace}.svc", sslmode="disable")))
    override = f"{sandbox.postgres.host}:{sandbox.postgres.port}"
    async with Client(server(control_plane, folder, sql_endpoint_override=override)) as mcp:
        assert ok(await query(mcp, namespace, "SELECT current_user"))["rows"] == [[sandbox.role]]
    async with Client(server(control_plane, folder)) as mcp:
        error(await query(mcp, namespace, "SELECT current_user"), "DATABASE_UNAVAILABLE")
