"""The tool registry: one filter over annotations, agent-readable descriptions, generated docs, coded errors."""

from __future__ import annotations

import anyio
import pytest
from kubernetes import client
from mcp import Client
from mcp.types import CallToolResult

from mcp_gateway import docgen, errors
from mcp_gateway.config import GatewayConfig, parse_args
from mcp_gateway.k8s import Kube
from mcp_gateway.registry import TOOLSETS, offered
from mcp_gateway.server import build_server
from mcp_gateway.tools.catalog import TOOLS

NAMES = {spec.name for spec in TOOLS}


def names(**options: object) -> set[str]:
    return {spec.name for spec in offered(TOOLS, **options)}  # type: ignore[arg-type]


def test_filter_defaults_to_every_tool_but_the_opt_in_toolsets() -> None:
    assert names() == NAMES - {"run_readonly_query"} and len(NAMES) == len(TOOLS) == 33
    assert names(toolsets=TOOLSETS) == NAMES


def test_read_only_offers_exactly_the_tools_annotated_read_only() -> None:
    assert names(read_only=True, toolsets=TOOLSETS) == {s.name for s in TOOLS if s.annotations.read_only_hint}
    assert names(read_only=True) == {"list_postgres_clusters", "get_cluster_status", "list_postgres_roles",
                                     "list_postgres_databases", "get_cluster_logs", "get_connection_info",
                                     "run_diagnostic_query", "list_postgres_backups", "list_postgres_poolers"}


def test_disable_destructive_drops_every_tool_annotated_destructive() -> None:
    kept = names(disable_destructive=True, toolsets=TOOLSETS)
    assert kept == {s.name for s in TOOLS if not s.annotations.destructive_hint}
    assert not kept & {"delete_postgres_cluster", "delete_postgres_role", "delete_postgres_database",
                       "scale_postgres_cluster", "update_postgres_role", "configure_postgres_backups",
                       "delete_postgres_backup_schedule"}
    assert {"create_postgres_cluster", "create_postgres_role", "create_postgres_database", "create_postgres_backup",
            "schedule_postgres_backup", "restore_postgres_cluster"} <= kept


def test_toolsets_select_and_combine_with_the_other_filters() -> None:
    assert names(toolsets=["roles"]) == {"list_postgres_roles", "create_postgres_role", "update_postgres_role",
                                         "delete_postgres_role"}
    assert names(toolsets=["clusters", "databases"], read_only=True) == {
        "list_postgres_clusters", "get_cluster_status", "get_connection_info", "list_postgres_databases"}
    assert names(toolsets=["diagnostics"]) == {"get_cluster_logs", "run_diagnostic_query"}
    assert names(toolsets=["sql"]) == {"run_readonly_query"}
    assert names(toolsets=["backups"], read_only=True) == {"list_postgres_backups"}
    assert names(toolsets=["operations"], disable_destructive=True) == {"reload_postgres_cluster"}
    assert {spec.toolset for spec in TOOLS} == set(TOOLSETS)


def test_toolsets_flag_is_parsed_and_checked() -> None:
    assert parse_args(["--toolsets", "roles, databases"]).toolsets == ("roles", "databases")
    assert parse_args([]).toolsets == ()
    with pytest.raises(SystemExit):
        parse_args(["--toolsets", "roles,backupz"])


def test_every_tool_has_explicit_annotations_a_title_and_documented_codes() -> None:
    for spec in TOOLS:
        hints = spec.annotations
        assert None not in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint,
                            hints.open_world_hint), spec.name
        assert spec.title and spec.toolset in TOOLSETS, spec.name
        assert set(spec.errors) <= set(errors.MEANINGS), spec.name
    assert set(errors.COMMON) <= set(errors.MEANINGS)


def test_descriptions_read_well_to_an_agent() -> None:
    for spec in TOOLS:
        assert "\n" not in spec.description and "  " not in spec.description, spec.name
        first_sentence = spec.description.split(". ")[0]
        assert first_sentence.startswith("Use "), (spec.name, first_sentence)


def test_generated_tool_docs_are_current() -> None:
    assert docgen.DOCS_PATH.read_text() == docgen.render(), \
        "docs/tools.md is stale: run `make tools-docs` (python -m mcp_gateway.docgen)"


def call(config: GatewayConfig, name: str, arguments: dict[str, object]) -> CallToolResult:
    server = build_server(config, Kube(client.ApiClient()))  # these calls fail before any API call

    async def run() -> CallToolResult:
        async with Client(server) as mcp:
            return await mcp.call_tool(name, arguments)

    return anyio.run(run)


def error_text(result: CallToolResult) -> str:
    assert result.is_error
    return "\n".join(getattr(c, "text", "") for c in result.content)


@pytest.mark.parametrize(("arguments", "field"), [
    ({"name": "Not_A_Name"}, "name"),                      # pattern mismatch
    ({"name": "db", "instances": "three"}, "instances"),   # wrong type
    ({"name": "db", "instances": 11}, "instances"),        # out of range
    ({}, "name"),                                          # missing
])
def test_sdk_validation_errors_carry_invalid_argument(arguments: dict[str, object], field: str) -> None:
    message = error_text(call(GatewayConfig(), "create_postgres_cluster", arguments))
    assert "[INVALID_ARGUMENT]" in message and field in message, message
    assert "validation error for" not in message  # not the SDK's raw pydantic text


def test_a_tool_not_offered_is_a_coded_not_found() -> None:
    message = error_text(call(GatewayConfig(read_only=True), "create_postgres_cluster", {"name": "db"}))
    assert "[NOT_FOUND]" in message and "--read-only" in message, message


def test_handlers_are_module_level_functions_callable_on_their_own() -> None:
    from mcp.server.mcpserver.exceptions import ToolError  # noqa: PLC0415

    from mcp_gateway.tools import roles  # noqa: PLC0415

    # No gateway, context or server needed for a check that comes before any API call.
    with pytest.raises(ToolError, match=r"\[PASSWORD_NOT_ACCEPTED\]"):
        anyio.run(lambda: roles.update_postgres_role(
            None, "db", "app", password="s3cret", ctx=None, acknowledgement=None))  # type: ignore[arg-type]


def test_the_gateway_parameter_is_never_published() -> None:
    for listed in docgen.published().values():
        assert "gw" not in listed["inputSchema"]["properties"], listed["name"]
