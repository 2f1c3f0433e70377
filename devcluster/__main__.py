"""Developer sandbox commands.

  python -m devcluster up     control plane + PostgreSQL + CNPG simulator in the background
                              (state and kubeconfig in .devcluster/)
  python -m devcluster down   stop everything `up` started
  python -m devcluster dev    everything, plus the operator and the MCP gateway (HTTP), in the
                              foreground; Ctrl-C stops it all
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from devcluster import controlplane
from devcluster.postgres import PostgresServer
from devcluster.simulator import launch_simulator

STATE_DIR = Path(os.environ.get("CNPG_MCP_DEVCLUSTER_DIR", controlplane.REPO_ROOT / ".devcluster")).resolve()
SANDBOX_STATE = STATE_DIR / "sandbox.json"
GATEWAY_PORT = int(os.environ.get("CNPG_MCP_DEV_PORT", "4204"))


def _start_substrate(*, detach: bool) -> tuple[controlplane.ControlPlane, PostgresServer, int]:
    if SANDBOX_STATE.exists():
        raise SystemExit(f"a sandbox seems to run already ({SANDBOX_STATE}); run `make cluster-down` first")
    STATE_DIR.mkdir(exist_ok=True)
    for leftover in ("controlplane", "postgres"):  # a sandbox always starts from scratch
        shutil.rmtree(STATE_DIR / leftover, ignore_errors=True)
    started = time.monotonic()
    plane = controlplane.start(STATE_DIR / "controlplane", detach=detach)
    try:
        postgres = PostgresServer.start(STATE_DIR / "postgres", detach=detach)
    except BaseException:
        plane.stop()
        raise
    try:
        simulator = launch_simulator(
            plane.kubeconfig, postgres, STATE_DIR / "cnpg-simulator.log", detach=detach
        )
    except BaseException:
        postgres.stop()
        plane.stop()
        raise
    # The state holds the PostgreSQL superuser password: readable by us only.
    SANDBOX_STATE.touch(mode=0o600)
    SANDBOX_STATE.write_text(json.dumps({
        "controlplane": json.loads(plane.to_json()),
        "postgres": json.loads(postgres.to_json()),
        "simulator_pid": simulator.pid,
    }))
    (STATE_DIR / "kubeconfig").write_bytes(plane.kubeconfig.read_bytes())
    (STATE_DIR / "kubeconfig").chmod(0o600)
    print(f"control plane, PostgreSQL and CNPG simulator up in {time.monotonic() - started:.1f}s",
          file=sys.stderr)
    return plane, postgres, simulator.pid


def _stop_sandbox() -> None:
    if not SANDBOX_STATE.exists():
        print("no sandbox running", file=sys.stderr)
        return
    state = json.loads(SANDBOX_STATE.read_text())
    pid = int(state.get("simulator_pid", 0))
    if pid:
        controlplane.stop_processes({"cnpg-simulator": pid}, STATE_DIR)
    PostgresServer.from_json(json.dumps(state["postgres"])).stop()
    controlplane.ControlPlane.from_json(json.dumps(state["controlplane"])).stop()
    SANDBOX_STATE.unlink()
    print("sandbox stopped", file=sys.stderr)


def cmd_up() -> int:
    _start_substrate(detach=True)
    print(f"export KUBECONFIG={os.path.relpath(STATE_DIR / 'kubeconfig')}")
    return 0


def cmd_down() -> int:
    _stop_sandbox()
    return 0


def cmd_dev() -> int:
    plane, postgres, simulator_pid = _start_substrate(detach=False)
    token = secrets.token_urlsafe(24)
    token_file = STATE_DIR / "gateway-tokens"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    env = {**os.environ, "KUBECONFIG": str(plane.kubeconfig)}
    children: list[subprocess.Popen[bytes]] = []
    try:
        children.append(subprocess.Popen(
            [sys.executable, "-m", "cnpg_mcp_operator", "--all-namespaces"], env=env,
            stdout=(STATE_DIR / "operator.log").open("ab"), stderr=subprocess.STDOUT,
        ))
        children.append(subprocess.Popen(
            [sys.executable, "-m", "mcp_gateway", "--transport", "http", "--host", "127.0.0.1",
             "--port", str(GATEWAY_PORT), "--token-file", str(token_file)], env=env,
            stdout=(STATE_DIR / "gateway.log").open("ab"), stderr=subprocess.STDOUT,
        ))
        print(
            "\ncnpg-mcp dev sandbox is running.\n"
            f"  kubectl:  export KUBECONFIG={STATE_DIR / 'kubeconfig'}\n"
            f"  MCP:      http://127.0.0.1:{GATEWAY_PORT}/mcp\n"
            f"            header Authorization: Bearer <the token in {token_file}>\n"
            f"  logs:     {STATE_DIR}/*.log\n"
            "Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        stop = False

        def _on_signal(_signum: int, _frame: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGINT, _on_signal)
        signal.signal(signal.SIGTERM, _on_signal)
        while not stop:
            for child in children:
                if child.poll() is not None:
                    print(f"a component exited ({child.args!r}); stopping", file=sys.stderr)
                    stop = True
            time.sleep(0.5)
    finally:
        for child in reversed(children):
            child.terminate()
        for child in reversed(children):
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()
        del postgres, simulator_pid
        _stop_sandbox()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devcluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "dev"])
    args = parser.parse_args()
    try:
        return {"up": cmd_up, "down": cmd_down, "dev": cmd_dev}[args.command]()
    except controlplane.ControlPlaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
