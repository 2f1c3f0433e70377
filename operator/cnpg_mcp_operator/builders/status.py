"""Status in Kubernetes conventions: metav1.Condition-shaped conditions, written only when changed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from cnpg_mcp_operator.builders.common import Json


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_condition(type_: str, ready: bool, reason: str, message: str, *, observed_generation: int,
                   previous: Sequence[Mapping[str, Any]], now: str | None = None) -> Json:
    """A condition; lastTransitionTime moves only when the status flips (as metav1 wants)."""
    status = "True" if ready else "False"
    before = next((c for c in previous if c.get("type") == type_), None)
    if before is not None and before.get("status") == status and before.get("lastTransitionTime"):
        transition = str(before["lastTransitionTime"])
    else:
        transition = now or now_rfc3339()
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": observed_generation,
        "lastTransitionTime": transition,
    }
