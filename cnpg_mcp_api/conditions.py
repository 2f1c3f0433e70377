"""The one reader of an object's `Ready` condition, shared by the operator and the gateway."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

READY: Final = "Ready"


def ready_condition(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `Ready` condition of `obj`'s status as a plain dict; {} when it has none (yet)."""
    for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == READY:
            return dict(condition)
    return {}


def ready_reason(obj: Mapping[str, Any] | None) -> str | None:
    """The reason of `obj`'s `Ready` condition; None when it has no such condition."""
    condition = ready_condition(obj)
    return str(condition.get("reason")) if condition else None
