"""Pure: what CNPG reports about a Pooler, as an intent verdict.

Pooler status (CNPG api/v1/pooler_types.go, internal/controller/pooler_status.go): `instances` is the
Deployment's replica count, `phase` active | paused | inactive (a prerequisite is missing, e.g. the
Cluster) | failed (e.g. its image cannot be resolved), `phaseReason` says why.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnpg_mcp_operator.readiness import Verdict

POOLER_STATUS_READ = ("phase", "phaseReason", "instances", "error")
POOLER_SERVING_PHASES = frozenset({"active", "paused"})


def pooler_verdict(pooler: Mapping[str, Any] | None, desired_instances: int) -> Verdict:
    if pooler is None:
        return Verdict(False, "Pending", "waiting for the Pooler to be created")
    name = pooler["metadata"]["name"]
    status = pooler.get("status") or {}
    phase = str(status.get("phase") or "")
    why = status.get("phaseReason") or status.get("error")
    if phase == "failed":
        return Verdict(False, "Failed", f"Pooler {name} failed: {why or 'no reason given'}")
    if phase == "inactive":
        return Verdict(False, "Pending", f"Pooler {name} inactive: {why or 'waiting for a prerequisite'}")
    instances = int(status.get("instances") or 0)
    if phase in POOLER_SERVING_PHASES and instances == desired_instances:
        return Verdict(True, "Applied", f"Pooler {name} {phase}, {instances}/{desired_instances} PgBouncer "
                                        "instance(s)")
    return Verdict(False, "Pending", f"Pooler {name}: {phase or 'waiting for CNPG'}, {instances}/"
                                     f"{desired_instances} PgBouncer instance(s)")
