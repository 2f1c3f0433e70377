"""PgRoleRequest → password Secret, CNPG DatabaseRole or managed.roles entry."""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import PgRoleRequestSpec
from cnpg_mcp_api.naming import role_label_value, role_secret_name
from cnpg_mcp_operator.builders.common import Json, owned_cnpg_object, owner_reference, produced_labels

PASSWORD_ALPHABET = string.ascii_letters + string.digits  # safe in URIs, pgpass and JDBC URLs
PASSWORD_LENGTH = 32


def generate_password(length: int = PASSWORD_LENGTH) -> str:
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


def role_spec(body: Mapping[str, Any]) -> PgRoleRequestSpec:
    return PgRoleRequestSpec.model_validate(body.get("spec") or {})


def rotation_token(body: Mapping[str, Any]) -> str:
    return role_spec(body).password.rotation or ""


def build_role_secret(body: Mapping[str, Any], password: str, *, dbname: str = "app") -> Json:
    """The password Secret in CNPG's format (like `<cluster>-app`), owned by the request.

    The rotation token it was generated for is recorded in an annotation, so a later reconcile
    can tell whether a rotation was asked for without ever comparing passwords.
    """
    spec = role_spec(body)
    meta = body["metadata"]
    namespace, role, cluster = meta["namespace"], spec.role_name, spec.cluster
    host = f"{cluster}-rw"
    port = str(constants.POSTGRES_PORT)
    user, secret = quote(role, safe=""), quote(password, safe="")
    labels = {
        **produced_labels(meta["name"], cluster),
        constants.CNPG_RELOAD_LABEL: "true",
        constants.CNPG_ROLE_LABEL: role_label_value(role),
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/basic-auth",
        "metadata": {
            "name": role_secret_name(cluster, role),
            "namespace": namespace,
            "labels": labels,
            "annotations": {constants.PASSWORD_ROTATION_ANNOTATION: spec.password.rotation or ""},
            "ownerReferences": [owner_reference(body)],
        },
        "stringData": {
            "username": role,
            "user": role,
            "password": password,
            "dbname": dbname,
            "host": host,
            "port": port,
            "uri": f"postgresql://{user}:{secret}@{host}.{namespace}:{port}/{dbname}",
            "jdbc-uri": f"jdbc:postgresql://{host}.{namespace}:{port}/{dbname}?user={user}&password={secret}",
            "pgpass": f"{host}:{port}:{dbname}:{role}:{password}\n",
        },
    }


def secret_needs_update(secret: Mapping[str, Any], body: Mapping[str, Any]) -> bool:
    """True only when spec.password.rotation differs from the token the Secret was made for."""
    annotations = (secret.get("metadata") or {}).get("annotations") or {}
    return bool(annotations.get(constants.PASSWORD_ROTATION_ANNOTATION, "") != rotation_token(body))


def _role_configuration(spec: PgRoleRequestSpec, secret_name: str) -> Json:
    """CNPG's RoleConfiguration (api/v1 cluster_types.go), shared by both backends."""
    entry: Json = {
        "name": spec.role_name,
        "login": spec.login,
        "superuser": spec.superuser,
        "inherit": spec.inherit,
        "createdb": spec.createdb,
        "createrole": spec.createrole,
        "replication": spec.replication,
        "bypassrls": spec.bypassrls,
        "connectionLimit": spec.connection_limit,
        "passwordSecret": {"name": secret_name},
    }
    if spec.valid_until:
        entry["validUntil"] = spec.valid_until
    if spec.in_roles:
        entry["inRoles"] = list(spec.in_roles)
    if spec.comment:
        entry["comment"] = spec.comment
    return entry


def build_database_role(body: Mapping[str, Any], secret_name: str) -> Json:
    """A CNPG DatabaseRole named like the request and owned by it."""
    spec = role_spec(body)
    role_spec_wire = _role_configuration(spec, secret_name)
    role_spec_wire["ensure"] = "present"
    role_spec_wire["cluster"] = {"name": spec.cluster}
    role_spec_wire["databaseRoleReclaimPolicy"] = spec.reclaim_policy
    return owned_cnpg_object("DatabaseRole", body, spec.cluster, role_spec_wire)


def build_managed_role_entry(body: Mapping[str, Any], secret_name: str, ensure: str = "present") -> Json:
    """An entry of Cluster.spec.managed.roles (for CNPG without the DatabaseRole CRD)."""
    entry = _role_configuration(role_spec(body), secret_name)
    entry["ensure"] = ensure
    return entry


def merge_managed_roles(roles: Sequence[Mapping[str, Any]], entry: Mapping[str, Any]) -> list[Json]:
    """Upsert `entry` by name, keeping every other entry and the order."""
    merged = [dict(r) for r in roles]
    for index, current in enumerate(merged):
        if current.get("name") == entry["name"]:
            merged[index] = dict(entry)
            return merged
    merged.append(dict(entry))
    return merged


def remove_managed_role(roles: Sequence[Mapping[str, Any]], name: str) -> list[Json]:
    return [dict(r) for r in roles if r.get("name") != name]
