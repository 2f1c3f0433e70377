"""`make cluster` / `make cluster-down` (python -m devcluster up/down) leave nothing running."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devcluster.controlplane import ControlPlane


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def test_up_then_down_leaves_no_process(tmp_path: Path, control_plane: ControlPlane) -> None:
    env = {**os.environ, "CNPG_MCP_DEVCLUSTER_DIR": str(tmp_path / "sandbox")}
    up = subprocess.run([sys.executable, "-m", "devcluster", "up"], env=env, capture_output=True,
                        text=True, timeout=300, check=False)
    assert up.returncode == 0, up.stderr
    state = json.loads((tmp_path / "sandbox" / "sandbox.json").read_text())
    pids = [*state["controlplane"]["pids"].values(), state["simulator_pid"], state["postgres"]["pid"]]
    assert len(pids) == 6  # etcd, apiserver, controller manager, CNPG's manager, simulator, postgres
    assert all(_alive(pid) for pid in pids)

    kubeconfig = tmp_path / "sandbox" / "kubeconfig"
    crds = subprocess.run(
        [control_plane.kubectl, "--kubeconfig", str(kubeconfig), "get", "crd",
         "clusters.postgresql.cnpg.io", "databaseroles.postgresql.cnpg.io"],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert crds.returncode == 0, crds.stderr
    assert "databaseroles.postgresql.cnpg.io" in crds.stdout

    down = subprocess.run([sys.executable, "-m", "devcluster", "down"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert down.returncode == 0, down.stderr
    assert not [pid for pid in pids if _alive(pid)]
    assert not (tmp_path / "sandbox" / "sandbox.json").exists()
