"""PgDatabaseRequest → CNPG Database, owned by the request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cnpg_mcp_api.models import PgDatabaseRequestSpec
from cnpg_mcp_operator.builders.common import Json, owned_cnpg_object


def build_database(body: Mapping[str, Any]) -> Json:
    spec = PgDatabaseRequestSpec.model_validate(body.get("spec") or {})
    database_spec: Json = {
        "cluster": {"name": spec.cluster},
        "name": spec.name,
        "owner": spec.owner,
        "ensure": "present",
        "databaseReclaimPolicy": spec.database_reclaim_policy,
    }
    for key in ("encoding", "locale", "template"):
        value = getattr(spec, key)
        if value:
            database_spec[key] = value
    if spec.extensions:
        database_spec["extensions"] = [e.to_wire() for e in spec.extensions]
    if spec.schemas:
        database_spec["schemas"] = [s.to_wire() for s in spec.schemas]
    return owned_cnpg_object("Database", body, spec.cluster, database_spec)
