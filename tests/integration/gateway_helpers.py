"""Shared by the gateway tests: a gateway bound to the session's control plane, and small readers."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any

import psycopg
from kubernetes import client
from mcp.types import CallToolResult

from cnpg_mcp_api import constants
from devcluster.controlplane import ControlPlane
from devcluster.postgres import PostgresServer
from mcp_gateway.config import GatewayConfig
from mcp_gateway.k8s import Kube
from mcp_gateway.server import build_server


def gateway_server(control_plane: ControlPlane, **options: Any) -> Any:
    """An in-process gateway; `kubeconfig=` makes it act as another identity than the admin."""
    options.setdefault("kubeconfig", str(control_plane.kubeconfig))
    config = GatewayConfig(**options)
    return build_server(config, Kube.connect(config.kubeconfig, watch_cache=config.watch_cache))


def unique(prefix: str) -> str:
    """PostgreSQL names are global in the simulator's one server: keep them unique per test."""
    return f"{prefix}_{secrets.token_hex(3)}"


def text(result: CallToolResult) -> str:
    return "\n".join(getattr(c, "text", "") for c in result.content)


def ok(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


def error(result: CallToolResult, code: str) -> str:
    assert result.is_error, f"expected an error, got: {text(result)}"
    message = text(result)
    assert f"[{code}]" in message, message
    return message


def secret_password(k8s: Any, namespace: str, name: str) -> str:
    secret = client.CoreV1Api(k8s).read_namespaced_secret(name, namespace)
    return base64.b64decode(secret.data["password"]).decode()


def database_owner(postgres: PostgresServer, database: str) -> str | None:
    with psycopg.connect(postgres.superuser_dsn()) as connection:
        row = connection.execute(
            "select pg_get_userbyid(datdba) from pg_database where datname = %s", (database,)).fetchone()
    return None if row is None else str(row[0])


def as_json(result: CallToolResult) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(text(result))
    return loaded


def bind_intent_editor(k8s: Any, namespace: str, group: str) -> None:
    """Let `group` (as Kubernetes sees it, prefix included) edit intents and read CNPG objects in `namespace`."""
    rbac = client.RbacAuthorizationV1Api(k8s)
    rbac.create_namespaced_role(namespace, {"metadata": {"name": "intent-editor"}, "rules": [
        {"apiGroups": [constants.GROUP], "resources": ["pgclusterrequests", "pgrolerequests", "pgdatabaserequests"],
         "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
        {"apiGroups": [constants.CNPG_GROUP], "resources": ["clusters", "databases", "databaseroles"],
         "verbs": ["get", "list", "watch"]},
    ]})
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "intent-editors"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "intent-editor"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}],
    })


def live_cluster(k8s: Any, namespace: str, name: str) -> dict[str, Any] | None:
    """The CNPG Cluster as stored (after CNPG's defaulting webhook), or None."""
    try:
        found: dict[str, Any] = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
            constants.CNPG_GROUP, constants.CNPG_VERSION, namespace, constants.CNPG_CLUSTERS, name)
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return None
        raise
    return found
