"""Kubernetes Events on intent transitions (posted through Kopf's event queue).

Messages are the condition messages we compose ourselves: they name objects, never secret values;
transition Events end with the intent's requester (cnpg-mcp.io/requested-by), for the audit trail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from cnpg_mcp_api import constants

# Reasons that mean "working as intended": Normal events. Anything else is worth a Warning.
NORMAL_REASONS = frozenset({"Applied", "Pending", "Deleting", "Created", "Ready", "Retained", "Deleted",
                            "Completed", "Running", "Succeeded"})
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
    post(body, str(after.get("reason") or "Unknown"), with_requester(body, str(after.get("message") or "")))


def with_requester(body: Mapping[str, Any], message: str) -> str:
    """The message, ending with who asked: the requester the client recorded (the gateway's
    requested-by) and, when it differs, the API user the API server stamped at admission."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    asked = annotations.get(constants.REQUESTED_BY_ANNOTATION)
    api_user = annotations.get(constants.REQUESTER_ANNOTATION)
    parts = [f"(requested by {asked or api_user})"] if asked or api_user else []
    if asked and api_user and api_user != asked:
        parts.append(f"(API user {api_user})")
    suffix = " " + " ".join(parts) if parts else ""
    return message[:MAX_MESSAGE - len(suffix)] + suffix
