"""Bounded list answers: one page of items in name order, a summary of all of them, and a continue token.

The token is the last name of the page (Kubernetes' object names sort and never contain a space);
the next page starts after it, so a page stays correct when items are added or removed in between.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from pydantic import Field

from mcp_gateway import errors

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
T = TypeVar("T")

Limit = Annotated[int, Field(ge=1, le=MAX_LIMIT, description=(
    f"Most items in one answer (default {DEFAULT_LIMIT}, at most {MAX_LIMIT}); "
    "the answer's 'continue' gives the next page."))]
# The parameter is `continue`, like Kubernetes' list continuation (a Python keyword, hence the alias).
Continue = Annotated[str | None, Field(alias="continue", max_length=253, description=(
    "The 'continue' value of the previous answer, to get the next page; omit for the first page."))]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    next: str | None  # the token of the next page, None on the last one


def page(items: Sequence[T], name: Callable[[T], str], limit: int, after: str | None) -> Page[T]:
    """The `limit` items (ordered by name) that follow the token `after`."""
    if after is not None and (not after or any(c.isspace() for c in after)):
        raise errors.tool_error(errors.INVALID_ARGUMENT, f"continue {after!r} is not a value a list answer gave; "
                                                         "omit it to start from the first page")
    ordered = sorted(items, key=name)
    remaining = [item for item in ordered if after is None or name(item) > after]
    shown = remaining[:limit]
    more = len(remaining) > limit
    return Page(shown, len(ordered), name(shown[-1]) if more and shown else None)


def tally(items: Sequence[Mapping[str, Any]], key: str) -> dict[str, int]:
    """How many items have each value of `key` (most frequent first): the summary of a whole list."""
    return dict(Counter(str(item.get(key)) for item in items).most_common())


def paged(data: dict[str, Any], key: str, entries: Sequence[Mapping[str, Any]], by: str, limit: int,
          after: str | None) -> Page[Mapping[str, Any]]:
    """Puts one page of `entries` (ordered by their `by` field) under `key` in a list answer's `data`,
    with `count`, `total` and, unless it is the last page, `continue`."""
    shown = page(entries, lambda entry: str(entry.get(by)), limit, after)
    data.update({key: list(shown.items), "count": len(shown.items), "total": shown.total})
    if shown.next:
        data["continue"] = shown.next
    return shown


def more(tool: str, shown: Page[Any], **arguments: str) -> str:
    """The line of a text answer saying how to get the next page (empty on the last page)."""
    if not shown.next:
        return ""
    given = "".join(f"{name}={value!r}, " for name, value in arguments.items())
    return f"\nShowing {len(shown.items)} of {shown.total}. More: {tool}({given}continue={shown.next!r})."
