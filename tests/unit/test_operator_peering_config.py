"""The operator's peering options: standalone unless asked, distinct priorities, older replica first."""

from __future__ import annotations

import time

import pytest

from cnpg_mcp_operator.config import DEFAULT_PEERING_LIFETIME, parse_args


def test_standalone_unless_a_peering_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNPG_MCP_PEERING", raising=False)
    assert parse_args(["-A"]).peering is None
    config = parse_args(["-A", "--peering=cnpg-mcp-operator"])
    assert config.peering == "cnpg-mcp-operator" and config.peering_lifetime == DEFAULT_PEERING_LIFETIME
    monkeypatch.setenv("CNPG_MCP_PEERING", "from-env")
    assert parse_args(["-A"]).peering == "from-env"
    assert parse_args(["-A", "--standalone"]).peering is None  # the single-process dev mode


def test_a_later_replica_has_a_lower_priority_so_the_active_one_is_never_preempted() -> None:
    first = parse_args(["-A", "--peering=p"]).peering_priority
    time.sleep(0.002)
    second = parse_args(["-A", "--peering=p"]).peering_priority
    assert first > second  # Kopf pauses the lower priority: the newcomer stands by
    assert abs(second) < 2**53  # exact as a JSON number in the peering object
    assert parse_args(["-A", "--peering=p", "--peering-priority=5"]).peering_priority == 5


def test_lifetime_must_leave_room_for_keepalives() -> None:
    with pytest.raises(SystemExit):
        parse_args(["-A", "--peering=p", "--peering-lifetime=1"])
