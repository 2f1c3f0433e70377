"""Kubernetes Events on intent transitions.

Messages are the condition messages we compose ourselves: they name objects, never secret values;
transition Events end with the intent's requester (cnpg-mcp.io/requested-by), for the audit trail.

A transition Event is built here (pure) and created by the status writer *before* it writes the
status, under a name derived from the transition itself (the intent's UID, generation, the Ready
condition it leaves and the one it enters): an operator killed between the two announces the same
transition again after its restart and gets AlreadyExists, so every transition has exactly one Event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from cnpg_mcp_api import constants
from cnpg_mcp_operator.builders.status import now_rfc3339
from cnpg_mcp_operator.k8s import FIELD_MANAGER, Resource

EVENTS = Resource("", "v1", "events", "Event")

# Reasons that mean "working as intended": Normal events. Anything else is worth a Warning.
NORMAL_REASONS = frozenset({"Applied", "Pending", "Deleting", "Created", "Ready", "Retained", "Deleted",
                            "Completed", "Running", "Succeeded"})
MAX_MESSAGE = 1000


def _reference(body: Mapping[str, Any]) -> dict[str, Any]:
    meta = body.get("metadata") or {}
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace"),
                         "uid": meta.get("uid")}}


def _is_transition(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> bool:
    """The Ready condition changes status or reason (a message-only change is no transition)."""
    return before is None or (before.get("status"), before.get("reason")) != (after.get("status"),
                                                                              after.get("reason"))


def transition_name(body: Mapping[str, Any], before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> str:
    """The same for the same transition, whoever computes it and however often: the condition left
    (with its lastTransitionTime, so a later return to the same state is a new transition) and the
    one entered, of this intent (UID) at this generation."""
    meta = body.get("metadata") or {}
    left = before or {}
    identity = "\n".join(str(part) for part in (
        meta.get("uid"), after.get("observedGeneration", meta.get("generation")), left.get("status"),
        left.get("reason"), left.get("lastTransitionTime"), after.get("status"), after.get("reason")))
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return f"{str(meta.get('name'))[:200].rstrip('.-')}.{digest}"


def transition_event(body: Mapping[str, Any], before: Mapping[str, Any] | None,
                     after: Mapping[str, Any], *, now: str | None = None) -> dict[str, Any] | None:
    """The Event announcing a Ready transition (status or reason changed), None when there is none."""
    if not _is_transition(before, after):
        return None
    reason = str(after.get("reason") or "Unknown")
    stamp = now or now_rfc3339()
    reference = _reference(body)
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": transition_name(body, before, after), "namespace": reference["metadata"]["namespace"]},
        "involvedObject": {"apiVersion": reference["apiVersion"], "kind": reference["kind"],
                           **reference["metadata"]},
        "type": "Normal" if reason in NORMAL_REASONS else "Warning",
        "reason": reason,
        "message": with_requester(body, str(after.get("message") or "")),
        "source": {"component": FIELD_MANAGER}, "reportingComponent": FIELD_MANAGER,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    }


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
