"""cluster_changes for spec.nodeMaintenanceWindow: patched only when the request sets it, only what differs."""

from __future__ import annotations

from typing import Any

from cnpg_mcp_api.cluster_changes import ONLINE, cluster_changes

LIVE: dict[str, Any] = {"spec": {"instances": 3, "postgresql": {"parameters": {}}}}
BASE: dict[str, Any] = {"instances": 3, "parameters": {}}


def test_not_set_in_the_request_leaves_the_cluster_alone() -> None:
    live = {"spec": {**LIVE["spec"], "nodeMaintenanceWindow": {"inProgress": True, "reusePVC": True}}}
    assert "nodeMaintenanceWindow" not in cluster_changes(BASE, live).patch


def test_turning_maintenance_on_says_what_it_means() -> None:
    changes = cluster_changes({**BASE, "nodeMaintenanceWindow": {"inProgress": True, "reusePVC": False}}, LIVE)
    assert changes.patch == {"nodeMaintenanceWindow": {"inProgress": True, "reusePVC": False}}
    assert changes.effect == ONLINE and "NEW volume" in changes.changes[0].why


def test_only_the_fields_set_are_compared() -> None:
    live = {"spec": {**LIVE["spec"], "nodeMaintenanceWindow": {"inProgress": False, "reusePVC": True}}}
    assert not cluster_changes({**BASE, "nodeMaintenanceWindow": {"inProgress": False}}, live).changes
    on = cluster_changes({**BASE, "nodeMaintenanceWindow": {"inProgress": True}}, live)
    assert on.patch == {"nodeMaintenanceWindow": {"inProgress": True}} and "keeps its volume" in on.changes[0].why
