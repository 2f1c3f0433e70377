"""PostgreSQL roles as CNPG manages them: the pure planning (RoleConfiguration → SQL, SCRAM verifiers,
when to set a password) and its application on the shared server. Used by Cluster.spec.managed.roles
(clusters.py) and DatabaseRole (database_roles.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from psycopg import sql

if TYPE_CHECKING:
    from devcluster.simulator.pg import Postgres

log = logging.getLogger("cnpg-simulator")



@dataclass(frozen=True)
class DesiredRole:
    """A CNPG RoleConfiguration (Cluster.spec.managed.roles[] or DatabaseRole.spec), with defaults."""

    name: str
    ensure: str = "present"
    login: bool = False
    superuser: bool = False
    inherit: bool = True
    createdb: bool = False
    createrole: bool = False
    replication: bool = False
    bypassrls: bool = False
    connection_limit: int = -1
    valid_until: str | None = None
    in_roles: tuple[str, ...] = ()
    comment: str | None = None
    password_secret: str | None = None
    disable_password: bool = False


def desired_role(entry: Mapping[str, Any]) -> DesiredRole:
    secret_ref = entry.get("passwordSecret") or {}
    return DesiredRole(
        name=str(entry["name"]),
        ensure=str(entry.get("ensure") or "present"),
        login=bool(entry.get("login", False)),
        superuser=bool(entry.get("superuser", False)),
        inherit=bool(entry.get("inherit", True)),
        createdb=bool(entry.get("createdb", False)),
        createrole=bool(entry.get("createrole", False)),
        replication=bool(entry.get("replication", False)),
        bypassrls=bool(entry.get("bypassrls", False)),
        connection_limit=int(entry.get("connectionLimit", -1)),
        valid_until=entry.get("validUntil") or None,
        in_roles=tuple(entry.get("inRoles") or ()),
        comment=entry.get("comment") or None,
        password_secret=secret_ref.get("name") or None,
        disable_password=bool(entry.get("disablePassword", False)),
    )


@dataclass(frozen=True)
class ActualRole:
    """A role as read from pg_authid. valid_until_epoch: None = NULL, inf = 'infinity'."""

    name: str
    superuser: bool
    inherit: bool
    createrole: bool
    createdb: bool
    login: bool
    replication: bool
    bypassrls: bool
    connection_limit: int
    valid_until_epoch: float | None
    has_password: bool
    comment: str | None
    in_roles: frozenset[str]
    xmin: int


@dataclass(frozen=True)
class PasswordAction:
    kind: Literal["keep", "set", "null"]
    verifier: str = field(default="", repr=False)


KEEP_PASSWORD = PasswordAction("keep")
NULL_PASSWORD = PasswordAction("null")

_FLAG_KEYWORDS: tuple[tuple[str, str, str], ...] = (
    ("bypassrls", "BYPASSRLS", "NOBYPASSRLS"),
    ("createdb", "CREATEDB", "NOCREATEDB"),
    ("createrole", "CREATEROLE", "NOCREATEROLE"),
    ("inherit", "INHERIT", "NOINHERIT"),
    ("login", "LOGIN", "NOLOGIN"),
    ("replication", "REPLICATION", "NOREPLICATION"),
    ("superuser", "SUPERUSER", "NOSUPERUSER"),
)


def parse_timestamp(value: str) -> float:
    """RFC 3339 → epoch seconds (a value without zone is taken as UTC)."""
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def valid_until_differs(desired: str | None, actual_epoch: float | None) -> bool:
    never = actual_epoch is None or actual_epoch == float("inf")
    if desired is None:
        return not never
    return never or abs(parse_timestamp(desired) - float(actual_epoch or 0)) > 1.0


def attributes_differ(desired: DesiredRole, actual: ActualRole) -> bool:
    flags_differ = any(getattr(desired, attr) != getattr(actual, attr) for attr, _, _ in _FLAG_KEYWORDS)
    return (flags_differ or desired.connection_limit != actual.connection_limit
            or valid_until_differs(desired.valid_until, actual.valid_until_epoch))


def role_options_sql(desired: DesiredRole, password: PasswordAction) -> sql.Composed:
    """The option list shared by CREATE ROLE and ALTER ROLE (every attribute, explicitly)."""
    words: list[sql.Composable] = [sql.SQL(on if getattr(desired, attr) else off)
                                   for attr, on, off in _FLAG_KEYWORDS]
    words.append(sql.SQL("CONNECTION LIMIT {}").format(sql.Literal(desired.connection_limit)))
    if password.kind == "set":
        words.append(sql.SQL("PASSWORD {}").format(sql.Literal(password.verifier)))
    elif password.kind == "null":
        words.append(sql.SQL("PASSWORD NULL"))
    valid_until = desired.valid_until or "infinity"
    words.append(sql.SQL("VALID UNTIL {}").format(sql.Literal(valid_until)))
    return sql.SQL(" ").join(words)


def membership_changes(desired: Iterable[str], actual: Iterable[str]) -> tuple[list[str], list[str]]:
    """(roles to GRANT, roles to REVOKE), sorted."""
    want, have = set(desired), set(actual)
    return sorted(want - have), sorted(have - want)


def plan_role(desired: DesiredRole, actual: ActualRole | None,
              password: PasswordAction) -> list[sql.Composed]:
    """Statements that bring PostgreSQL to `desired` (ensure present). Empty when nothing to do."""
    name = sql.Identifier(desired.name)
    statements: list[sql.Composed] = []
    if actual is None:
        statements.append(sql.SQL("CREATE ROLE {} WITH {}").format(name, role_options_sql(desired, password)))
        grant, revoke = list(dict.fromkeys(desired.in_roles)), list[str]()
    else:
        if attributes_differ(desired, actual) or password.kind != "keep":
            options = role_options_sql(desired, password)
            statements.append(sql.SQL("ALTER ROLE {} WITH {}").format(name, options))
        grant, revoke = membership_changes(desired.in_roles, actual.in_roles)
    statements += [sql.SQL("GRANT {} TO {}").format(sql.Identifier(r), name) for r in grant]
    statements += [sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(r), name) for r in revoke]
    actual_comment = actual.comment if actual is not None else None
    if (desired.comment or "") != (actual_comment or ""):
        comment = sql.Literal(desired.comment) if desired.comment else sql.SQL("NULL")
        statements.append(sql.SQL("COMMENT ON ROLE {} IS {}").format(name, comment))
    return statements


def drop_role_sql(name: str) -> sql.Composed:
    return sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name))


def scram_sha256_verifier(password: str, *, salt: bytes | None = None, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier, computed here so the clear password never reaches the server."""
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def password_verifier(password: str) -> str:
    """What goes into PASSWORD '...': pre-hashed values pass through (as in CNPG); non-ASCII is sent
    as is, because PostgreSQL normalises it (SASLprep) before hashing."""
    if password.startswith(("SCRAM-SHA-256$", "md5")) or not password.isascii():
        return password
    return scram_sha256_verifier(password)


def password_action(desired: DesiredRole, actual: ActualRole | None, password: str | None,
                    secret_version: str | None, applied_version: str | None) -> PasswordAction:
    """Set the Secret's password when the role is new or the Secret changed since last applied."""
    if desired.disable_password:
        return NULL_PASSWORD if actual is None or actual.has_password else KEEP_PASSWORD
    if password is None:
        return KEEP_PASSWORD
    if actual is None or not actual.has_password or secret_version != applied_version:
        return PasswordAction("set", password_verifier(password))
    return KEEP_PASSWORD



def apply_role(pg: Postgres, desired: DesiredRole, password: str | None, secret_version: str | None,
               applied_version: str | None) -> int:
    """Creates/alters the role (ensure present); returns the role's xmin afterwards."""
    actual = pg.read_role(desired.name)
    action = password_action(desired, actual, password, secret_version, applied_version)
    statements = plan_role(desired, actual, action)
    if not statements and actual is not None:
        return actual.xmin  # nothing changed: no second read
    if statements:
        pg.run_in_transaction(statements)
        log.info("role %s %s", desired.name, "created" if actual is None else "altered")
    after = pg.read_role(desired.name)
    return after.xmin if after is not None else 0


def drop_role(pg: Postgres, name: str) -> None:
    if pg.role_exists(name):
        pg.run(drop_role_sql(name))
        log.info("role %s dropped", name)

