"""Pure decisions of a deletion: what to write next to let go of a CNPG object an intent owns.

A DatabaseRole or Database is released the same way: the request's current reclaim policy is set on
the object (also while CNPG is already deleting it: switching to retain releases a drop PostgreSQL
refuses), the object is deleted, and the intent waits until CNPG lets it go, reporting what blocks
it meanwhile. No I/O here: handlers/common.apply_release performs the writes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cnpg_mcp_operator.readiness import Verdict

Json = dict[str, Any]


@dataclass(frozen=True)
class Write:
    verb: Literal["patch", "delete"]
    patch: Json | None = None


@dataclass(frozen=True)
class ReleaseWording:
    """The status messages of one kind's release (kept word for word per kind)."""

    asked: str  # the object was just deleted
    cannot: str  # prefix of Blocked, before CNPG's message
    waiting: str  # CNPG has not let it go yet
    hint: str  # the way out of Blocked


@dataclass(frozen=True)
class Plan:
    writes: tuple[Write, ...]
    verdict: Verdict | None  # None: nothing of ours is left after the writes


def release_plan(obj: Mapping[str, Any], *, policy_field: str, policy: str, cluster_exists: bool,
                 wording: ReleaseWording) -> Plan:
    """The next step of releasing `obj` with reclaim policy `policy` ("delete" drops in PostgreSQL)."""
    meta = obj.get("metadata") or {}
    deleting = bool(meta.get("deletionTimestamp"))
    if not cluster_exists:  # nothing left to drop it in: cleanup completes
        return Plan(() if deleting else (Write("delete"),), None)
    writes: list[Write] = []
    if (obj.get("spec") or {}).get(policy_field) != policy:
        writes.append(Write("patch", {"spec": {policy_field: policy}}))
    if not deleting:
        return Plan((*writes, Write("delete")), Verdict(False, "Deleting", wording.asked))
    status = obj.get("status") or {}
    if policy == "delete" and status.get("applied") is False and status.get("message"):
        return Plan(tuple(writes), Verdict(False, "Blocked",
                                           f"{wording.cannot}: {status['message']}; {wording.hint}"))
    return Plan(tuple(writes), Verdict(False, "Deleting", wording.waiting))
