"""The simulator as a process: `python -m devcluster.simulator`, and launch/stop helpers for callers."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devcluster.simulator.kubelet import KubeletTls
from devcluster.simulator.pg import Postgres
from devcluster.simulator.runtime import READY_LINE, Simulator

if TYPE_CHECKING:
    from devcluster.postgres import PostgresServer

log = logging.getLogger("cnpg-simulator")
MODULE = "devcluster.simulator"


def default_kubelet_pki(kubeconfig: Path) -> Path:
    """devcluster.controlplane writes the kubeconfig next to its pki/ folder."""
    return kubeconfig.resolve().parent / "pki"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=f"python -m {MODULE}",
        description="SIMULATED CloudNativePG operator (tests and dev sandbox only)")
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--postgres-json", type=Path, required=True,
                        help="coordinates of the shared PostgreSQL (PostgresServer.write_json)")
    parser.add_argument("--namespace", action="append", default=[],
                        help="only this namespace (repeatable); default: all namespaces")
    parser.add_argument("--namespace-all", action="store_true", help="all namespaces (the default)")
    parser.add_argument("--kubelet-pki", type=Path, default=None,
                        help="folder with ca.crt and kubelet-serving.crt/.key (default: pki/ next to the kubeconfig)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s cnpg-simulator %(levelname)s %(message)s")
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.ERROR)

    from devcluster.postgres import PostgresServer  # noqa: PLC0415

    pg = Postgres(PostgresServer.read_json(args.postgres_json))
    pg.conn()  # fail now, clearly, if PostgreSQL is not reachable
    tls = KubeletTls.in_directory(args.kubelet_pki or default_kubelet_pki(args.kubeconfig))
    simulator = Simulator(args.kubeconfig, pg, None if args.namespace_all else args.namespace or None, tls)

    def stop(_signum: int, _frame: Any) -> None:
        simulator.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        simulator.run()
    finally:
        pg.close()
    return 0


def _die_with_parent() -> None:
    import ctypes  # noqa: PLC0415

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def launch_simulator(kubeconfig: Path, postgres: PostgresServer, log_path: Path, *,
                     timeout: float = 60.0, detach: bool = False) -> subprocess.Popen[bytes]:
    """Starts the simulator as a subprocess; returns once it printed its ready line.

    stdout and stderr go to log_path. With detach=False it dies with the calling process.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    postgres_json = log_path.with_name("postgres.json")
    postgres.write_json(postgres_json)
    repo_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    log_file = log_path.open("ab")
    process = subprocess.Popen(
        [sys.executable, "-m", MODULE, "--kubeconfig", str(kubeconfig),
         "--postgres-json", str(postgres_json)],
        stdout=subprocess.PIPE, stderr=log_file, stdin=subprocess.DEVNULL, env=env,
        start_new_session=True, preexec_fn=None if detach else _die_with_parent)  # noqa: PLW1509
    log_file.close()
    assert process.stdout is not None
    if not _wait_for_ready_line(process, timeout):
        stop_simulator(process)
        raise RuntimeError(f"the CNPG simulator did not become ready; log tail:\n{_tail(log_path)}")
    threading.Thread(target=_drain, args=(process.stdout, log_path), daemon=True).start()
    return process


def _wait_for_ready_line(process: subprocess.Popen[bytes], timeout: float) -> bool:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while time.monotonic() < deadline:
            if not selector.select(timeout=0.5):
                if process.poll() is not None:
                    return False
                continue
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                return False
            buffer += chunk
            if READY_LINE.encode() in buffer:
                return True
    return False


def _drain(stream: Any, log_path: Path) -> None:
    """Keeps the stdout pipe from filling up once the ready line was read."""
    with contextlib.suppress(OSError, ValueError), log_path.open("ab") as out:
        for line in iter(stream.readline, b""):
            out.write(line)
            out.flush()


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_simulator(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    if process.stdout is not None:
        with contextlib.suppress(OSError):
            process.stdout.close()


