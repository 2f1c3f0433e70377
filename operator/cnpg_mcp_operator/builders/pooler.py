"""PgPoolerRequest → the CNPG Pooler (named like the request, owned by it) and the patch that keeps it in line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnpg_mcp_api.models import PgPoolerRequestSpec
from cnpg_mcp_operator.builders.common import Json, owned_cnpg_object
from cnpg_mcp_operator.drift import merge_patch


def pooler_spec(spec: PgPoolerRequestSpec) -> Json:
    """CNPG's PoolerSpec (api/v1/pooler_types.go) for what the request asks."""
    return {
        "cluster": {"name": spec.cluster},
        "type": spec.type,
        "instances": spec.instances,
        "pgbouncer": {"poolMode": spec.pgbouncer.pool_mode, "parameters": dict(spec.pgbouncer.parameters),
                      "paused": spec.pgbouncer.paused},
    }


def build_pooler(body: Mapping[str, Any]) -> Json:
    spec = PgPoolerRequestSpec.model_validate(body.get("spec") or {})
    return owned_cnpg_object("Pooler", body, spec.cluster, pooler_spec(spec))


def pooler_patch(desired: Mapping[str, Any], live: Mapping[str, Any]) -> Json | None:
    """A merge patch of the Pooler's spec: type, instances, poolMode, paused, and the PgBouncer parameters the
    request lists (a parameter dropped from the request is removed). Other fields (template, TLS…) are left alone;
    the cluster is immutable in both."""
    patch = merge_patch({k: v for k, v in desired.items() if k not in ("pgbouncer", "cluster")}, live) or {}
    want, have = desired.get("pgbouncer") or {}, live.get("pgbouncer") or {}
    bouncer = merge_patch({k: v for k, v in want.items() if k != "parameters"}, have) or {}
    want_params, have_params = want.get("parameters") or {}, have.get("parameters") or {}
    params = merge_patch(want_params, have_params, removable=[k for k in have_params if k not in want_params])
    if params:
        bouncer["parameters"] = params
    if bouncer:
        patch["pgbouncer"] = bouncer
    return {"spec": patch} if patch else None
