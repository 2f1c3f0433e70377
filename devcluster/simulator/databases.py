"""Database (postgresql.cnpg.io/v1): one PostgreSQL database with its schemas and extensions,
CNPG's finalizer and reclaim policy. The pure SQL builders are also used by clusters.py (bootstrap)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import psycopg
from psycopg import sql

from devcluster.simulator.common import DATABASE_FINALIZER, Json, Key, crd_status, pg_error_text
from devcluster.simulator.context import OwnKindHandler

log = logging.getLogger("cnpg-simulator")
PLURAL = "databases"


def database_options(spec: Mapping[str, Any]) -> list[sql.Composable]:
    """CREATE DATABASE options other than OWNER, from a CNPG Database spec."""
    options: list[sql.Composable] = []
    for key, keyword in (("template", "TEMPLATE"), ("tablespace", "TABLESPACE")):
        if spec.get(key):
            options.append(sql.SQL(keyword + " {}").format(sql.Identifier(spec[key])))
    for key, keyword in (("encoding", "ENCODING"), ("locale", "LOCALE"), ("localeCollate", "LC_COLLATE"),
                         ("localeCType", "LC_CTYPE"), ("localeProvider", "LOCALE_PROVIDER"),
                         ("icuLocale", "ICU_LOCALE"), ("collationVersion", "COLLATION_VERSION")):
        if spec.get(key):
            options.append(sql.SQL(keyword + " {}").format(sql.Literal(spec[key])))
    if spec.get("isTemplate") is not None:
        options.append(sql.SQL("IS_TEMPLATE {}").format(sql.Literal(bool(spec["isTemplate"]))))
    if spec.get("allowConnections") is not None:
        options.append(sql.SQL("ALLOW_CONNECTIONS {}").format(sql.Literal(bool(spec["allowConnections"]))))
    if spec.get("connectionLimit") is not None:
        options.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(int(spec["connectionLimit"]))))
    return options


def alter_database_sql(spec: Mapping[str, Any], actual: tuple[str, bool, bool, int]) -> list[sql.Composed]:
    name = sql.Identifier(spec["name"])
    owner, is_template, allow_connections, connection_limit = actual
    statements: list[sql.Composed] = []
    if spec["owner"] != owner:
        owner_sql = sql.Identifier(spec["owner"])
        statements.append(sql.SQL("ALTER DATABASE {} OWNER TO {}").format(name, owner_sql))
    wanted = (("isTemplate", "IS_TEMPLATE", is_template), ("allowConnections", "ALLOW_CONNECTIONS",
                                                          allow_connections))
    for key, keyword, have in wanted:
        if spec.get(key) is not None and bool(spec[key]) != have:
            statements.append(sql.SQL("ALTER DATABASE {} WITH " + keyword + " {}").format(
                name, sql.Literal(bool(spec[key]))))
    if spec.get("connectionLimit") is not None and int(spec["connectionLimit"]) != connection_limit:
        statements.append(sql.SQL("ALTER DATABASE {} WITH CONNECTION LIMIT {}").format(
            name, sql.Literal(int(spec["connectionLimit"]))))
    return statements


def create_database_sql(spec: Mapping[str, Any]) -> sql.Composed:
    options = [sql.SQL("OWNER {}").format(sql.Identifier(spec["owner"])), *database_options(spec)]
    return sql.SQL("CREATE DATABASE {} WITH {}").format(sql.Identifier(spec["name"]),
                                                        sql.SQL(" ").join(options))


def drop_database_sql(name: str) -> sql.Composed:
    # WITH (FORCE) terminates the sessions still connected to it (PostgreSQL ≥ 13).
    return sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))


def schema_sql(schema: Mapping[str, Any]) -> list[sql.Composed]:
    name = sql.Identifier(schema["name"])
    if (schema.get("ensure") or "present") == "absent":
        return [sql.SQL("DROP SCHEMA IF EXISTS {}").format(name)]
    statements = [sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name)]
    if schema.get("owner"):
        owner = sql.Identifier(schema["owner"])
        statements.append(sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(name, owner))
    return statements


def extension_sql(extension: Mapping[str, Any], installed: tuple[str, str] | None) -> list[sql.Composed]:
    """installed: (version, schema) of the extension in that database, or None."""
    name = sql.Identifier(extension["name"])
    if (extension.get("ensure") or "present") == "absent":
        return [sql.SQL("DROP EXTENSION IF EXISTS {}").format(name)] if installed else []
    version, schema = extension.get("version"), extension.get("schema")
    if installed is None:
        parts = [sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(name)]
        if schema:
            parts.append(sql.SQL("SCHEMA {}").format(sql.Identifier(schema)))
        if version:
            parts.append(sql.SQL("VERSION {}").format(sql.Literal(version)))
        return [sql.SQL(" ").join(parts)]
    statements = []
    if version and installed[0] != version:
        statements.append(sql.SQL("ALTER EXTENSION {} UPDATE TO {}").format(name, sql.Literal(version)))
    if schema and installed[1] != schema:
        statements.append(sql.SQL("ALTER EXTENSION {} SET SCHEMA {}").format(name, sql.Identifier(schema)))
    return statements




class DatabaseHandler(OwnKindHandler):
    kind: ClassVar[str] = "database"
    plural: ClassVar[str] = PLURAL

    def reconcile(self, namespace: str, name: str) -> bool:
        key: Key = (self.kind, namespace, name)
        database = self._ctx.kube.get("databases", namespace, name)
        if database is None:
            self._ctx.cluster_users.remember(key, [])
            return True
        spec = database.get("spec") or {}
        cluster_name = (spec.get("cluster") or {}).get("name", "")
        self._ctx.cluster_users.remember(key, [cluster_name])
        if database["metadata"].get("deletionTimestamp"):
            return self._release_database(database)
        self._ctx.kube.set_finalizer("databases", database, DATABASE_FINALIZER, present=True)
        generation = int(database["metadata"].get("generation", 1))
        extra: Json = {}
        try:
            if self._ctx.kube.get("clusters", namespace, cluster_name) is None:
                raise LookupError(f'cluster "{cluster_name}" not found')
            if (spec.get("ensure") or "present") == "absent":
                self._ctx.pg.run(drop_database_sql(spec["name"]))
            else:
                extra = self._apply_database(spec)
            failed = [f"{kind} {o['name']}: {o['message']}" for kind in ("schemas", "extensions")
                      for o in extra.get(kind, []) if not o["applied"]]
            error = "; ".join(failed) or None
        except (psycopg.Error, LookupError) as exc:
            error = pg_error_text(exc)
        if error:
            log.warning("Database %s/%s: %s", namespace, name, error)
        self._ctx.kube.patch_status("databases", database, crd_status(generation, error, extra))
        return error is None

    def _apply_database(self, spec: Mapping[str, Any]) -> Json:
        """CREATE or ALTER the database, then its schemas and extensions (status entry per object)."""
        actual = self._ctx.pg.database(spec["name"])
        if actual is None:
            self._ctx.pg.run(create_database_sql(spec))
            log.info("database %s created (owner %s)", spec["name"], spec["owner"])
        else:
            for statement in alter_database_sql(spec, actual):
                self._ctx.pg.run(statement)
        extra: Json = {}
        if spec.get("schemas"):
            extra["schemas"] = [self._apply_object(spec["name"], schema_sql(s), s["name"])
                                for s in spec["schemas"]]
        if spec.get("extensions"):
            extra["extensions"] = [self._apply_extension(spec["name"], e) for e in spec["extensions"]]
        return extra

    def _apply_object(self, dbname: str, statements: Sequence[sql.Composed], name: str) -> Json:
        try:
            for statement in statements:
                self._ctx.pg.run(statement, dbname)
        except psycopg.Error as exc:
            return {"name": name, "applied": False, "message": pg_error_text(exc)}
        return {"name": name, "applied": True}

    def _apply_extension(self, dbname: str, extension: Mapping[str, Any]) -> Json:
        try:
            row = self._ctx.pg.query_one(
                """SELECT e.extversion, n.nspname FROM pg_catalog.pg_extension e
                   JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = %s""",
                (extension["name"],), dbname)
        except psycopg.Error as exc:
            return {"name": extension["name"], "applied": False, "message": pg_error_text(exc)}
        installed = (str(row[0]), str(row[1])) if row else None
        return self._apply_object(dbname, extension_sql(extension, installed), extension["name"])

    def _release_database(self, database: Json) -> bool:
        if DATABASE_FINALIZER not in (database["metadata"].get("finalizers") or []):
            return True
        spec = database.get("spec") or {}
        if spec.get("databaseReclaimPolicy") == "delete":
            try:
                self._ctx.pg.run(drop_database_sql(spec["name"]))
                log.info("database %s dropped", spec["name"])
            except psycopg.Error as exc:
                error = pg_error_text(exc)
                log.warning("Database %s: cannot drop: %s", spec["name"], error)
                self._ctx.kube.patch_status("databases", database, {"applied": False, "message": error})
                return False
        self._ctx.kube.set_finalizer("databases", database, DATABASE_FINALIZER, present=False)
        return True

