"""Superuser access to the ONE real PostgreSQL server that every simulated Cluster shares."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from devcluster.simulator.roles import ActualRole

if TYPE_CHECKING:
    from devcluster.postgres import PostgresServer

# A statement of the simulator never waits forever on a lock someone else holds (a test's open
# transaction, a DROP DATABASE): it fails, and the key backs off, instead of stalling every cluster.
SESSION_OPTIONS = "-c lock_timeout=5s -c statement_timeout=60s"


class Postgres:
    """Superuser access to the shared server: one connection per worker thread (a transaction of one
    worker never interleaves with another's), re-opened when it breaks."""

    def __init__(self, server: PostgresServer) -> None:
        self._server = server
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            conn = psycopg.connect(self._server.superuser_dsn(), autocommit=True, options=SESSION_OPTIONS)
            self._local.conn = conn
            with self._lock:
                self._all = [c for c in self._all if not c.closed] + [conn]
        return conn

    @property
    def server(self) -> PostgresServer:
        return self._server

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for conn in connections:
            conn.close()

    def read_role(self, name: str) -> ActualRole | None:
        row = self.conn().execute(
            """SELECT r.rolname, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolcreatedb, r.rolcanlogin,
                      r.rolreplication, r.rolbypassrls, r.rolconnlimit,
                      extract(epoch FROM r.rolvaliduntil)::float8, r.rolpassword IS NOT NULL,
                      pg_catalog.shobj_description(r.oid, 'pg_authid'), r.xmin::text::bigint,
                      ARRAY(SELECT g.rolname FROM pg_catalog.pg_auth_members m
                            JOIN pg_catalog.pg_roles g ON g.oid = m.roleid WHERE m.member = r.oid)
               FROM pg_catalog.pg_authid r WHERE r.rolname = %s""", (name,)).fetchone()
        if row is None:
            return None
        return ActualRole(name=row[0], superuser=row[1], inherit=row[2], createrole=row[3], createdb=row[4],
                          login=row[5], replication=row[6], bypassrls=row[7], connection_limit=row[8],
                          valid_until_epoch=row[9], has_password=row[10], comment=row[11],
                          xmin=row[12], in_roles=frozenset(row[13] or ()))

    def run_in_transaction(self, statements: Sequence[sql.Composed]) -> None:
        conn = self.conn()
        with conn.transaction():
            for statement in statements:
                conn.execute(statement)

    def run(self, statement: sql.Composed, dbname: str = "postgres") -> None:
        if dbname == "postgres":
            self.conn().execute(statement)
            return
        with psycopg.connect(self._server.superuser_dsn(dbname), autocommit=True, options=SESSION_OPTIONS) as conn:
            conn.execute(statement)

    def query_one(self, query: str, params: Sequence[Any],
                  dbname: str = "postgres") -> tuple[Any, ...] | None:
        if dbname == "postgres":
            row: tuple[Any, ...] | None = self.conn().execute(query, params).fetchone()
            return row
        with psycopg.connect(self._server.superuser_dsn(dbname), autocommit=True, options=SESSION_OPTIONS) as conn:
            row = conn.execute(query, params).fetchone()
            return row

    def role_exists(self, name: str) -> bool:
        return self.query_one("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s", (name,)) is not None

    def database(self, name: str) -> tuple[str, bool, bool, int] | None:
        """(owner, is_template, allow_connections, connection_limit) or None."""
        row = self.query_one(
            """SELECT pg_catalog.pg_get_userbyid(datdba), datistemplate, datallowconn, datconnlimit
               FROM pg_catalog.pg_database WHERE datname = %s""", (name,))
        return None if row is None else (row[0], row[1], row[2], row[3])

