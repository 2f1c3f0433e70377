"""Integration fixtures for the operator: the real `cnpg-mcp-operator` process, and intent helpers.

- `operator` (session): `python -m cnpg_mcp_operator --all-namespaces` against the session's control
  plane, started once the CNPG simulator runs; stopped at the end of the session.
- `operator_factory` (function): starts extra operator processes with other flags (e.g.
  `--role-backend managed-roles`). While any runs, the session operator is paused (two operators
  must never reconcile the same intents); it is started again afterwards.
- `intents` (function): create/read/wait/delete helpers for the intent kinds.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cnpg_mcp_api import constants
from cnpg_mcp_api.models import KINDS
from devcluster.controlplane import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_LINE = b"cnpg-mcp-operator ready"
GROUP, VERSION = constants.GROUP, constants.VERSION
PLURALS = {kind.kind: kind.plural for kind in KINDS}
START_TIMEOUT = 60.0


class OperatorProcess:
    """One `cnpg-mcp-operator` subprocess; can be stopped, killed and started again with the same flags."""

    def __init__(self, kubeconfig: Path, log_path: Path, args: Sequence[str]) -> None:
        self.kubeconfig = kubeconfig
        self.log_path = log_path
        self.args = list(args)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def liveness_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/healthz"

    def start(self, timeout: float = START_TIMEOUT) -> None:
        env = dict(os.environ)
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(REPO_ROOT), str(REPO_ROOT / "operator"), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            log_file.write(f"\n===== start {' '.join(self.args)} =====\n".encode())
            log_file.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cnpg_mcp_operator", *self.args, "--liveness", self.liveness_url],
                stdout=subprocess.PIPE, stderr=log_file, stdin=subprocess.DEVNULL, env=env, cwd=REPO_ROOT,
            )
        if not self._wait_ready(timeout):
            self.stop()
            raise RuntimeError(f"cnpg-mcp-operator did not become ready; log tail:\n{self.log_tail()}")

    def _wait_ready(self, timeout: float) -> bool:
        process = self.process
        assert process is not None and process.stdout is not None
        deadline = time.monotonic() + timeout
        buffer = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline and READY_LINE not in buffer:
                if not selector.select(timeout=0.5):
                    if process.poll() is not None:
                        return False
                    continue
                chunk = os.read(process.stdout.fileno(), 4096)
                if not chunk:
                    return False
                buffer += chunk
        while time.monotonic() < deadline:  # the probe answers once Kopf's tasks run
            with contextlib.suppress(OSError), urllib.request.urlopen(self.liveness_url, timeout=2) as answer:
                if answer.status == 200:
                    return True
            time.sleep(0.2)
        return False

    def probe(self) -> dict[str, Any]:
        """The liveness probe's JSON (includes the operator's own write counters under "writes")."""
        with urllib.request.urlopen(self.liveness_url, timeout=5) as response:
            return dict(json.loads(response.read()))

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """Graceful stop (SIGTERM: Kopf finishes what it does)."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as when a node dies."""
        process = self.process
        if process is None:
            return
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()
        self.process = None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_since_start(self) -> str:
        """The log of the current (last started) process only."""
        return self.log_text().rpartition("===== start ")[2]

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class Intents:
    """Small helpers over the intent kinds, for tests."""

    def __init__(self, api_client: Any) -> None:
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    def create(self, kind: str, namespace: str, name: str, spec: dict[str, Any],
               annotations: dict[str, str] | None = None) -> dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": kind,
                "metadata": {"name": name, **({"annotations": annotations} if annotations else {})},
                "spec": spec}
        created = self.custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], body)
        return dict(created)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found = self.custom.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name)
            return dict(found)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def list_all(self, kind: str, namespace: str) -> list[dict[str, Any]]:
        listing = self.custom.list_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind])
        return list(listing.get("items") or [])

    def patch_spec(self, kind: str, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return dict(self.custom.patch_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name,
                                                               {"spec": spec}))

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], name)

    @staticmethod
    def ready(obj: dict[str, Any] | None) -> dict[str, Any] | None:
        for condition in ((obj or {}).get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready":
                return dict(condition)
        return None

    def wait_for(self, kind: str, namespace: str, name: str, predicate: Callable[[dict[str, Any]], bool],
                 what: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            last = self.get(kind, namespace, name)
            if last is not None and predicate(last):
                return last
            time.sleep(0.2)
        raise AssertionError(f"{kind} {namespace}/{name}: not {what} after {timeout}s; "
                             f"status: {json.dumps((last or {}).get('status'), indent=1)}")

    def wait_ready(self, kind: str, namespace: str, name: str, timeout: float = 60.0) -> dict[str, Any]:
        def is_ready(obj: dict[str, Any]) -> bool:
            condition = self.ready(obj) or {}
            status = obj.get("status") or {}
            return (condition.get("status") == "True"
                    and status.get("observedGeneration") == obj["metadata"]["generation"])
        return self.wait_for(kind, namespace, name, is_ready, "Ready", timeout)

    def wait_reason(self, kind: str, namespace: str, name: str, reason: str,
                    timeout: float = 60.0) -> dict[str, Any]:
        return self.wait_for(kind, namespace, name, lambda o: (self.ready(o) or {}).get("reason") == reason,
                             f"reason {reason}", timeout)

    def wait_gone(self, kind: str, namespace: str, name: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            obj = self.get(kind, namespace, name)
            if obj is None:
                return
            time.sleep(0.2)
        raise AssertionError(f"{kind} {namespace}/{name} still exists after {timeout}s; "
                             f"status: {json.dumps((obj or {}).get('status'), indent=1)}")

    def events_for(self, namespace: str, name: str) -> list[Any]:
        events = self.core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={name}")
        return list(events.items)
