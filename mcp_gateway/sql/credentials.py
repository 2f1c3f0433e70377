"""The read-only role's credentials, as the operator projects them into a Secret mounted into the gateway pod.

One file per enabled cluster, `<namespace>.<cluster>.json`, in the credentials directory
(--sql-credentials-dir): {"host", "port", "dbname", "user", "password", "sslmode", "sslrootcert" (the CA
certificate, PEM text)}. Read again on every call: the kubelet updates mounted Secrets in place when the
operator rotates them. The gateway never reads a Secret through the Kubernetes API.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENABLE_FIELD = "spec.readOnlyQueries.enabled"
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")


class NotEnabled(Exception):
    """No credentials file for the cluster: read-only SQL is not enabled for it."""


class Unusable(Exception):
    """The credentials file exists but cannot be used (malformed, a field missing, the -rw Service)."""


@dataclass(frozen=True)
class Credentials:
    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)
    sslmode: str
    sslrootcert: str = field(default="", repr=False)


def path_for(directory: Path, namespace: str, cluster: str) -> Path:
    return directory / f"{namespace}.{cluster}.json"


def load(directory: Path, namespace: str, cluster: str) -> Credentials:
    """The credentials of `namespace/cluster`; NotEnabled without a file, Unusable when it is wrong."""
    path = path_for(directory, namespace, cluster)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise NotEnabled(
            f"read-only SQL is not enabled for cluster {namespace}/{cluster}: the gateway has no credentials "
            f"for it ({path.name} in its SQL credentials directory). Set {ENABLE_FIELD}: true on the cluster's "
            "PgClusterRequest; the operator then provisions a read-only role and mounts its credentials into "
            "the gateway (the kubelet may take up to a minute to project them).") from exc
    except OSError as exc:
        raise Unusable(f"the SQL credentials of {namespace}/{cluster} cannot be read ({type(exc).__name__})") \
            from exc
    return parse(raw, f"{namespace}/{cluster}", cluster)


def parse(raw: str, what: str, cluster: str) -> Credentials:
    """Pure: the JSON document checked field by field (its values are never put in a message)."""
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        raise Unusable(f"the SQL credentials of {what} are not valid JSON") from exc
    if not isinstance(data, dict):
        raise Unusable(f"the SQL credentials of {what} are not a JSON object")
    missing = [key for key in ("host", "port", "dbname", "user", "password") if not data.get(key)]
    if missing:
        raise Unusable(f"the SQL credentials of {what} lack {', '.join(missing)}")
    sslmode = str(data.get("sslmode") or "verify-full")
    if sslmode not in SSLMODES:
        raise Unusable(f"the SQL credentials of {what} name an unknown sslmode {sslmode!r}")
    try:
        port = int(data["port"])
    except (TypeError, ValueError) as exc:
        raise Unusable(f"the SQL credentials of {what} have a port that is not a number") from exc
    host = str(data["host"])
    if host.split(".", 1)[0] == f"{cluster}-rw":  # the primary's Service: reads go to -ro or -r
        raise Unusable(f"the SQL credentials of {what} point at the primary's Service {cluster}-rw; read-only "
                       "queries must use -ro or -r")
    return Credentials(host=host, port=port, dbname=str(data["dbname"]), user=str(data["user"]),
                       password=str(data["password"]), sslmode=sslmode, sslrootcert=str(data.get("sslrootcert") or ""))


def parse_endpoint(override: str) -> tuple[str, int]:
    """`HOST:PORT` (or `[v6]:PORT`) → (host, port); ValueError when malformed."""
    host, sep, port = override.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {override!r}")
    return host, int(port)


def _address(host: str) -> str:
    """An IP address for libpq's hostaddr (which takes no names): resolved once when `host` is a name."""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])


def conninfo(credentials: Credentials, *, database: str | None, options: str, connect_timeout: int,
             endpoint_override: str | None = None, rootcert_path: str | None = None) -> dict[str, Any]:
    """libpq connection parameters. With an endpoint override (sandbox only) libpq connects to that address
    and port while `host` stays what the server certificate is verified against."""
    params: dict[str, Any] = {
        "host": credentials.host, "port": credentials.port, "dbname": database or credentials.dbname,
        "user": credentials.user, "password": credentials.password, "sslmode": credentials.sslmode,
        "options": options, "connect_timeout": connect_timeout, "application_name": "cnpg-mcp-gateway",
        "client_encoding": "UTF8",
    }
    if rootcert_path:
        params["sslrootcert"] = rootcert_path
    if endpoint_override:
        address, port = parse_endpoint(endpoint_override)
        params["hostaddr"], params["port"] = _address(address), port
    return params


@contextmanager
def rootcert_file(credentials: Credentials) -> Iterator[str | None]:
    """The CA certificate in a private temporary file for libpq (removed afterwards); None without one."""
    if not credentials.sslrootcert:
        yield None
        return
    folder = tempfile.mkdtemp(prefix="cnpg-mcp-ca-")  # 0700
    path = Path(folder, "ca.crt")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(credentials.sslrootcert)
        yield str(path)
    finally:
        path.unlink(missing_ok=True)
        os.rmdir(folder)
