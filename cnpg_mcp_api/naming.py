"""PostgreSQL names, and the Kubernetes object names derived from them (pure, deterministic).

PostgreSQL accepts any identifier when quoted (CloudNativePG and cnpg-mcp always quote). cnpg-mcp
accepts a portable subset — letters of either case, digits, `_`, `-`, `.` and `$`, at most 63 bytes —
and refuses the rest with a message saying why.

Kubernetes object names (RFC 1123) allow only lowercase letters, digits and `-`. A name made of
lowercase letters, digits and `_` maps readably (`app_user` → `app-user`). Every other name (with `-`,
uppercase, `.`, `$`, a leading/trailing `_`, `__`, or too long) is lossy to map, so it gets a `--`
and a hash of the original: `app-user` → `<cluster>-app-user--1a2b3c4d`. The readable form never
contains `--`, so the two forms never meet and two PostgreSQL names never share an object.
"""

from __future__ import annotations

import hashlib
import re

_RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_READABLE = re.compile(r"^[a-z0-9_]+$")
PG_NAME_CHARACTERS = re.compile(r"^[A-Za-z0-9_.$-]+$")
MAX_NAME = 63
MAX_PG_NAME_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL truncates longer names silently
_DIGEST = 8


def is_rfc1123_label(name: str) -> bool:
    return len(name) <= MAX_NAME and bool(_RFC1123_LABEL.match(name))


def is_label_value(value: str) -> bool:
    return len(value) <= MAX_NAME and bool(_LABEL_VALUE.match(value))


def identifier_problem(name: str, what: str) -> str | None:
    """Why `name` cannot be a PostgreSQL role/database name here, or None when it can."""
    if not name:
        return f"{what} name is empty"
    if len(name.encode()) > MAX_PG_NAME_BYTES:
        return (f"{what} name {name!r} is {len(name.encode())} bytes; PostgreSQL allows at most "
                f"{MAX_PG_NAME_BYTES} bytes (longer names would be truncated)")
    if not PG_NAME_CHARACTERS.match(name):
        return (f"{what} name {name!r} has characters cnpg-mcp does not accept: use letters, digits, "
                "'_', '-', '.' or '$'")
    return None


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_DIGEST]


def _derive(prefix: str, pg_name: str) -> str:
    if _READABLE.match(pg_name):
        candidate = prefix + pg_name.replace("_", "-")
        if is_rfc1123_label(candidate) and "--" not in candidate[len(prefix):]:
            return candidate
    tail = re.sub(r"[^a-z0-9]+", "-", pg_name.lower()).strip("-")
    stem = re.sub(r"-{2,}", "-", prefix + tail).strip("-")
    stem = stem[: MAX_NAME - _DIGEST - 2].rstrip("-")
    return f"{stem}--{_digest(prefix + pg_name)}"


def role_request_name(cluster: str, role: str) -> str:
    """Name of the PgRoleRequest (and its DatabaseRole) for `role` in `cluster`."""
    return _derive(f"{cluster}-", role)


def database_request_name(cluster: str, database: str) -> str:
    """Name of the PgDatabaseRequest (and its CNPG Database) for `database` in `cluster`."""
    return _derive(f"{cluster}-", database)


def role_secret_name(cluster: str, role: str) -> str:
    """The password Secret: `cnpg-<cluster>-user-<role>` (the original server's naming)."""
    return _derive(f"cnpg-{cluster}-user-", role)


def role_label_value(role: str) -> str:
    """A label value for the role name: the name itself when it is a valid label value, else a hashed form."""
    if is_label_value(role):
        return role
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", role).strip("-_.")[: MAX_NAME - _DIGEST - 1].rstrip("-_.")
    return f"{stem}-{_digest(role)}" if stem else _digest(role)
