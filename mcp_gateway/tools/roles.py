"""Role tools: list, create, update, delete — through PgRoleRequests; passwords never pass through here."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from mcp.types import CallToolResult
from pydantic import Field

from cnpg_mcp_api import constants
from cnpg_mcp_api.naming import identifier_problem, role_request_name, role_secret_name
from cnpg_mcp_api.policy import is_reserved_role
from mcp_gateway import errors, intents, render
from mcp_gateway.gateway import Gateway, both
from mcp_gateway.registry import CREATE, DELETE, READ, ToolSpec, hints
from mcp_gateway.tools import delete_request, outputs, paging, privilege, result
from mcp_gateway.tools.clusters import ClusterName, DryRun, Namespace
from mcp_gateway.tools.privilege import PrivilegeAck

PLURAL = constants.ROLE_REQUEST_PLURAL
RoleName = Annotated[str, Field(description="PostgreSQL role name, used as given (quoted): letters, digits, '_', "
                                            "'-', '.', '$'; at most 63 bytes; not pg_* or a reserved role.")]
Flag = Annotated[bool | None, Field(description="New value; omit to keep")]
Privileged = Annotated[bool, Field(description=(
    "Set true only after the user confirmed superuser, replication or createrole: the explicit "
    "acknowledgement of privileged attributes (the cluster admin's policy still decides)."))]


def checked_name(name: str, what: str = "role") -> str:
    """The name when PostgreSQL, CloudNativePG and cnpg-mcp accept it; an INVALID_ARGUMENT error otherwise."""
    problem = identifier_problem(name, what)
    if problem is None and what == "role" and is_reserved_role(name):
        problem = (f"role name {name!r} is reserved for PostgreSQL or CloudNativePG (postgres, "
                   "streaming_replica, pg_*, cnpg_*)")
    if problem is not None:
        raise errors.tool_error(errors.INVALID_ARGUMENT, f"{problem}. Choose another name.")
    return name


async def _ask_create(cluster_name: str, role_name: str, superuser: bool, replication: bool, createrole: bool,
                      privileged: bool, ctx: Context) -> Elicit[PrivilegeAck] | PrivilegeAck:
    flags = {"superuser": superuser, "replication": replication, "createrole": createrole}
    return privilege.question(flags, privileged, role_name, cluster_name, ctx)


async def _ask_update(cluster_name: str, role_name: str, superuser: bool | None, replication: bool | None,
                      createrole: bool | None, privileged: bool, ctx: Context) -> Elicit[PrivilegeAck] | PrivilegeAck:
    flags = {"superuser": superuser, "replication": replication, "createrole": createrole}
    return privilege.question(flags, privileged, role_name, cluster_name, ctx)


async def _require_cluster(gw: Gateway, ns: str, cluster_name: str) -> dict[str, Any]:
    return await _known_cluster(gw, ns, cluster_name,
                                await gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, cluster_name))


async def _known_cluster(gw: Gateway, ns: str, cluster_name: str, cluster: dict[str, Any] | None) -> dict[str, Any]:
    """The Cluster read already ({} while only requested); NOT_FOUND when neither it nor its request exists."""
    if cluster is None and await gw.kube.intent_get_or_none(constants.CLUSTER_REQUEST_PLURAL, ns,
                                                            cluster_name) is None:
        raise errors.tool_error(errors.NOT_FOUND, f"no cluster {cluster_name!r} in namespace {ns!r}; "
                                                  "list_postgres_clusters shows what exists")
    return cluster or {}


async def list_postgres_roles(gw: Gateway, cluster_name: ClusterName, namespace: Namespace = None,
                              format: Annotated[Literal["text", "json"], Field(
                                  description="'text' (default) or 'json'")] = "text",
                              limit: paging.Limit = paging.DEFAULT_LIMIT,
                              continue_: paging.Continue = None) -> CallToolResult:
    """Use to see a cluster's PostgreSQL roles and whether each one is applied.
    Lists those requested through cnpg-mcp (with CNPG's reconcile state), and those declared directly in
    the Cluster's spec.managed.roles or as DatabaseRole objects: one page of `limit` in name order, and
    'continue' for the next page."""
    ns = gw.namespace(namespace)
    async with gw.acting(f"listing roles of {ns}/{cluster_name}"):
        # The three reads at once: one round trip, not three in a row.
        (read, request_list), database_role_list = await both(
            both(gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, cluster_name), gw.kube.intent_list(PLURAL, ns)),
            gw.kube.cnpg_list(constants.CNPG_DATABASE_ROLES, ns))
        cluster = await _known_cluster(gw, ns, cluster_name, read)
        requests = [r for r in request_list if r["spec"].get("cluster") == cluster_name]
        database_roles = [d for d in database_role_list
                          if (d.get("spec") or {}).get("cluster", {}).get("name") == cluster_name]
    roles = [render.role_entry(r["spec"]["roleName"], r["spec"], source="PgRoleRequest " + r["metadata"]["name"],
                               state=render.intent_state(r), secret_name=(r.get("status") or {}).get("secretName"))
             for r in requests]
    seen = {r["name"] for r in roles}
    managed_status = (cluster.get("status") or {}).get("managedRolesStatus") or {}
    reconciled = set((managed_status.get("byStatus") or {}).get("reconciled") or [])
    cannot = managed_status.get("cannotReconcile") or {}
    for entry in (cluster.get("spec") or {}).get("managed", {}).get("roles") or []:
        if entry.get("name") in seen:
            continue
        state = {"ready": entry["name"] in reconciled,
                 "reason": "Reconciled" if entry["name"] in reconciled else "Pending",
                 "message": "; ".join(cannot.get(entry["name"]) or []) or None}
        roles.append(render.role_entry(entry["name"], entry, source="Cluster spec.managed.roles", state=state,
                                       secret_name=None))
        seen.add(entry["name"])
    for database_role in database_roles:
        spec, status = database_role.get("spec") or {}, database_role.get("status") or {}
        if spec.get("name") in seen:
            continue
        state = {"ready": bool(status.get("applied")), "reason": "Applied" if status.get("applied") else "Pending",
                 "message": status.get("message")}
        roles.append(render.role_entry(spec.get("name", "?"), spec,
                                       source="DatabaseRole " + database_role["metadata"]["name"],
                                       state=state, secret_name=None))
    data: dict[str, Any] = {"cluster": f"{ns}/{cluster_name}"}
    shown = paging.paged(data, "roles", roles, "name", limit, continue_)
    text = (f"No managed roles defined in cluster '{ns}/{cluster_name}' (besides CNPG's own)." if not roles else
            f"PostgreSQL Roles managed in cluster '{ns}/{cluster_name}' ({len(roles)}):\n"
            + "\n".join(map(render.role_text, shown.items))
            + paging.more("list_postgres_roles", shown, cluster_name=cluster_name, namespace=ns))
    return result(text, data, as_json=format == "json")


async def create_postgres_role(
    gw: Gateway,
    cluster_name: ClusterName, role_name: RoleName,
    login: bool = True, superuser: bool = False, inherit: bool = True, createdb: bool = False,
    createrole: bool = False, replication: bool = False, privileged: Privileged = False,
    namespace: Namespace = None, dry_run: DryRun = False, *, ctx: Context,
    acknowledgement: Annotated[ElicitationResult[PrivilegeAck], Resolve(_ask_create)],
) -> CallToolResult:
    """Use to create a PostgreSQL role (user) in a cluster.
    Creates a PgRoleRequest. The operator generates a password and stores
    it in the Secret cnpg-<cluster>-user-<role>; this tool returns the Secret's name, never the password.
    superuser/replication/createrole need the user's acknowledgement (asked through the client, or
    privileged=true) and are granted only where the cluster admin's policy allows them."""
    checked_name(role_name)
    ns = gw.namespace(namespace)
    flags = {"login": login, "superuser": superuser, "inherit": inherit, "createdb": createdb,
             "createrole": createrole, "replication": replication}
    privileged = privilege.require(flags, privileged, acknowledgement, ctx, "create_postgres_role")
    body = intents.role_intent(cluster_name, role_name, ns, flags, gw.requested_by(), privileged=privileged)
    name = body["metadata"]["name"]
    async with gw.acting(f"creating role {role_name} in {ns}/{cluster_name}"):
        await _require_cluster(gw, ns, cluster_name)
        if await gw.kube.intent_get_or_none(PLURAL, ns, name) is not None:
            raise errors.tool_error(errors.ALREADY_EXISTS, f"role {role_name!r} is already requested for "
                                    f"{cluster_name!r}; use update_postgres_role to change it")
        created = await gw.kube.write_intent(PLURAL, ns, body, dry_run=dry_run)
    secret = role_secret_name(cluster_name, role_name)
    data: dict[str, Any] = {
        "dry_run": dry_run, "created": not dry_run, "role": role_name, "cluster": f"{ns}/{cluster_name}",
        "request": f"{PLURAL}/{name}", "password_secret": secret,
        "manifest": {k: created[k] for k in ("apiVersion", "kind", "spec")},
    }
    if dry_run:
        return result(f"Dry run (nothing created):\n```yaml\n{render.manifests_yaml([data['manifest']])}```",
                      data)
    text = (f"Successfully created PgRoleRequest {name} for PostgreSQL role '{role_name}' in cluster "
            f"'{ns}/{cluster_name}'; the operator creates the role in PostgreSQL (list_postgres_roles shows when "
            f"it is ready).\nPassword stored in Kubernetes secret: {secret}\nTo retrieve the password: "
            f"{render.secret_hint(secret, ns)}")
    if privilege.asked(flags):
        text += ("\nPrivileged attributes are granted only if the operator's admin policy allows this "
                 "namespace; otherwise the request reports PolicyDenied (see list_postgres_roles).")
    return result(text, data)

async def update_postgres_role(
    gw: Gateway,
    cluster_name: ClusterName, role_name: RoleName,
    login: Flag = None, superuser: Flag = None, inherit: Flag = None, createdb: Flag = None,
    createrole: Flag = None, replication: Flag = None,
    password: Annotated[str | None, Field(description="Not accepted (a password must not pass through the "
                                                      "model); use reset_password=true")] = None,
    reset_password: Annotated[bool, Field(description="Generate a new password (rotation)")] = False,
    privileged: Privileged = False, namespace: Namespace = None, dry_run: DryRun = False, *, ctx: Context,
    acknowledgement: Annotated[ElicitationResult[PrivilegeAck], Resolve(_ask_update)],
) -> CallToolResult:
    """Use to change a role's attributes or rotate its password.
    With reset_password=true the operator writes a new password into the role's Secret and CNPG applies
    it. Literal passwords are refused on purpose."""
    if password is not None:
        raise errors.tool_error(errors.PASSWORD_NOT_ACCEPTED, (
            "setting a literal password through MCP is refused: it would pass through the model's context "
            "and logs. Call update_postgres_role with reset_password=true to rotate it, or write the "
            f"password into Secret {role_secret_name(cluster_name, role_name)} yourself with kubectl."))
    checked_name(role_name)
    ns = gw.namespace(namespace)
    name = role_request_name(cluster_name, role_name)
    changes = {"login": login, "superuser": superuser, "inherit": inherit, "createdb": createdb,
               "createrole": createrole, "replication": replication}
    privileged = privilege.require(changes, privileged, acknowledgement, ctx, "update_postgres_role")
    async with gw.acting(f"updating role {role_name} in {ns}/{cluster_name}"):
        request = await gw.kube.intent_get_or_none(PLURAL, ns, name)
        if request is None:
            raise errors.tool_error(errors.NOT_FOUND, f"role {role_name!r} of cluster {cluster_name!r} is not "
                                    "managed by cnpg-mcp; create_postgres_role creates it")
        patch = intents.role_update_patch(request["spec"], changes, reset_password, privileged=privileged)
        if not patch:
            return result("No updates specified: every given attribute already has that value.",
                          {"changed": False, "role": role_name})
        await gw.kube.patch_intent(PLURAL, ns, name, patch, dry_run=dry_run)
    diff = {k: {"old": request["spec"].get(k), "new": v} for k, v in patch["spec"].items() if k != "password"}
    data = {"dry_run": dry_run, "changed": not dry_run, "role": role_name, "changes": diff,
            "password_rotated": reset_password and not dry_run}
    lines = [f"- {k}: {v['old']} → {v['new']}" for k, v in diff.items()]
    if reset_password:
        lines.append(f"- password: rotated (new password in Secret {role_secret_name(cluster_name, role_name)})")
    heading = (f"Dry run: Update preview for role '{role_name}' in cluster '{ns}/{cluster_name}' (nothing changed)"
               if dry_run else f"Successfully updated PgRoleRequest {name} of PostgreSQL role '{role_name}' in "
               f"cluster '{ns}/{cluster_name}'; the operator applies the change in PostgreSQL")
    return result(f"{heading}.\n\nUpdated Attributes:\n" + "\n".join(lines), data)


async def delete_postgres_role(gw: Gateway, cluster_name: ClusterName, role_name: RoleName, namespace: Namespace = None,
                               dry_run: DryRun = False) -> CallToolResult:
    """Use to drop a PostgreSQL role that cnpg-mcp manages.
    Its PgRoleRequest is deleted, the operator has CNPG really drop the role in PostgreSQL
    (reporting what blocks the drop, e.g. objects it owns), then removes its password Secret."""
    checked_name(role_name)
    ns = gw.namespace(namespace)
    name = role_request_name(cluster_name, role_name)
    request = await delete_request(
        gw, PLURAL, ns, name, dry_run=dry_run, doing=f"deleting role {role_name} in {ns}/{cluster_name}",
        missing=f"role {role_name!r} of cluster {cluster_name!r} is not managed by cnpg-mcp (list_postgres_roles "
                "shows the roles)")
    policy = request["spec"].get("reclaimPolicy", "delete")
    effect = ("the role is dropped from PostgreSQL and its Secret deleted" if policy == "delete" else
              "the role stays in PostgreSQL (reclaimPolicy retain); its Secret is deleted")
    data = {"dry_run": dry_run, "deleted": not dry_run, "role": role_name, "reclaim_policy": policy}
    heading = (f"Dry run: Deletion preview for role '{role_name}' in cluster '{ns}/{cluster_name}' (nothing "
               "deleted): deleting" if dry_run else f"Successfully initiated deletion of PostgreSQL role "
               f"'{role_name}' from cluster '{ns}/{cluster_name}': deleting")
    return result(f"{heading} PgRoleRequest {name}: {effect}. Progress: list_postgres_roles.", data)



TOOLS = (
    ToolSpec("list_postgres_roles", "List PostgreSQL roles", "roles", READ, outputs.RoleList, list_postgres_roles,
             (errors.NOT_FOUND,)),
    ToolSpec("create_postgres_role", "Create PostgreSQL role", "roles", CREATE, outputs.RoleCreated,
             create_postgres_role, (errors.NOT_FOUND, errors.ALREADY_EXISTS, *privilege.ERRORS)),
    # Destructive: revoking attributes or rotating the password cuts off what uses the role today.
    ToolSpec("update_postgres_role", "Update PostgreSQL role or rotate its password", "roles",
             hints(read_only=False, destructive=True, idempotent=False), outputs.RoleUpdated, update_postgres_role,
             (errors.NOT_FOUND, errors.PASSWORD_NOT_ACCEPTED, *privilege.ERRORS)),
    ToolSpec("delete_postgres_role", "Delete PostgreSQL role", "roles", DELETE, outputs.RoleDeleted,
             delete_postgres_role, (errors.NOT_FOUND,)),
)
