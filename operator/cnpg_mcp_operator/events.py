"""Kubernetes Events on intent transitions (posted through Kopf's event queue).

Messages are the condition messages we compose ourselves: they name objects, never secret values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

# Reasons that mean "working as intended": Normal events. Anything else is worth a Warning.
NORMAL_REASONS = frozenset({"Applied", "Pending", "Deleting", "Created", "Ready", "Retained", "Deleted",
                            "Completed"})
MAX_MESSAGE = 1000
# One quick retry: an Event is worth little once late, and a namespace being deleted refuses them all.
BACKOFFS = (0.5,)


def _reference(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                         "uid": meta.get("uid")}}


def post(body: Mapping[str, Any], reason: str, message: str, *, warning: bool | None = None) -> None:
    """One Event on the intent. `warning` defaults from the reason."""
    is_warning = reason not in NORMAL_REASONS if warning is None else warning
    kopf.event(_reference(body), type="Warning" if is_warning else "Normal", reason=reason,  # type: ignore[arg-type]
               message=message[:MAX_MESSAGE], backoffs=BACKOFFS)


def post_transition(body: Mapping[str, Any], before: Mapping[str, Any] | None,
                    after: Mapping[str, Any]) -> None:
    """An Event when the Ready condition changes status or reason (not on message-only changes)."""
    if before is not None and (before.get("status"), before.get("reason")) == (after.get("status"),
                                                                               after.get("reason")):
        return
    post(body, str(after.get("reason") or "Unknown"), str(after.get("message") or ""))
