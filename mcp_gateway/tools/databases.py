"""Database tools: list, create, delete — through PgDatabaseRequests (CNPG Database objects)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.types import CallToolResult
from pydantic import Field

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import RESERVED_DATABASE_NAMES
from cnpg_mcp_api.naming import database_request_name
from mcp_gateway import errors, intents, render
from mcp_gateway.gateway import Gateway, both
from mcp_gateway.registry import CREATE, DELETE, READ, ToolSpec
from mcp_gateway.tools import delete_request, outputs, paging, result
from mcp_gateway.tools.clusters import ClusterName, DryRun, Namespace
from mcp_gateway.tools.roles import RoleName, _known_cluster, _require_cluster, checked_name

PLURAL = constants.DATABASE_REQUEST_PLURAL
DatabaseName = Annotated[str, Field(description="PostgreSQL database name, used as given (quoted): letters, "
                                                "digits, '_', '-', '.', '$'; at most 63 bytes.")]


def checked_database_name(name: str) -> str:
    if name in RESERVED_DATABASE_NAMES:
        raise errors.tool_error(errors.INVALID_ARGUMENT, f"database name {name!r} is reserved "
                                f"({', '.join(RESERVED_DATABASE_NAMES)}). Choose another name.")
    return checked_name(name, "database")


async def list_postgres_databases(gw: Gateway, cluster_name: ClusterName, namespace: Namespace = None,
                                  format: Annotated[Literal["text", "json"], Field(
                                      description="'text' (default) or 'json'")] = "text",
                                  limit: paging.Limit = paging.DEFAULT_LIMIT,
                                  continue_: paging.Continue = None) -> CallToolResult:
    """Use to see the databases of a cluster and whether each one is applied.
    Lists the CNPG Database objects (including those requested through cnpg-mcp that are not created yet),
    with CNPG's applied state: one page of `limit` in object-name order, and 'continue' for the next page."""
    ns = gw.namespace(namespace)
    async with gw.acting(f"listing databases of {ns}/{cluster_name}"):
        # The three reads at once: one round trip, not three in a row.
        (cluster, database_list), request_list = await both(
            both(gw.kube.cnpg_get_or_none(constants.CNPG_CLUSTERS, ns, cluster_name),
                 gw.kube.cnpg_list(constants.CNPG_DATABASES, ns)),
            gw.kube.intent_list(PLURAL, ns))
        await _known_cluster(gw, ns, cluster_name, cluster)
        databases = [d for d in database_list if (d.get("spec") or {}).get("cluster", {}).get("name") == cluster_name]
        requests = {r["metadata"]["name"]: r for r in request_list if r["spec"].get("cluster") == cluster_name}
    entries = [render.database_entry(d, requests.pop(d["metadata"]["name"], None)) for d in databases]
    entries += [render.database_entry(None, r) for r in requests.values()]
    data: dict[str, Any] = {"cluster": f"{ns}/{cluster_name}"}
    shown = paging.paged(data, "databases", entries, "crd_name", limit, continue_)
    text = (f"No managed databases found for cluster '{ns}/{cluster_name}' (the bootstrap database is not a "
            "Database object)." if not entries else
            f"PostgreSQL Databases for cluster '{ns}/{cluster_name}' ({len(entries)}):\n"
            + "\n".join(map(render.database_text, shown.items))
            + paging.more("list_postgres_databases", shown, cluster_name=cluster_name, namespace=ns))
    return result(text, data, as_json=format == "json")


async def create_postgres_database(
    gw: Gateway,
    cluster_name: ClusterName, database_name: DatabaseName,
    owner: Annotated[RoleName, Field(description="Owning role")],
    reclaim_policy: Annotated[Literal["retain", "delete"], Field(
        description="'retain' (default): the database survives deletion of its object; 'delete': dropped"
    )] = "retain",
    namespace: Namespace = None, dry_run: DryRun = False,
) -> CallToolResult:
    """Use to create a database in a cluster, owned by an existing role.
    Creates a PgDatabaseRequest; the operator creates the CNPG Database."""
    checked_database_name(database_name)
    checked_name(owner, "owner role")
    ns = gw.namespace(namespace)
    body = intents.database_intent(cluster_name, database_name, owner, reclaim_policy=reclaim_policy,
                                   namespace=ns, requested_by=gw.requested_by())
    name = body["metadata"]["name"]
    async with gw.acting(f"creating database {database_name} in {ns}/{cluster_name}"):
        await _require_cluster(gw, ns, cluster_name)
        if await gw.kube.intent_get_or_none(PLURAL, ns, name) is not None or \
                await gw.kube.cnpg_get_or_none(constants.CNPG_DATABASES, ns, name) is not None:
            raise errors.tool_error(errors.ALREADY_EXISTS,
                                    f"database {database_name!r} already exists for {cluster_name!r}")
        created = await gw.kube.write_intent(PLURAL, ns, body, dry_run=dry_run)
    data: dict[str, Any] = {"dry_run": dry_run, "created": not dry_run, "database": database_name, "owner": owner,
            "cluster": f"{ns}/{cluster_name}", "request": f"{PLURAL}/{name}",
            "manifest": {k: created[k] for k in ("apiVersion", "kind", "spec")}}
    if dry_run:
        return result(f"Dry run (nothing created):\n```yaml\n{render.manifests_yaml([data['manifest']])}```",
                      data)
    return result(f"Successfully created PgDatabaseRequest {name} for database '{database_name}' in cluster "
                  f"'{ns}/{cluster_name}'; the operator creates the Database object and CNPG the database.\n\n"
                  f"Database Details:\n- Name: {database_name}\n- Owner: {owner}\n"
                  f"- Reclaim Policy: {reclaim_policy}", data)


async def delete_postgres_database(gw: Gateway, cluster_name: ClusterName, database_name: DatabaseName,
                                   namespace: Namespace = None, dry_run: DryRun = False) -> CallToolResult:
    """Use to remove a database that cnpg-mcp manages.
    Deletes its PgDatabaseRequest: with reclaim policy 'delete' the database is dropped from PostgreSQL;
    with 'retain' (the default) the data stays and only the declaration goes."""
    checked_name(database_name, "database")
    ns = gw.namespace(namespace)
    name = database_request_name(cluster_name, database_name)
    request = await delete_request(
        gw, PLURAL, ns, name, dry_run=dry_run, doing=f"deleting database {database_name} in {ns}/{cluster_name}",
        missing=f"database {database_name!r} of cluster {cluster_name!r} is not managed by cnpg-mcp "
                "(list_postgres_databases shows them)")
    policy = request["spec"].get("databaseReclaimPolicy", "retain")
    effect = ("the database will be DROPPED with its data" if policy == "delete" else
              "the database and its data stay in PostgreSQL (reclaim policy retain)")
    heading = (f"Dry run: Deletion preview for database '{database_name}' in cluster '{ns}/{cluster_name}' "
               "(nothing deleted)" if dry_run else
               f"Successfully initiated deletion of PgDatabaseRequest {name} for database '{database_name}'")
    return result(f"{heading}.\n\nReclaim Policy: {policy}\nResult: {effect}.",
                  {"dry_run": dry_run, "deleted": not dry_run, "database": database_name,
                   "reclaim_policy": policy})



TOOLS = (
    ToolSpec("list_postgres_databases", "List PostgreSQL databases", "databases", READ, outputs.DatabaseList,
             list_postgres_databases, (errors.NOT_FOUND,)),
    ToolSpec("create_postgres_database", "Create PostgreSQL database", "databases", CREATE,
             outputs.DatabaseCreated, create_postgres_database, (errors.NOT_FOUND, errors.ALREADY_EXISTS)),
    ToolSpec("delete_postgres_database", "Delete PostgreSQL database", "databases", DELETE,
             outputs.DatabaseDeleted, delete_postgres_database, (errors.NOT_FOUND,)),
)
