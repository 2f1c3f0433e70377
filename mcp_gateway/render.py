"""Pure rendering of CNPG objects and intents: the original server's JSON fields, and short text."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from cnpg_mcp_api.conditions import ready_condition as ready_condition  # noqa: PLC0414 (re-exported)

CHARACTER_LIMIT = 25_000


def postgres_version(image: str | None) -> str | None:
    """The PostgreSQL version in an image tag (`...postgresql:16.4` → `16.4`); None if not a version."""
    if not image or ":" not in image.rsplit("/", 1)[-1]:
        return None
    tag = image.rsplit(":", 1)[-1].split("-", 1)[0].split("@", 1)[0]
    return tag if tag and tag[0].isdigit() else None


def intent_state(intent: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if intent is None:
        return None
    ready = ready_condition(intent)
    return {"name": intent["metadata"]["name"], "ready": ready.get("status") == "True",
            "reason": ready.get("reason", "Pending"), "message": (intent.get("status") or {}).get("message")}


def _missing_phase(request: Mapping[str, Any] | None) -> str:
    """What a request without its Cluster means: not created yet, or created and then deleted."""
    if ready_condition(request).get("reason") == "ClusterDeleted":
        return "Deleted (not recreated automatically; see the request's message)"
    return "Requested, not created yet"


def cluster_summary(cluster: Mapping[str, Any] | None, request: Mapping[str, Any] | None, *,
                    detailed: bool, full: bool = False) -> dict[str, Any]:
    """One cluster in the original JSON shape; `full` adds what get_cluster_status reports."""
    source = cluster or request or {}
    meta = source["metadata"]
    spec = (cluster or {}).get("spec") or {}
    status = (cluster or {}).get("status") or {}
    request_spec = (request or {}).get("spec") or {}
    image = spec.get("imageName")
    summary: dict[str, Any] = {
        "name": meta["name"],
        "namespace": meta.get("namespace"),
        "instances": spec.get("instances", request_spec.get("instances")),
        "ready_instances": status.get("readyInstances", 0),
        "phase": status.get("phase") or (_missing_phase(request) if cluster is None else "Unknown"),
        "current_primary": status.get("currentPrimary"),
    }
    if detailed or full:
        summary["postgres_version"] = postgres_version(image) or request_spec.get("postgresVersion")
        summary["image"] = image
        summary["storage_size"] = (spec.get("storage") or {}).get("size")
    if detailed:
        summary["conditions"] = [
            {k: c.get(k) for k in ("type", "status", "reason", "message")} for c in status.get("conditions") or []
        ]
    if full and detailed:
        summary["storage_class"] = (spec.get("storage") or {}).get("storageClass")
        summary["postgresql_parameters"] = (spec.get("postgresql") or {}).get("parameters") or {}
        summary["managed_roles"] = [r.get("name") for r in (spec.get("managed") or {}).get("roles") or []]
        summary["managed_roles_status"] = status.get("managedRolesStatus") or {}
    summary["request"] = intent_state(request)
    return summary


def event_entries(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": e.get("type"), "reason": e.get("reason"), "message": e.get("message"),
             "object": f"{(e.get('involvedObject') or {}).get('kind')}/{(e.get('involvedObject') or {}).get('name')}",
             "last_seen": e.get("lastTimestamp") or e.get("eventTime"), "count": e.get("count")} for e in events]


def _digest_lines(summary: Mapping[str, Any]) -> list[str]:
    """The digest part of get_cluster_status's text (absent from list entries)."""
    lines = [f"- Verdict: {summary['verdict']}"]
    if summary.get("next_check"):
        lines.append(f"- Next check: {summary['next_check']}")
    lines += [f"- Problem: {p}" for p in (summary.get("problems") or [])[1:]]
    if summary.get("phase_reason"):
        lines.append(f"- Phase reason: {summary['phase_reason']}")
    if summary.get("instances_status"):
        lines.append("- Instances: " + ", ".join(
            f"{i['name']} {i['role']} {i['status']}" + (f" TL{i['timeline']}" if i.get("timeline") else "")
            for i in summary["instances_status"]))
    if summary.get("target_primary") and summary["target_primary"] != summary.get("current_primary"):
        lines.append(f"- Target Primary: {summary['target_primary']}")
    if summary.get("key_conditions"):
        lines.append("- Conditions: " + ", ".join(f"{k}={v}" for k, v in summary["key_conditions"].items()))
    roles = summary.get("managed_roles_summary")
    if roles:
        lines.append("- Managed roles: " + (", ".join(f"{k} {v}" for k, v in roles["by_status"].items()) or "none")
                     + "".join(f"; {r} cannot be reconciled: {why}" for r, why in roles["cannot_reconcile"].items()))
    if summary.get("certificates"):
        lines.append("- Certificates: " + ", ".join(
            f"{c['secret']} {c['days_left']}d" if c["days_left"] is not None else f"{c['secret']} {c['expires']}"
            for c in summary["certificates"]))
    window = summary.get("recoverability")
    if window:
        lines.append(f"- Recoverable since: {window['first_recoverability_point'] or 'unknown'}"
                     + (f" (last backup {window['last_successful_backup']})" if window["last_successful_backup"]
                        else "") + f"; {window['source']}" + (f": {window['note']}" if window["note"] else ""))
    return lines


def cluster_row(summary: Mapping[str, Any]) -> str:
    """One line per cluster (the concise list: 100 clusters stay under 2,000 tokens)."""
    phase = "healthy" if summary["phase"] == "Cluster in healthy state" else summary["phase"]
    request = summary.get("request")
    managed = ("not managed by cnpg-mcp" if not request else "managed" if request["ready"]
               else f"managed, request {request['reason']}")
    return (f"- {summary['name']}: {phase} {summary['ready_instances']}/{summary['instances']}, "
            f"primary {summary['current_primary'] or 'none yet'}, {managed}")


def cluster_text(summary: Mapping[str, Any]) -> str:
    lines = [
        f"**Cluster: {summary['namespace']}/{summary['name']}**",
        *(_digest_lines(summary) if summary.get("verdict") else []),
        f"- Status: {summary['phase']}",
        f"- Instances: {summary['ready_instances']}/{summary['instances']} ready",
        f"- Current Primary: {summary['current_primary'] or 'none yet'}",
    ]
    if "postgres_version" in summary:
        lines.append(f"- PostgreSQL Version: {summary['postgres_version'] or 'unknown'} (image {summary['image']})")
        lines.append(f"- Storage Size: {summary['storage_size']}")
    if summary.get("storage_class"):
        lines.append(f"- Storage Class: {summary['storage_class']}")
    request = summary.get("request")
    if request:
        state = "Ready" if request["ready"] else request["reason"]
        lines.append(f"- Managed by PgClusterRequest {request['name']}: {state}"
                     + (f" ({request['message']})" if request.get("message") and not request["ready"] else ""))
    else:
        lines.append("- Not managed by cnpg-mcp (scaling or deleting it through this server adopts it)")
    if summary.get("postgresql_parameters"):
        lines.append("- Parameters: " + ", ".join(f"{k}={v}" for k, v in summary["postgresql_parameters"].items()))
    if summary.get("conditions"):
        lines.append("**Conditions:**")
        lines += [f"- {c['type']}: {c['status']} ({c.get('reason') or ''})\n  {c.get('message') or ''}"
                  for c in summary["conditions"]]
    if summary.get("events"):
        lines.append("**Recent events:**")
        lines += [f"- {e['last_seen']} {e['type']} {e['reason']} ({e['object']}): {e['message']}"
                  for e in summary["events"]]
    return "\n".join(lines)


def role_entry(name: str, config: Mapping[str, Any], *, source: str, state: Mapping[str, Any] | None,
               secret_name: str | None) -> dict[str, Any]:
    """One role in the original JSON shape (+ where it comes from and what CNPG reports)."""
    return {
        "name": name,
        "ensure": config.get("ensure", "present"),
        "login": bool(config.get("login", False)),
        "superuser": bool(config.get("superuser", False)),
        "inherit": bool(config.get("inherit", True)),
        "createdb": bool(config.get("createdb", False)),
        "createrole": bool(config.get("createrole", False)),
        "replication": bool(config.get("replication", False)),
        "password_secret": secret_name or (config.get("passwordSecret") or {}).get("name") or "none",
        "in_roles": list(config.get("inRoles") or []),
        "source": source,
        "status": dict(state) if state else None,
    }


def role_text(role: Mapping[str, Any]) -> str:
    flags = [f for f in ("login", "superuser", "inherit", "createdb", "createrole", "replication") if role[f]]
    state = role.get("status") or {}
    where = "ready" if state.get("ready") else f"{state.get('reason', 'unknown')}: {state.get('message') or ''}"
    return (f"- **{role['name']}** ({', '.join(flags) or 'no attributes'}) — {role['source']}, {where}; "
            f"password Secret: {role['password_secret']}")


def database_entry(database: Mapping[str, Any] | None, request: Mapping[str, Any] | None) -> dict[str, Any]:
    source = database or request or {}
    spec = source.get("spec") or {}
    status = (database or {}).get("status") or {}
    return {
        "crd_name": source["metadata"]["name"],
        "database_name": spec.get("name"),
        "owner": spec.get("owner"),
        "ensure": spec.get("ensure", "present"),
        "reclaim_policy": spec.get("databaseReclaimPolicy", "retain"),
        "applied": status.get("applied"),
        "message": status.get("message"),
        "request": intent_state(request),
    }


def database_text(entry: Mapping[str, Any]) -> str:
    state = "applied" if entry.get("applied") else (entry.get("message") or "not applied yet")
    return (f"- **{entry['database_name']}** (owner {entry['owner']}, reclaim policy {entry['reclaim_policy']})"
            f" — {state}; Database object {entry['crd_name']}")


def as_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str)


TRUNCATION_NOTE = "\n… (truncated; use format='json' or a narrower namespace)"


def truncate(text: str) -> str:
    if len(text) <= CHARACTER_LIMIT:
        return text
    return text[:CHARACTER_LIMIT] + TRUNCATION_NOTE


def scope(namespace: str) -> str:
    return f"namespace '{namespace}'"


def manifests_yaml(objects: Iterable[Mapping[str, Any]]) -> str:
    import yaml  # noqa: PLC0415

    return yaml.safe_dump_all([dict(o) for o in objects], sort_keys=False)


def secret_hint(secret_name: str, namespace: str) -> str:
    return (f"kubectl get secret {secret_name} -n {namespace} -o jsonpath='{{.data.password}}' | base64 -d"
            f"  (the gateway never reads or returns passwords; label cnpg.io/cluster, type basic-auth)")
