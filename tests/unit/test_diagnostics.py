"""Pure parts of the diagnostics tools: CNPG log lines, filters, bounds, redaction; connection details."""

from __future__ import annotations

import json
from typing import Any

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from mcp_gateway.tools import logview
from mcp_gateway.tools.diagnostics import connection_info


def line(ts: str, msg: str, *, level: str = "info", logger: str = "instance-manager", **extra: Any) -> str:
    return json.dumps({"level": level, "ts": ts, "logger": logger, "msg": msg, "logging_pod": "pg-1", **extra})


def record(ts: str, severity: str, message: str, level: str) -> str:
    return line(ts, "record", level=level, logger="postgres",
                record={"error_severity": severity, "message": message})


def test_cnpg_lines_parse_into_time_level_logger_message() -> None:
    text = "\n".join([
        line("2026-01-01T00:00:01.000000Z", "Instance is ready"),
        record("2026-01-01T00:00:02.000000Z", "FATAL", 'password authentication failed for user "x"', "error"),
        "not json at all",
    ])
    entries = logview.parse("pg-1", text)
    assert entries[0] == {"pod": "pg-1", "time": "2026-01-01T00:00:01.000000Z", "level": "info",
                          "logger": "instance-manager", "message": "Instance is ready"}
    assert entries[1]["message"] == 'FATAL: password authentication failed for user "x"'
    assert (entries[1]["level"], entries[1]["logger"]) == ("error", "postgres")
    assert entries[2] == {"pod": "pg-1", "time": None, "level": None, "logger": None, "message": "not json at all"}


@pytest.mark.parametrize("message", [
    "ALTER ROLE app PASSWORD 'hunter2'",
    "alter role app with password 'hun''ter2' valid until 'infinity'",
    "connecting to host=pg-rw password=hunter2 dbname=app",
    "dial postgresql://app:hunter2@pg-rw:5432/app",
])
def test_passwords_in_logged_statements_are_redacted(message: str) -> None:
    entry = logview.parse_line("pg-1", record("2026-01-01T00:00:00Z", "LOG", message, "info"))
    assert "hunter2" not in entry["message"] and "ter2" not in entry["message"]
    assert logview.REDACTED in entry["message"]


def test_level_and_text_filters() -> None:
    entries = logview.parse("pg-1", "\n".join([
        line("t1", "checkpoint complete", level="debug"),
        line("t2", "Instance is ready"),
        line("t3", "archive command failed", level="warning"),
        record("t4", "ERROR", "relation missing", "error"),
    ]))
    assert [e["time"] for e in entries if logview.keep(e, min_level="warning", contains=None)] == ["t3", "t4"]
    assert [e["time"] for e in entries if logview.keep(e, min_level=None, contains="READY")] == ["t2"]
    assert [e["time"] for e in entries if logview.keep(e, min_level="error", contains="archive")] == []


def test_bounded_keeps_the_newest_lines_in_time_order_and_counts_the_rest() -> None:
    entries = [logview.parse_line(pod, line(f"2026-01-01T00:00:{second:02d}.0Z", f"m{second}"))
               for pod, second in (("pg-2", 3), ("pg-1", 1), ("pg-1", 4), ("pg-2", 2))]
    shown, omitted = logview.bounded(entries, max_lines=3, max_bytes=10_000)
    assert [e["message"] for e in shown] == ["m2", "m3", "m4"] and omitted == 1
    one_line = len(logview.entry_text(shown[-1]).encode()) + 1
    shown, omitted = logview.bounded(entries, max_lines=10, max_bytes=one_line * 2)
    assert [e["message"] for e in shown] == ["m3", "m4"] and omitted == 2


def test_a_long_message_is_clipped() -> None:
    entry = logview.parse_line("pg-1", line("t", "x" * 10_000))
    assert len(entry["message"]) < logview.MESSAGE_LIMIT + 20 and entry["message"].endswith("(clipped)")


def cluster(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "pg", "namespace": "prod"}, "spec": {"instances": 3, **spec}, "status": {}}


def test_connection_info_for_the_application_owner() -> None:
    info = connection_info(cluster(), [], role=None, database=None)
    assert [s["name"] for s in info["services"]] == ["pg-rw", "pg-ro", "pg-r"]
    assert (info["user"], info["database"], info["password_secret"]) == ("app", "app", "pg-app")
    assert info["password_command"] == "kubectl get secret pg-app -n prod -o jsonpath='{.data.password}' | base64 -d"
    assert info["uri"] == "postgresql://app@pg-rw.prod.svc:5432/app?sslmode=verify-full&sslrootcert=pg-ca.crt"
    assert info["ca_secret"] == "pg-ca" and "{.data.ca\\.crt}" in info["ca_command"]
    assert "password" not in info["uri"]


def test_connection_info_follows_the_cluster_spec_and_roles() -> None:
    spec = {"bootstrap": {"initdb": {"database": "shop", "owner": "shopper", "secret": {"name": "shop-creds"}}},
            "managed": {"services": {"disabledDefaultServices": ["ro", "r"],
                                     "additional": [{"selectorType": "rw", "serviceTemplate": {
                                         "metadata": {"name": "pg-lb"}}}]},
                        "roles": [{"name": "reporter", "login": True, "passwordSecret": {"name": "reporter-pw"}}]}}
    owner = connection_info(cluster(**spec), [], role=None, database=None)
    assert (owner["user"], owner["database"], owner["password_secret"]) == ("shopper", "shop", "shop-creds")
    assert [s["name"] for s in owner["services"]] == ["pg-rw", "pg-lb"]
    reporter = connection_info(cluster(**spec), [], role="reporter", database="other")
    assert (reporter["password_secret"], reporter["database"]) == ("reporter-pw", "other")
    request = {"metadata": {"name": "pg-analyst"}, "spec": {"cluster": "pg", "roleName": "analyst"},
               "status": {"secretName": "cnpg-pg-user-analyst"}}
    analyst = connection_info(cluster(), [request], role="analyst", database=None)
    assert analyst["password_secret"] == "cnpg-pg-user-analyst"
    assert analyst["role_declared_in"] == "PgRoleRequest pg-analyst"
    with pytest.raises(ToolError, match=r"\[NOT_FOUND\] role 'ghost'"):
        connection_info(cluster(), [], role="ghost", database=None)


def test_connection_info_names_the_ca_secret_cnpg_reports() -> None:
    reported = cluster()
    reported["status"] = {"certificates": {"serverCASecret": "corp-ca", "expirations": {}}}
    assert connection_info(reported, [], role=None, database=None)["ca_secret"] == "corp-ca"
