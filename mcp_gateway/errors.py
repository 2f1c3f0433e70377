"""Tool failures with a stable code and an actionable message (surfaced to the model as isError)."""

from __future__ import annotations

import json
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

INVALID_ARGUMENT = "INVALID_ARGUMENT"
NOT_FOUND = "NOT_FOUND"
ALREADY_EXISTS = "ALREADY_EXISTS"
CONFLICT = "CONFLICT"
FORBIDDEN = "FORBIDDEN"
UNAUTHENTICATED = "UNAUTHENTICATED"
NAMESPACE_NOT_ALLOWED = "NAMESPACE_NOT_ALLOWED"
NAMESPACE_NOT_FOUND = "NAMESPACE_NOT_FOUND"
IDENTITY_REFUSED = "IDENTITY_REFUSED"
PASSWORD_NOT_ACCEPTED = "PASSWORD_NOT_ACCEPTED"
REFUSED = "REFUSED"
PRIVILEGE_ACK_REQUIRED = "PRIVILEGE_ACK_REQUIRED"
API_ERROR = "API_ERROR"
UNAVAILABLE = "UNAVAILABLE"  # retryable: the Kubernetes API could not be reached or did not answer in time
INTERNAL = "INTERNAL"
# Read-only SQL (toolsets sql and diagnostics).
SQL_NOT_ENABLED = "SQL_NOT_ENABLED"
QUERY_REFUSED = "QUERY_REFUSED"
QUERY_FAILED = "QUERY_FAILED"
DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
NOT_RECOVERABLE = "NOT_RECOVERABLE"  # restore_postgres_cluster: the backups cannot reach the requested point

# What each code means and what to do (the generated docs/tools.md lists them).
MEANINGS = {
    INVALID_ARGUMENT: "An argument is malformed (type, pattern, range) or refused by the API server; fix it.",
    NOT_FOUND: "The named cluster, role, database or request does not exist; list to see what does.",
    ALREADY_EXISTS: "An object of that name exists already; pick another name or change the existing one.",
    CONFLICT: "The object is in a state that forbids the change (e.g. not managed by cnpg-mcp); read it first.",
    FORBIDDEN: "Kubernetes RBAC refused the gateway (or the impersonated caller) access.",
    UNAUTHENTICATED: "The gateway's Kubernetes credentials were rejected.",
    NAMESPACE_NOT_ALLOWED: "The namespace is outside the gateway's --namespace-allow list.",
    NAMESPACE_NOT_FOUND: "The namespace does not exist.",
    IDENTITY_REFUSED: "The caller's token names a built-in Kubernetes identity (system:), which is never used.",
    PASSWORD_NOT_ACCEPTED: "A literal password was given; passwords never pass through MCP (use reset_password).",
    REFUSED: "The user declined the confirmation the tool asked for; nothing was changed.",
    PRIVILEGE_ACK_REQUIRED: "Privileged role attributes need the user's acknowledgement (privileged=true).",
    API_ERROR: "The Kubernetes API answered with an unexpected error.",
    UNAVAILABLE: "The Kubernetes API could not be reached or did not answer in time; retryable.",
    INTERNAL: "An unexpected failure in the gateway; its log has the details.",
    SQL_NOT_ENABLED: "Read-only SQL is not enabled for the cluster (set spec.readOnlyQueries.enabled on its "
                     "PgClusterRequest), or its mounted credentials are unusable.",
    QUERY_REFUSED: "The SQL guard refused the statement (only one SELECT, EXPLAIN without ANALYZE or SHOW, no "
                   "function with side effects); nothing was sent to PostgreSQL.",
    QUERY_FAILED: "PostgreSQL refused or cancelled the query; the message carries its SQLSTATE (57014: a timeout, "
                  "25006: a write in the read-only transaction, 42501: no privilege).",
    DATABASE_UNAVAILABLE: "The cluster's PostgreSQL could not be reached or refused the read-only login; retryable.",
    NOT_RECOVERABLE: "The backups cannot reach the requested point (no completed backup, or a target time outside "
                     "the recoverability window, which the message gives); nothing was created.",
}
# Codes any tool can return: argument checks, namespace checks and every Kubernetes API call.
COMMON = (INVALID_ARGUMENT, NAMESPACE_NOT_ALLOWED, NAMESPACE_NOT_FOUND, IDENTITY_REFUSED, FORBIDDEN,
          UNAUTHENTICATED, UNAVAILABLE, API_ERROR, INTERNAL)


def tool_error(code: str, message: str) -> ToolError:
    return ToolError(f"[{code}] {message}")


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if body:
        try:
            return str(json.loads(body).get("message") or body)
        except (ValueError, AttributeError):
            return str(body)
    return str(getattr(exc, "reason", "") or exc)


def from_api_exception(exc: Any, doing: str) -> ToolError:
    """Map a Kubernetes ApiException to a ToolError that says what to do next."""
    status = int(getattr(exc, "status", 0) or 0)
    message = _api_message(exc)
    if status == 404:
        return tool_error(NOT_FOUND, f"{doing}: not found ({message}). Check the name and namespace; "
                                     "list_postgres_clusters shows what exists.")
    if status == 409:
        return tool_error(ALREADY_EXISTS if "already exists" in message else CONFLICT,
                          f"{doing}: {message}. Read the current state and try again.")
    if status == 403:
        return tool_error(FORBIDDEN, f"{doing}: permission denied by Kubernetes RBAC ({message}). "
                                     "Ask a cluster admin for access to this namespace.")
    if status == 401:
        return tool_error(UNAUTHENTICATED, f"{doing}: the gateway's Kubernetes credentials were rejected.")
    if status == 422:
        return tool_error(INVALID_ARGUMENT, f"{doing}: the API server refused the request: {message}")
    if status == 0:
        return tool_error(UNAVAILABLE, f"{doing}: the Kubernetes API is unreachable ({message}). Retry later.")
    if status in (429, 502, 503, 504):
        return tool_error(UNAVAILABLE, f"{doing}: the Kubernetes API is busy or failing ({status}: {message}). "
                                       "Retry later.")
    return tool_error(API_ERROR, f"{doing}: Kubernetes API error {status}: {message}")


def from_transport_exception(exc: BaseException, doing: str) -> ToolError:
    """A connection failure or timeout talking to the Kubernetes API: retryable."""
    reason = str(getattr(exc, "reason", "") or exc) or type(exc).__name__
    return tool_error(UNAVAILABLE, f"{doing}: the Kubernetes API could not be reached ({type(exc).__name__}: "
                                   f"{reason[:300]}). This is retryable: try again shortly.")


def from_validation(tool: str, exc: ValidationError) -> ToolError:
    """The SDK's argument validation failure, coded like every other failure (field and rule, not the value)."""
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}" for e in exc.errors()[:5])
    return ToolError(f"Error executing tool {tool}: [{INVALID_ARGUMENT}] {problems}. The tool's inputSchema in "
                     "tools/list gives each parameter's type and rules.")
