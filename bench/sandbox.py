"""The benchmark sandbox: control plane, PostgreSQL, CNPG simulator and the operator, in a temporary folder.

The same components as the integration tests (tests/conftest.py, tests/integration/conftest.py), started
the same way; `Sandbox.start()` returns once each is ready, `stop()` ends them all.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from devcluster import controlplane
from devcluster.postgres import PostgresServer
from devcluster.simulator import launch_simulator, stop_simulator
from tests.integration.conftest import OperatorProcess

GROUP, VERSION = "cnpg-mcp.io", "v1alpha1"


@dataclass
class Sandbox:
    folder: Path
    plane: controlplane.ControlPlane
    postgres: PostgresServer
    simulator: subprocess.Popen[bytes] | None
    operator: OperatorProcess
    api: Any = field(default=None)
    keep: bool = False  # keep the folder (logs, audit log) after stop()

    @classmethod
    def start(cls, keep: bool = False) -> Sandbox:
        folder = Path(tempfile.mkdtemp(prefix="cnpg-mcp-bench-"))
        started = time.monotonic()
        plane = controlplane.start(folder / "controlplane")
        postgres: PostgresServer | None = None
        simulator: subprocess.Popen[bytes] | None = None
        try:  # a component that cannot start fails the run with its reason, and stops the others
            postgres = PostgresServer.start(folder / "postgres")
            simulator = launch_simulator(plane.kubeconfig, postgres, folder / "cnpg-simulator.log")
            operator = OperatorProcess(plane.kubeconfig, folder / "operator.log", ["--all-namespaces"])
            operator.start()
        except BaseException:
            if simulator is not None:
                stop_simulator(simulator)
            if postgres is not None:
                postgres.stop()
            plane.stop()
            raise
        sandbox = cls(folder, plane, postgres, simulator, operator, plane.api_client(), keep)
        print(f"sandbox up in {time.monotonic() - started:.1f}s ({folder})", flush=True)
        return sandbox

    @property
    def kubeconfig(self) -> Path:
        return self.plane.kubeconfig

    @property
    def operator_pid(self) -> int:
        assert self.operator.process is not None
        return self.operator.process.pid

    def stop_simulator(self) -> None:
        if self.simulator is not None:
            stop_simulator(self.simulator)
            self.simulator = None

    def stop(self) -> None:
        self.operator.stop()
        self.stop_simulator()
        self.api.close()
        self.postgres.stop()
        self.plane.stop()
        if not self.keep:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def new_namespace(self, prefix: str) -> str:
        name = f"{prefix}-{secrets.token_hex(3)}"
        client.CoreV1Api(self.api).create_namespace({"metadata": {"name": name}})
        return name

    def ready_cluster_request(self, namespace: str, name: str, timeout: float = 120.0) -> None:
        """A PgClusterRequest of one instance, waited on until Ready."""
        custom = client.CustomObjectsApi(self.api)
        custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "pgclusterrequests", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "PgClusterRequest", "metadata": {"name": name},
            "spec": {"instances": 1}})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "pgclusterrequests", name)
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (body.get("status") or {}).get("conditions") or []):
                return
            time.sleep(0.2)
        raise RuntimeError(f"PgClusterRequest {namespace}/{name} not Ready after {timeout:.0f}s")
