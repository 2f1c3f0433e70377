"""Collected last: every generated password (read as admin) is searched in everything the suite saw —
tool outputs, intent statuses, Events, the gateway's log records and the operator logs. Zero hits."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Intents, OperatorProcess
from tests.reliability.conftest import Ledger, McpClients, Row
from tests.reliability.helpers import CLUSTER, ROLE


def _operator_logs(tmp_path_factory: pytest.TempPathFactory, ledger: Ledger) -> set[Path]:
    """The session operator's log and every extra replica's (operator_factory writes operator-N.log)."""
    found = set(ledger.log_files)
    found |= set(tmp_path_factory.getbasetemp().rglob("*operator*.log"))
    return {path for path in found if path.is_file()}


def test_no_generated_password_anywhere(
    operator: OperatorProcess, cnpg_simulator: Any, k8s: Any, namespace: str, intents: Intents,
    mcp_clients: McpClients, ledger: Ledger, report: list[Row], tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # a workload of its own, so the scan means something even when this file runs alone
    cluster = f"leak-{secrets.token_hex(2)}"
    intents.create(CLUSTER, namespace, cluster, {"instances": 1})
    intents.wait_ready(CLUSTER, namespace, cluster)
    session = mcp_clients.open()
    role = f"leak_{secrets.token_hex(2)}"
    for tool, arguments in (
        ("create_postgres_role", {"cluster_name": cluster, "role_name": role}),
        ("list_postgres_roles", {"cluster_name": cluster, "format": "json"}),
        ("get_cluster_status", {"name": cluster, "detail_level": "detailed"}),
        ("update_postgres_role", {"cluster_name": cluster, "role_name": role, "reset_password": True}),
    ):
        result = mcp_clients.call(session, tool, {"namespace": namespace, **arguments})
        assert not result.is_error, result.content
        if tool == "create_postgres_role":
            intents.wait_ready(ROLE, namespace, f"{cluster}-{role.replace('_', '-')}")
    ledger.harvest(k8s, namespace)

    logs = _operator_logs(tmp_path_factory, ledger)
    haystacks = [*ledger.texts, *((f"log {path.name}", path.read_text(errors="replace")) for path in logs)]
    hits = [f"password of {secret} in {where}" for secret, password in ledger.passwords.items()
            for where, text in haystacks if password in text]
    scanned = sum(len(text) for _, text in haystacks)

    report.append(Row(
        "secrets never leak",
        f"{len(ledger.passwords)} generated passwords vs {len(ledger.texts)} tool outputs/statuses/Events/gateway "
        f"log records and {len(logs)} operator logs ({scanned / 1e6:.1f} MB)",
        "everything above", "0 hits", f"{len(hits)} hits",
    ))
    assert ledger.passwords, "no password was harvested: nothing to search for"
    assert not hits, hits[:5]
