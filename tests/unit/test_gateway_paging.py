"""The pure page helper behind bounded list answers (mcp_gateway/tools/paging.py)."""

from __future__ import annotations

import pytest
from mcp.server.mcpserver.exceptions import ToolError

from mcp_gateway.tools.paging import page, tally


def name(item: dict[str, str]) -> str:
    return item["name"]


ITEMS = [{"name": n, "phase": p} for n, p in (("c", "ok"), ("a", "ok"), ("b", "bad"), ("d", "ok"))]


def test_first_page_is_name_ordered_with_the_next_token() -> None:
    first = page(ITEMS, name, 2, None)
    assert [i["name"] for i in first.items] == ["a", "b"] and first.total == 4 and first.next == "b"


def test_next_page_starts_after_the_token_and_the_last_has_none() -> None:
    rest = page(ITEMS, name, 2, "b")
    assert [i["name"] for i in rest.items] == ["c", "d"] and rest.next is None


def test_an_item_removed_between_pages_does_not_shift_the_next_page() -> None:
    without_a = [i for i in ITEMS if i["name"] != "a"]
    assert [i["name"] for i in page(without_a, name, 2, "b").items] == ["c", "d"]


@pytest.mark.parametrize("token", ["", "a b", " b"])
def test_a_token_no_answer_gave_is_refused(token: str) -> None:
    with pytest.raises(ToolError, match="INVALID_ARGUMENT"):
        page(ITEMS, name, 2, token)


def test_tally_counts_every_item_most_frequent_first() -> None:
    assert tally(ITEMS, "phase") == {"ok": 3, "bad": 1}
