"""A throwaway PostgreSQL server for tests and the dev sandbox.

It runs Debian's PostgreSQL binaries (``apt-get install -y postgresql``) against a fresh data
directory in a temporary folder, listens on 127.0.0.1 on a free port, and requires a password
(scram-sha-256) for every connection, so a role with a wrong or no password cannot log in.

PostgreSQL refuses to run as root: when we are root, initdb and postgres run as the ``postgres``
OS user (the data folder is handed over to it); otherwise they run as the current user.

Another process (the CNPG simulator, ``make cluster-down``) gets the coordinates through
``write_json``/``from_json``; ``stop()`` works from such a copy too (it signals the recorded pid).
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import psycopg
from psycopg.conninfo import make_conninfo

from devcluster.controlplane import free_port
from devcluster.pki import PostgresTls, create_postgres_tls, issue_postgres_server_certificate

INSTALL_HINT = "PostgreSQL server binaries not found: run `apt-get install -y postgresql`"
BINDIR_ENV = "CNPG_MCP_PG_BINDIR"
SUPERUSER = "postgres"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 40


def _has_server_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / exe, os.X_OK) for exe in ("initdb", "postgres"))


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", Path(path).parent.name))


def find_bindir() -> Path:
    """The folder holding initdb and postgres: $CNPG_MCP_PG_BINDIR, pg_config, newest Debian major."""
    candidates: list[Path] = []
    if override := os.environ.get(BINDIR_ENV):
        candidates.append(Path(override))
    if shutil.which("pg_config"):
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True)
            candidates.append(Path(out.stdout.strip()))
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key,
                                           reverse=True)]
    for bindir in candidates:
        if _has_server_binaries(bindir):
            return bindir
    raise RuntimeError(INSTALL_HINT)


def _log_tail(log_file: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:  # a zombie that is not our child is gone for every purpose here
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _is_our_postmaster(pid: int, data_dir: Path) -> bool:
    """Guards against pid reuse: the process must be a postgres serving our data folder."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(data_dir).encode() in cmdline


@dataclass(frozen=True)
class _RunAs:
    """Whom initdb/postgres run as: the postgres OS user when we are root, else ourselves."""

    uid: int
    gid: int

    @classmethod
    def detect(cls) -> _RunAs:
        if os.geteuid() != 0:
            return cls(os.getuid(), os.getgid())
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise RuntimeError(f"running as root but there is no `postgres` OS user; {INSTALL_HINT}") from exc
        return cls(entry.pw_uid, entry.pw_gid)

    def popen_kwargs(self) -> dict[str, Any]:
        if self.uid == os.getuid():
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def hand_over(self, path: Path) -> None:
        if self.uid != os.getuid():
            os.chown(path, self.uid, self.gid)

    def can_traverse(self, path: Path) -> bool:
        """Whether every ancestor of path lets this user through (pytest's tmp root is 0700 root)."""
        if self.uid == os.getuid():
            return True
        for folder in [path, *path.parents]:
            info = folder.stat()
            if info.st_uid == self.uid:
                bit = stat.S_IXUSR
            elif info.st_gid == self.gid:
                bit = stat.S_IXGRP
            else:
                bit = stat.S_IXOTH
            if folder != path and not info.st_mode & bit:
                return False
        return True


def _die_with_parent() -> None:
    """Runs in the child before exec: PR_SET_PDEATHSIG=SIGQUIT (postgres' immediate shutdown)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGQUIT)


@dataclass
class PostgresServer:
    host: str
    port: int
    superuser: str
    superuser_password: str = field(repr=False)
    base_dir: Path
    pid: int | None = None
    remove_base_dir: bool = False
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    # --- TLS (what CNPG's instances serve: a certificate for the cluster's Service names) --------
    @property
    def tls(self) -> PostgresTls:
        return PostgresTls(self.base_dir / "tls")

    @property
    def sql_endpoint(self) -> str:
        """HOST:PORT where a client really connects for any simulated cluster's Service name (libpq
        `hostaddr`/`port`, with `host=<cluster>-ro.<ns>.svc` for certificate verification)."""
        return f"{self.host}:{self.port}"

    def serve_tls_names(self, dns_names: list[str]) -> None:
        """Re-issues the server certificate for exactly these names (plus localhost/127.0.0.1) and
        makes PostgreSQL load it (pg_reload_conf); sessions already open keep their certificate."""
        issue_postgres_server_certificate(self.tls, sorted(set(dns_names)))
        with psycopg.connect(self.superuser_dsn(), autocommit=True) as connection:
            connection.execute("SELECT pg_reload_conf()")

    # --- connection strings -------------------------------------------------------------
    def dsn(self, user: str, password: str | None, dbname: str = "postgres") -> str:
        params: dict[str, Any] = {"host": self.host, "port": self.port, "user": user, "dbname": dbname,
                                  "connect_timeout": 5}
        if password is not None:
            params["password"] = password
        return make_conninfo(**params)

    def superuser_dsn(self, dbname: str = "postgres") -> str:
        return self.dsn(self.superuser, self.superuser_password, dbname)

    def can_login(self, user: str, password: str | None, dbname: str = "postgres") -> bool:
        """Whether `user` can log in with `password` (what tests assert about roles)."""
        try:
            with psycopg.connect(self.dsn(user, password, dbname)) as connection:
                connection.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    # --- hand-over to other processes ----------------------------------------------------
    def to_json(self) -> str:
        return json.dumps({
            "host": self.host, "port": self.port, "superuser": self.superuser,
            "superuser_password": self.superuser_password, "base_dir": str(self.base_dir),
            "pid": self.pid, "remove_base_dir": self.remove_base_dir,
        })

    @classmethod
    def from_json(cls, text: str) -> PostgresServer:
        data = json.loads(text)
        return cls(host=data["host"], port=int(data["port"]), superuser=data["superuser"],
                   superuser_password=data["superuser_password"], base_dir=Path(data["base_dir"]),
                   pid=data.get("pid"), remove_base_dir=bool(data.get("remove_base_dir", False)))

    def write_json(self, path: Path) -> None:
        """Writes the coordinates (they include the superuser password) readable by us only."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.to_json())

    @classmethod
    def read_json(cls, path: Path) -> PostgresServer:
        return cls.from_json(path.read_text())

    # --- lifecycle -----------------------------------------------------------------------
    @classmethod
    def start(cls, base_dir: Path | None = None, *, detach: bool = False) -> PostgresServer:
        """initdb + postgres; returns once it accepts connections. RuntimeError (with log tail) if not.

        base_dir None → a temporary folder, removed by stop(). With detach=False the server dies
        with the calling process (tests); with detach=True it outlives it (`make cluster`).
        If the postgres OS user cannot reach base_dir, a temporary folder is used instead.
        """
        bindir = find_bindir()
        run_as = _RunAs.detect()
        base: Path | None = None
        if base_dir is not None:
            base = base_dir.resolve()
            base.mkdir(parents=True, exist_ok=True)
            if not run_as.can_traverse(base):
                base = None
        remove = base is None
        if base is None:
            base = Path(tempfile.mkdtemp(prefix="cnpg-mcp-pg-"))
        server = cls(host="127.0.0.1", port=0, superuser=SUPERUSER,
                     superuser_password=secrets.token_urlsafe(24), base_dir=base, remove_base_dir=remove)
        try:
            server._initdb(bindir, run_as)
            server._launch_until_ready(bindir, run_as, detach=detach)
        except BaseException:
            server.stop()
            raise
        return server

    def _initdb(self, bindir: Path, run_as: _RunAs) -> None:
        run_as.hand_over(self.base_dir)
        pwfile = self.base_dir / "pwfile"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.superuser_password + "\n")
        run_as.hand_over(pwfile)
        try:
            with self.log_file.open("ab") as log:
                run_as.hand_over(self.log_file)
                result = subprocess.run(
                    [str(bindir / "initdb"), "-D", str(self.data_dir), "-U", self.superuser,
                     f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8", "--no-locale",
                     "--no-sync"],
                    stdout=log, stderr=subprocess.STDOUT, env=self._env(), cwd=self.base_dir,
                    check=False, **run_as.popen_kwargs())
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed (exit {result.returncode}); log tail:\n{_log_tail(self.log_file)}")
        # Password for every connection, local or TCP: a wrong or missing password never logs in.
        (self.data_dir / "pg_hba.conf").write_text(
            "local all all scram-sha-256\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
            "host all all ::1/128 scram-sha-256\n")
        run_as.hand_over(self.data_dir / "pg_hba.conf")
        tls = create_postgres_tls(self.tls.directory)
        run_as.hand_over(tls.server_key)  # PostgreSQL refuses a key it does not own (mode 0600)
        (self.base_dir / "run").mkdir(exist_ok=True)
        run_as.hand_over(self.base_dir / "run")

    def _launch_until_ready(self, bindir: Path, run_as: _RunAs, *, detach: bool, attempts: int = 3) -> None:
        # A free port can be taken between our probe and postgres' bind: retry on a new one.
        for attempt in range(1, attempts + 1):
            self.port = free_port()
            with self.log_file.open("ab") as log:
                self._process = subprocess.Popen(
                    [str(bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
                     "-c", f"listen_addresses={self.host}",
                     "-c", f"unix_socket_directories={self.base_dir / 'run'}",
                     "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                     "-c", "max_connections=200", "-c", "shared_buffers=32MB",
                     "-c", "password_encryption=scram-sha-256",
                     "-c", "ssl=on", "-c", f"ssl_cert_file={self.tls.server_cert}",
                     "-c", f"ssl_key_file={self.tls.server_key}"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self._env(),
                    cwd=self.base_dir, start_new_session=True,
                    preexec_fn=None if detach else _die_with_parent,  # noqa: PLW1509 (only prctl)
                    **run_as.popen_kwargs())
            self.pid = self._process.pid
            if self._wait_ready():
                return
            self._stop_process()
            if attempt == attempts or "could not bind" not in _log_tail(self.log_file, 10):
                break
        raise RuntimeError(f"PostgreSQL did not start; log tail:\n{_log_tail(self.log_file)}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                return False
            try:
                with psycopg.connect(self.superuser_dsn(), connect_timeout=2):
                    return True
            except psycopg.OperationalError:
                time.sleep(0.2)
        return False

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update({"LC_ALL": "C", "HOME": str(self.base_dir)})
        return env

    def _stop_process(self) -> None:
        """Fast shutdown (SIGINT), then SIGKILL after a grace period; waits until the pid is gone."""
        pid = self.pid
        if pid is None:
            return
        if self._process is None and not _is_our_postmaster(pid, self.data_dir):
            self.pid = None
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _pid_alive(pid) and time.monotonic() < deadline:
            if self._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(timeout=0.2)
            else:
                time.sleep(0.2)
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            if self._process is not None:
                self._process.wait()
            else:  # not our child: wait for the kernel to finish it (slow on a loaded machine)
                deadline = time.monotonic() + STOP_TIMEOUT_S
                while _pid_alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
        self._process = None
        self.pid = None

    def stop(self) -> None:
        """Stops the server (no process left behind) and removes the temporary folder we created."""
        self._stop_process()
        if self.remove_base_dir:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
