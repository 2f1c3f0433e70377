"""Pure builders of read-only SQL for the MCP gateway (PgClusterRequest spec.readOnlyQueries).

The role comes from our own role machinery: a PgRoleRequest the operator creates, owned by the
PgClusterRequest (ownerReference by UID). The credentials go into one operator-owned Secret in the
gateway's namespace, one key per cluster: host, port, dbname, user, password, sslmode verify-full and
the CA certificate (only `ca.crt` of CNPG's CA Secret; its `ca.key` is never read into the document).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import ROLE_REQUEST, PgClusterRequestSpec, PgRoleRequestSpec, ReadOnlyQueriesSpec, manifest
from cnpg_mcp_api.readonly_sql import (
    READONLY_ROLE_CONNECTION_LIMIT,
    READONLY_ROLE_MEMBERSHIPS,
    READONLY_ROLE_NAME,
    SQL_CREDENTIALS_SECRET,
    SQL_SSLMODE,
    readonly_request_name,
)
from cnpg_mcp_operator.builders.common import Json, owner_reference, produced_labels

CA_CERT_KEY = "ca.crt"  # CNPG's CA Secret: ca.crt (public) and ca.key (private, never copied)
CA_SECRET_SUFFIX = "-ca"  # CNPG's default server CA Secret: <cluster>-ca
COMMENT = "cnpg-mcp: read-only SQL of the MCP gateway (pg_monitor only)"


def readonly_spec(cluster_request: Mapping[str, Any]) -> ReadOnlyQueriesSpec | None:
    """The request's spec.readOnlyQueries when it is enabled, else None."""
    spec = PgClusterRequestSpec.model_validate(cluster_request.get("spec") or {})
    wanted = spec.read_only_queries
    return wanted if wanted is not None and wanted.enabled else None


def readonly_role_spec(cluster: str) -> PgRoleRequestSpec:
    """LOGIN, member of pg_monitor only; none of superuser/createdb/createrole/replication/bypassrls.

    `privileged: true` acknowledges the pg_monitor membership (the CRD's rule); the operator's policy
    lets it through only for the request it created itself (is_operator_readonly_request).
    """
    return PgRoleRequestSpec(cluster=cluster, role_name=READONLY_ROLE_NAME, login=True, inherit=True,
                             in_roles=list(READONLY_ROLE_MEMBERSHIPS),
                             connection_limit=READONLY_ROLE_CONNECTION_LIMIT, comment=COMMENT,
                             privileged=True, reclaim_policy="delete")


def readonly_role_request(cluster_request: Mapping[str, Any]) -> Json:
    """The PgRoleRequest `<cluster>-mcp-readonly`, owned by the PgClusterRequest."""
    meta = cluster_request["metadata"]
    cluster = meta["name"]
    body = manifest(ROLE_REQUEST, readonly_request_name(cluster), readonly_role_spec(cluster),
                    namespace=meta["namespace"], labels=produced_labels(cluster, cluster))
    body["metadata"]["ownerReferences"] = [owner_reference(cluster_request)]
    return body


def owner_uid(obj: Mapping[str, Any], kind: str) -> str | None:
    """The UID of `obj`'s controller of `kind`, if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind and ref.get("apiVersion") == constants.API_VERSION:
            return str(ref.get("uid") or "") or None
    return None


def is_operator_readonly_request(role_request: Mapping[str, Any], cluster_request: Mapping[str, Any] | None) -> bool:
    """Whether `role_request` is exactly the read-only role the operator provisions for a PgClusterRequest
    that enables read-only queries (controller ownerReference to that request's UID, our name, our spec).

    Anyone able to forge this could as well enable spec.readOnlyQueries on their own PgClusterRequest:
    the exemption grants nothing beyond that.
    """
    if cluster_request is None or readonly_spec(cluster_request) is None:
        return False
    cluster = cluster_request["metadata"]["name"]
    meta = role_request.get("metadata") or {}
    if meta.get("name") != readonly_request_name(cluster) or meta.get("namespace") != cluster_request[
            "metadata"]["namespace"]:
        return False
    if owner_uid(role_request, constants.CLUSTER_REQUEST_KIND) != cluster_request["metadata"]["uid"]:
        return False
    try:
        actual = PgRoleRequestSpec.model_validate(role_request.get("spec") or {})
    except ValueError:
        return False
    return actual == readonly_role_spec(cluster)


def readonly_host(namespace: str, cluster: str, instances: int) -> str:
    """The Service the gateway connects to: `-ro` (replicas only) when there are replicas, else `-r`
    (any instance; a single-instance cluster's `-ro` has no endpoints). Never `-rw`."""
    return f"{cluster}-{'ro' if instances > 1 else 'r'}.{namespace}.svc"


def ca_secret_name(cluster: Mapping[str, Any]) -> str:
    """CNPG's server CA Secret: spec.certificates.serverCASecret when the user brings one, else the
    one CNPG generates, `<cluster>-ca` (what CNPG reports as status.certificates.serverCASecret)."""
    custom = ((cluster.get("spec") or {}).get("certificates") or {}).get("serverCASecret")
    return str(custom) if custom else f"{cluster['metadata']['name']}{CA_SECRET_SUFFIX}"


def secret_value(secret: Mapping[str, Any] | None, key: str) -> str | None:
    """One decoded value of a Secret's data (None when missing)."""
    encoded = ((secret or {}).get("data") or {}).get(key)
    if not encoded:
        return None
    return base64.b64decode(encoded).decode()


def credentials_document(*, host: str, dbname: str, user: str, password: str, ca_cert: str) -> str:
    """The JSON the gateway reads for one cluster (stable key order, so unchanged = byte-identical)."""
    return json.dumps({"host": host, "port": constants.POSTGRES_PORT, "dbname": dbname, "user": user,
                       "password": password, "sslmode": SQL_SSLMODE, "sslrootcert": ca_cert}, sort_keys=True)


def encoded(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def credentials_secret(namespace: str, key: str, document: str) -> Json:
    """The projection Secret with its first key (no ownerReference: it serves every namespace)."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": SQL_CREDENTIALS_SECRET, "namespace": namespace,
                         "labels": {**constants.MANAGED_BY, "app.kubernetes.io/component": "sql-credentials"}},
            "data": {key: encoded(document)}}


def credentials_patch(key: str, document: str | None) -> Json:
    """A merge patch setting (or, with None, removing) one key: other clusters' keys are untouched."""
    return {"data": {key: None if document is None else encoded(document)}}
