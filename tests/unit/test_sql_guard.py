"""The read-only SQL guard (pglast: PostgreSQL's own parser), the credentials file, the executor's pure parts,
and how the `sql` toolset is offered. Pure: no PostgreSQL, no Kubernetes."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from mcp_gateway import audit, registry
from mcp_gateway.config import DEFAULT_SQL_CREDENTIALS_DIR, GatewayConfig, config_problem, parse_args
from mcp_gateway.sql import checks, credentials, executor, guard
from mcp_gateway.tools.catalog import TOOLS

ACCEPTED = [
    ("select 1", "SELECT"),
    ("SELECT count(*) FROM pg_stat_activity WHERE state = 'active'", "SELECT"),
    ("with t as (select 1 as x) select x from t", "SELECT"),
    ("with recursive r(n) as (select 1 union all select n + 1 from r where n < 3) select * from r", "SELECT"),
    ("values (1, 'a'), (2, 'b')", "SELECT"),
    ("table pg_class", "SELECT"),
    ("select * from pg_locks l join pg_stat_activity a using (pid)", "SELECT"),
    ("select 1 union select 2 except select 3", "SELECT"),
    ("explain select * from pg_class", "EXPLAIN"),
    ("explain (costs off, format json) select 1", "EXPLAIN"),
    ("explain verbose select 1", "EXPLAIN"),
    ("show work_mem", "SHOW"),
    ("show all", "SHOW"),
    ("select 1 /* /* nested */ ; delete from t; */", "SELECT"),  # the delete is inside the comment
    ("select $a$ $$; delete from t; $$ $a$", "SELECT"),  # one dollar-quoted literal
    ("select '\\'' ; delete from t; --'", "SELECT"),  # one standard-conforming literal
    ("select pg_catalog.current_setting('work_mem'), pg_size_pretty(pg_database_size(current_database()))",
     "SELECT"),
    ("  select 1 ;  ", "SELECT"),
]

REFUSED = [
    # statement stacking and transaction control
    ("select 1; commit", "statement_count"),
    ("commit; delete from t", "statement_count"),
    ("end; delete from t", "statement_count"),
    ("rollback", "statement_kind"),
    ("begin read write", "statement_kind"),
    ("set transaction read write", "statement_kind"),
    ("start transaction read write", "statement_kind"),
    ("select $q$x$q$; delete from t", "statement_count"),
    ("select 1 -- comment\n; delete from t", "statement_count"),
    ("/* /* */ */ delete from t", "statement_kind"),
    ("select E'\\''; delete from t; --'", "statement_count"),
    ("select 1\x00; delete from t", "nul_byte"),
    ("", "statement_count"),
    (";", "statement_count"),
    ("-- nothing", "statement_count"),
    ("selec 1", "parse_error"),
    ("select 'unterminated", "parse_error"),
    # session state
    ("set default_transaction_read_only = off", "statement_kind"),
    ("reset all", "statement_kind"),
    ("select set_config('default_transaction_read_only', 'off', false)", "denied_function"),
    ("select pg_catalog.set_config('a.b', 'c', false)", "denied_function"),
    ('select "set_config"(\'a.b\', \'c\', false)', "denied_function"),
    ("select U&\"\\0073et_config\"('a.b', 'c', false)", "denied_function"),
    ("select PG_CATALOG.SET_CONFIG('a.b', 'c', false)", "denied_function"),
    # writes and DDL, also hidden in CTEs or subqueries
    ("insert into t values (1)", "statement_kind"),
    ("update t set a = 1", "statement_kind"),
    ("delete from t", "statement_kind"),
    ("merge into t using s on t.id = s.id when matched then delete", "statement_kind"),
    ("truncate t", "statement_kind"),
    ("with d as (delete from t returning *) select * from d", "nested_statement"),
    ("with u as (update t set a = 1 returning 1) select 1", "nested_statement"),
    ("with i as (insert into t values (1) returning 1) select 1", "nested_statement"),
    ("select * into new_table from t", "select_into"),
    ("create table t2 as select 1", "statement_kind"),
    ("select * from t for update", "locking_clause"),
    ("select * from t for share nowait", "locking_clause"),
    ("select * from (select * from t for no key update) s", "locking_clause"),
    ("do $$ begin delete from t; end $$", "statement_kind"),
    ("call p()", "statement_kind"),
    ("create function f() returns int language sql as 'select 1'", "statement_kind"),
    ("alter role current_user superuser", "statement_kind"),
    ("alter system set work_mem = '1GB'", "statement_kind"),
    ("grant select on t to public", "statement_kind"),
    ("copy (select 1) to program 'id'", "statement_kind"),
    ("copy t from '/etc/passwd'", "statement_kind"),
    ("prepare p as delete from t", "statement_kind"),
    ("execute p", "statement_kind"),
    ("declare c cursor with hold for select 1", "statement_kind"),
    ("vacuum t", "statement_kind"),
    ("analyze t", "statement_kind"),
    ("notify ch, 'x'", "statement_kind"),
    ("listen ch", "statement_kind"),
    ("lock table t", "statement_kind"),
    ("checkpoint", "statement_kind"),
    ("discard all", "statement_kind"),
    ("load 'plpgsql'", "statement_kind"),
    # EXPLAIN runs nothing only without ANALYZE, and only of a SELECT
    ("explain analyze select 1", "explain_analyze"),
    ("explain (analyze false) select 1", "explain_analyze"),
    ("explain (analyse, format json) delete from t", "explain_analyze"),
    ("explain delete from t", "statement_kind"),
    ("explain with d as (delete from t returning 1) select 1", "nested_statement"),
    # functions with side effects or escape hatches, wherever they appear
    ("select lo_import('/etc/passwd')", "denied_function"),
    ("select lo_from_bytea(0, 'x')", "denied_function"),
    ("select lowrite(0, 'x')", "denied_function"),
    ("select * from dblink('host=x', 'delete from t') as r(a int)", "denied_function"),
    ("select public.dblink_exec('delete from t')", "denied_function"),
    ("select nextval('s')", "denied_function"),
    ("select (select setval('s', 1))", "denied_function"),
    ("select * from t where id = (select nextval('s'))", "denied_function"),
    ("values (pg_advisory_lock(1))", "denied_function"),
    ("select pg_try_advisory_xact_lock(1)", "denied_function"),
    ("select pg_notify('ch', 'x')", "denied_function"),
    ("select pg_terminate_backend(1)", "denied_function"),
    ("select pg_cancel_backend(1)", "denied_function"),
    ("select pg_reload_conf()", "denied_function"),
    ("select pg_rotate_logfile()", "denied_function"),
    ("select pg_sleep(10)", "denied_function"),
    ("select * from pg_sleep_for('1 minute')", "denied_function"),
    ("select pg_catalog.pg_sleep_until(now() + interval '1 minute')", "denied_function"),
    ("select query_to_xml('delete from t returning 1', true, false, '')", "denied_function"),
    ("select table_to_xml('t', true, false, '')", "denied_function"),
    ("select * from ts_stat('select to_tsvector(a) from t')", "denied_function"),
    ("select pg_read_file('/etc/passwd')", "denied_function"),
    ("select pg_ls_dir('.')", "denied_function"),
    ("select pg_stat_file('postgresql.conf')", "denied_function"),
    ("select txid_current()", "denied_function"),
    ("select pg_current_xact_id()", "denied_function"),
    ("select pg_create_logical_replication_slot('s', 'pgoutput')", "denied_function"),
    ("select * from pg_logical_slot_get_changes('s', null, null)", "denied_function"),
    ("select pg_stat_reset()", "denied_function"),
    ("select count(*) filter (where lo_unlink(1) = 1) from t", "denied_function"),
]


@pytest.mark.parametrize(("sql", "kind"), ACCEPTED)
def test_the_guard_accepts_one_read_only_statement(sql: str, kind: str) -> None:
    assert guard.check(sql).kind == kind


@pytest.mark.parametrize(("sql", "rule"), REFUSED)
def test_the_guard_refuses_with_the_rule_it_breaks(sql: str, rule: str) -> None:
    with pytest.raises(guard.Refusal) as refused:
        guard.check(sql)
    assert refused.value.rule == rule, refused.value.reason


def test_the_guard_names_the_functions_a_statement_calls() -> None:
    accepted = guard.check("select pg_catalog.now(), lower(x) from (select 'A' as x) s")
    assert accepted.functions == ("pg_catalog.now", "lower")


def test_the_deny_list_matches_names_whatever_the_schema_or_case() -> None:
    for name in ("lo_import", "evil.lo_import", "PG_SLEEP", "public.dblink", "dblink_connect_u", "pg_catalog.nextval"):
        assert guard.denied_function(name), name
    for name in ("now", "pg_catalog.pg_size_pretty", "lower", "pg_stat_get_activity", "current_setting",
                 "pg_blocking_pids", "pg_wal_lsn_diff"):
        assert not guard.denied_function(name), name


def test_too_long_sql_is_refused_before_parsing() -> None:
    with pytest.raises(guard.Refusal) as refused:
        guard.check("select 1" + " " * guard.MAX_SQL_CHARS)
    assert refused.value.rule == "too_long"


@pytest.mark.parametrize("check", checks.CHECKS, ids=lambda c: c.name)
def test_every_diagnostic_check_passes_the_guard(check: checks.Check) -> None:
    assert guard.check(check.sql).kind == "SELECT"


def test_the_diagnostic_tool_offers_exactly_the_defined_checks() -> None:
    spec = next(s for s in TOOLS if s.name == "run_diagnostic_query")
    from mcp_gateway.tools.sql import CheckName  # noqa: PLC0415
    assert set(CheckName.__args__) == set(checks.BY_NAME)  # type: ignore[attr-defined]
    assert spec.toolset == "diagnostics"


# --- credentials -------------------------------------------------------------------------------------------
GOOD = {"host": "pg-ro.team.svc", "port": 5432, "dbname": "app", "user": "cnpg_mcp_ro", "password": "pw-SECRET",
        "sslmode": "verify-full", "sslrootcert": "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n"}


def test_missing_credentials_say_how_to_enable_read_only_sql(tmp_path: Path) -> None:
    with pytest.raises(credentials.NotEnabled) as missing:
        credentials.load(tmp_path, "team", "pg")
    assert "spec.readOnlyQueries.enabled" in str(missing.value) and "team/pg" in str(missing.value)


def test_credentials_are_read_from_the_cluster_file_on_every_call(tmp_path: Path) -> None:
    path = credentials.path_for(tmp_path, "team", "pg")
    assert path.name == "team.pg.json"
    path.write_text(json.dumps(GOOD))
    assert credentials.load(tmp_path, "team", "pg").user == "cnpg_mcp_ro"
    path.write_text(json.dumps(GOOD | {"user": "rotated"}))  # the kubelet updated the mounted Secret
    loaded = credentials.load(tmp_path, "team", "pg")
    assert loaded.user == "rotated" and "pw-SECRET" not in repr(loaded)


@pytest.mark.parametrize(("document", "problem"), [
    ("not json", "not valid JSON"), ("[]", "not a JSON object"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "password"}), "lack password"),
    (json.dumps(GOOD | {"sslmode": "sometimes"}), "unknown sslmode"),
    (json.dumps(GOOD | {"port": "x"}), "port"),
    (json.dumps(GOOD | {"host": "pg-rw.team.svc"}), "primary"),
])
def test_unusable_credentials_are_named_without_their_values(document: str, problem: str) -> None:
    with pytest.raises(credentials.Unusable) as unusable:
        credentials.parse(document, "team/pg", "pg")
    assert problem in str(unusable.value) and "pw-SECRET" not in str(unusable.value)


def test_conninfo_carries_the_limits_as_startup_options_and_sslmode_from_the_file() -> None:
    login = credentials.parse(json.dumps(GOOD), "team/pg", "pg")
    options = executor.Limits(statement_timeout_ms=1500, lock_timeout_ms=300).startup_options()
    params = credentials.conninfo(login, database=None, options=options, connect_timeout=5, rootcert_path="/x/ca")
    assert params["options"] == ("-c default_transaction_read_only=on -c statement_timeout=1500 -c lock_timeout=300 "
                                 "-c idle_in_transaction_session_timeout=10000 -c standard_conforming_strings=on")
    assert (params["host"], params["sslmode"], params["sslrootcert"], params["dbname"]) == (
        "pg-ro.team.svc", "verify-full", "/x/ca", "app")
    assert "hostaddr" not in params
    other = credentials.conninfo(login, database="sales", options="", connect_timeout=5)
    assert other["dbname"] == "sales" and "sslrootcert" not in other


def test_the_endpoint_override_keeps_the_host_for_certificate_verification() -> None:
    login = credentials.parse(json.dumps(GOOD), "team/pg", "pg")
    params = credentials.conninfo(login, database=None, options="", connect_timeout=5,
                                  endpoint_override="127.0.0.1:15432")
    assert (params["host"], params["hostaddr"], params["port"]) == ("pg-ro.team.svc", "127.0.0.1", 15432)
    assert credentials.conninfo(login, database=None, options="", connect_timeout=5,
                                endpoint_override="localhost:1")["hostaddr"] in ("127.0.0.1", "::1")
    assert credentials.parse_endpoint("[::1]:5432") == ("::1", 5432)
    for bad in ("nohost", ":5432", "h:0", "h:port"):
        with pytest.raises(ValueError, match="HOST:PORT"):
            credentials.parse_endpoint(bad)


def test_the_ca_certificate_is_written_to_a_private_file_removed_afterwards() -> None:
    login = credentials.parse(json.dumps(GOOD), "team/pg", "pg")
    with credentials.rootcert_file(login) as path:
        assert path is not None
        assert Path(path).read_text() == GOOD["sslrootcert"]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert stat.S_IMODE(os.stat(Path(path).parent).st_mode) == 0o700
    assert not Path(path).exists() and not Path(path).parent.exists()
    with credentials.rootcert_file(credentials.parse(json.dumps(GOOD | {"sslrootcert": ""}), "t", "pg")) as none:
        assert none is None


def test_values_become_json() -> None:
    import datetime as dt  # noqa: PLC0415
    import decimal  # noqa: PLC0415
    values = [None, True, 3, 1.5, float("nan"), decimal.Decimal("1.10"), dt.date(2026, 1, 2),
              dt.timedelta(minutes=1), b"\x01\xff", [1, decimal.Decimal(2)], {"a": dt.date(2026, 1, 2)}, object]
    converted = [executor.jsonable(v) for v in values]
    assert converted[:11] == [None, True, 3, 1.5, "nan", "1.10", "2026-01-02", 60.0, "\\x01ff", [1, "2"],
                              {"a": "2026-01-02"}]
    json.dumps(converted)


# --- configuration and toolsets ------------------------------------------------------------------------------
def test_the_sql_toolset_is_offered_only_when_named() -> None:
    default = {s.name for s in registry.offered(TOOLS)}
    assert "run_readonly_query" not in default and "run_diagnostic_query" in default
    named = {s.name for s in registry.offered(TOOLS, toolsets=("sql",))}
    assert named == {"run_readonly_query"}
    read_only = {s.name for s in registry.offered(TOOLS, toolsets=("sql", "diagnostics"), read_only=True)}
    assert {"run_readonly_query", "run_diagnostic_query"} <= read_only
    for name in ("run_readonly_query", "run_diagnostic_query"):
        spec = next(s for s in TOOLS if s.name == name)
        assert spec.annotations.read_only_hint and spec.annotations.open_world_hint
        assert not spec.annotations.destructive_hint


def test_sql_flags_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert parse_args([]).sql_credentials_dir == DEFAULT_SQL_CREDENTIALS_DIR
    monkeypatch.setenv("CNPG_MCP_SQL_CREDENTIALS_DIR", str(tmp_path))
    assert parse_args([]).sql_credentials_dir == tmp_path
    config = parse_args(["--toolsets", "sql,diagnostics", "--sql-credentials-dir", "/elsewhere",
                         "--sql-endpoint-override", "127.0.0.1:6432", "--sql-statement-timeout-ms", "2000"])
    assert (config.toolsets, config.sql_credentials_dir, config.sql_endpoint_override,
            config.sql_statement_timeout_ms) == (("sql", "diagnostics"), Path("/elsewhere"), "127.0.0.1:6432", 2000)
    assert "HOST:PORT" in (config_problem(GatewayConfig(sql_endpoint_override="nope")) or "")
    assert config_problem(GatewayConfig(sql_statement_timeout_ms=10)) is not None


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append(json.loads(record.getMessage()))


def test_details_noted_during_a_call_reach_its_one_audit_line() -> None:
    audit.note(ignored=True)  # outside a call: nothing collects it
    token = audit.begin()
    audit.note(sql_sha256="ab" * 32, rows=3)
    details = audit.finish(token)
    assert details == {"sql_sha256": "ab" * 32, "rows": 3}
    entry = json.loads(audit.line(tool="run_readonly_query", caller="u", impersonated=None,
                                  target={"namespace": "n", "cluster_name": "pg"}, verdict="ok", seconds=0.01,
                                  details=details))
    assert entry["details"] == details and entry["target"]["cluster_name"] == "pg"
    assert "details" not in json.loads(audit.line(tool="t", caller=None, impersonated=None, target={},
                                                  verdict="ok", seconds=0))
