"""A re-list must not forget the gateway's own write that the list did not see yet (read-your-writes).

Seen at full scale (conflicting writers): delete_postgres_role answered [NOT_FOUND] right after its own
create, while a mirror re-listed after an interrupted watch: the listing, taken just before the create,
replaced the mirror wholesale and dropped the create the gateway had folded in.
"""

from __future__ import annotations

from typing import Any

from mcp_gateway.watch_cache import merge_listing


def obj(name: str, version: int) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": str(version)}}


def test_an_object_written_after_the_list_snapshot_survives_the_relist() -> None:
    before = {"mine": obj("mine", 12), "old": obj("old", 5)}
    merged = merge_listing(before, {"old": obj("old", 5)}, list_version=10)
    assert merged["mine"]["metadata"]["resourceVersion"] == "12"


def test_an_object_gone_from_the_list_is_dropped_when_the_list_is_newer() -> None:
    before = {"gone": obj("gone", 7), "kept": obj("kept", 3)}
    merged = merge_listing(before, {"kept": obj("kept", 9)}, list_version=10)
    assert set(merged) == {"kept"} and merged["kept"]["metadata"]["resourceVersion"] == "9"


def test_a_newer_version_than_the_list_s_wins() -> None:
    before = {"x": obj("x", 15)}
    merged = merge_listing(before, {"x": obj("x", 8)}, list_version=10)
    assert merged["x"]["metadata"]["resourceVersion"] == "15"
