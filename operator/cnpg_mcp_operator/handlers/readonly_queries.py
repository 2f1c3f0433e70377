"""Read-only SQL for the MCP gateway: the role and the projected credentials of one PgClusterRequest.

Called from the PgClusterRequest's reconcile (and finalize). Enabled: the PgRoleRequest
`<cluster>-mcp-readonly` exists and is ours (by UID); once it is Ready, its password, the cluster's
read-only Service and CNPG's CA certificate are written as one key of the Secret
`cnpg-mcp-sql-credentials` in the gateway's namespace (docs/diagnosis.md). Disabled or deleted: the
key is removed and our PgRoleRequest deleted (its own deletion drops the role).

No value of a Secret is ever logged or put into a status: the status says enabled/ready, the role,
the Service and where the credentials are.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cnpg_mcp_api.conditions import ready_condition
from cnpg_mcp_api.naming import role_secret_name
from cnpg_mcp_api.readonly_sql import READONLY_ROLE_NAME, SQL_CREDENTIALS_SECRET, credentials_key, readonly_request_name
from cnpg_mcp_operator.builders.readonly import (
    CA_CERT_KEY,
    ca_secret_name,
    credentials_document,
    credentials_patch,
    credentials_secret,
    readonly_host,
    readonly_role_request,
    readonly_spec,
    secret_value,
)
from cnpg_mcp_operator.drift import owned_by
from cnpg_mcp_operator.handlers.common import ROLE_REQUESTS, create_or_get
from cnpg_mcp_operator.k8s import SECRETS, ApiError
from cnpg_mcp_operator.runtime import Runtime

log = logging.getLogger(__name__)

Json = dict[str, Any]
# Every key status.readOnlyQueries may hold: a disabled status removes the others (merge patch nulls).
DISABLED: Json = {"enabled": False, "ready": False, "role": None, "roleRequest": None, "host": None,
                  "credentials": None}


def _names(body: Mapping[str, Any]) -> tuple[str, str]:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def _location(rt: Runtime, namespace: str, cluster: str) -> str:
    return f"{rt.config.gateway_namespace}/{SQL_CREDENTIALS_SECRET}:{credentials_key(namespace, cluster)}"


def was_enabled(body: Mapping[str, Any]) -> bool:
    return bool(((body.get("status") or {}).get("readOnlyQueries") or {}).get("enabled"))


def pending(body: Mapping[str, Any]) -> bool:
    """Whether the status does not yet reflect the spec (enabled but not ready, or disabled but still
    reported enabled): a Cluster event is then a reason to reconcile again."""
    try:
        enabled = readonly_spec(body) is not None
    except ValueError:
        return False
    ready = bool(((body.get("status") or {}).get("readOnlyQueries") or {}).get("ready"))
    return enabled != ready or was_enabled(body) != enabled


async def sync(rt: Runtime, body: Json, cluster: Mapping[str, Any] | None) -> Json | None:
    """Brings role and projection in line with spec.readOnlyQueries; returns status.readOnlyQueries
    (None: never enabled, nothing to report). `cluster`: our Cluster, or None when we may not act on it.

    An API error here is reported in that status, never raised: the Cluster's own status must not
    depend on read-only queries (the next Cluster event or update tries again).
    """
    try:
        return await _sync(rt, body, cluster)
    except ApiError as exc:
        if exc.namespace_terminating:
            raise
        # enabled stays True while a removal failed, so the removal is tried again (pending()).
        enabled = readonly_spec(body) is not None or was_enabled(body)
        return {**DISABLED, "enabled": enabled, "message": f"read-only queries: {exc}"}


async def _sync(rt: Runtime, body: Json, cluster: Mapping[str, Any] | None) -> Json | None:
    namespace, name = _names(body)
    wanted = readonly_spec(body)
    if wanted is None:
        if not was_enabled(body):
            return None
        await withdraw(rt, body)
        return {**DISABLED, "message": "read-only queries disabled"}
    base: Json = {**DISABLED, "enabled": True, "role": READONLY_ROLE_NAME, "roleRequest": readonly_request_name(name)}
    if cluster is None:
        return {**base, "ready": False, "message": f"waiting for Cluster {name}"}
    host = readonly_host(namespace, name, int((cluster.get("spec") or {}).get("instances") or 1))
    base["host"] = host
    role_request = await create_or_get(rt, ROLE_REQUESTS, namespace, readonly_role_request(body))
    if role_request is None:
        return {**base, "ready": False, "message": f"PgRoleRequest {readonly_request_name(name)} vanished"}
    if not owned_by(role_request, body["metadata"]["uid"]):
        return {**base, "ready": False, "message": f"PgRoleRequest {readonly_request_name(name)} exists and "
                                                   "does not belong to this request"}
    condition = ready_condition(role_request)
    if condition.get("status") != "True":
        why = condition.get("message") or condition.get("reason") or "not reconciled yet"
        return {**base, "ready": False,
                "message": f"waiting for PgRoleRequest {readonly_request_name(name)}: {why}"}
    secret_name = role_secret_name(name, READONLY_ROLE_NAME)
    password_secret = await rt.api.get(SECRETS, namespace, secret_name)
    password = secret_value(password_secret, "password") if password_secret is not None and owned_by(
        password_secret, role_request["metadata"]["uid"]) else None
    if password is None:
        return {**base, "ready": False, "message": f"waiting for the password Secret {secret_name}"}
    ca_name = ca_secret_name(cluster)
    ca_cert = secret_value(await rt.api.get(SECRETS, namespace, ca_name), CA_CERT_KEY)
    if ca_cert is None:
        return {**base, "ready": False, "message": f"waiting for {CA_CERT_KEY} in CNPG's CA Secret {ca_name}"}
    document = credentials_document(host=host, dbname=wanted.database, user=READONLY_ROLE_NAME,
                                    password=password, ca_cert=ca_cert)
    try:
        await _project(rt, credentials_key(namespace, name), document)
    except ApiError as exc:  # e.g. the gateway's namespace does not exist: say so, keep the Cluster's status
        return {**base, "ready": False, "message": f"cannot write {_location(rt, namespace, name)}: {exc}"}
    return {**base, "ready": True, "credentials": _location(rt, namespace, name),
            "message": f"credentials projected to {_location(rt, namespace, name)}"}


async def _project(rt: Runtime, key: str, document: str | None) -> None:
    """Sets (None: removes) one key of the projection Secret; writes only a difference."""
    gateway_namespace = rt.config.gateway_namespace
    current = await rt.api.get(SECRETS, gateway_namespace, SQL_CREDENTIALS_SECRET)
    if current is None:
        if document is None:
            return
        if await rt.api.create(SECRETS, gateway_namespace,
                               credentials_secret(gateway_namespace, key, document)) is not None:
            log.info("read-only SQL credentials %s projected (Secret created)", key)
            return
        current = await rt.api.get(SECRETS, gateway_namespace, SQL_CREDENTIALS_SECRET) or {}
    if secret_value(current, key) == document:
        return
    await rt.api.patch(SECRETS, gateway_namespace, SQL_CREDENTIALS_SECRET, credentials_patch(key, document))
    log.info("read-only SQL credentials %s %s", key, "removed" if document is None else "projected")


async def withdraw(rt: Runtime, body: Json) -> None:
    """Removes the projected key and deletes our PgRoleRequest (whose deletion drops the role)."""
    namespace, name = _names(body)
    try:
        await _project(rt, credentials_key(namespace, name), None)
    except ApiError as exc:  # never block a deletion on the gateway's namespace; the role goes anyway
        log.warning("PgClusterRequest %s/%s: could not remove %s: %s", namespace, name,
                    _location(rt, namespace, name), exc)
    request_name = readonly_request_name(name)
    role_request = await rt.api.get(ROLE_REQUESTS, namespace, request_name)
    if role_request is not None and owned_by(role_request, body["metadata"]["uid"]):
        await rt.api.delete(ROLE_REQUESTS, namespace, request_name)
        log.info("PgClusterRequest %s/%s: read-only role request %s deleted", namespace, name, request_name)
