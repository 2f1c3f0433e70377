"""The simulator's Node and its kubelet-style HTTPS endpoint, so `kubectl logs` takes the real path:
client → kube-apiserver (pods/log) → this Node's kubeletEndpoint → `/containerLogs/{ns}/{pod}/{container}`.

Only the API server may call it: TLS with a serving certificate signed by the control plane's CA,
and a client certificate signed by the same CA is required (the API server's --kubelet-client-*).
Supported query parameters: tailLines, sinceSeconds, sinceTime, timestamps, limitBytes; follow=true
returns what exists and ends (nothing runs that would write more); previous=true → 400, as a
kubelet answers for a container that never restarted.
"""

from __future__ import annotations

import logging
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from kubernetes.client.exceptions import ApiException

from devcluster.simulator.common import Json
from devcluster.simulator.kube import Kube
from devcluster.simulator.logs import LogStore, select
from devcluster.simulator.pods import CONTAINER, NODE_IP

log = logging.getLogger("cnpg-simulator")
NODE_NAME = "cnpg-simulator"
SIMULATED_KUBELET_VERSION = "v0.0.0-cnpg-simulator"


@dataclass(frozen=True)
class KubeletTls:
    """Files from the control plane's PKI (devcluster/pki.py)."""

    ca_cert: Path
    serving_cert: Path
    serving_key: Path

    @classmethod
    def in_directory(cls, directory: Path) -> KubeletTls:
        tls = cls(directory / "ca.crt", directory / "kubelet-serving.crt", directory / "kubelet-serving.key")
        missing = [str(p) for p in (tls.ca_cert, tls.serving_cert, tls.serving_key) if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"kubelet TLS files missing (created by devcluster.pki): {', '.join(missing)}")
        return tls


class LogRequestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_log_request(path: str, now: datetime) -> tuple[str, str, str, dict[str, Any]]:
    """/containerLogs/{ns}/{pod}/{container}?… → (namespace, pod, container, select() options)."""
    url = urlsplit(path)
    parts = [unquote(p) for p in url.path.split("/") if p]
    if len(parts) != 4 or parts[0] != "containerLogs":
        raise LogRequestError(404, "not found")
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    if query.get("previous") == "true":
        raise LogRequestError(400, f'previous terminated container "{parts[3]}" in pod "{parts[2]}" not found')
    options: dict[str, Any] = {"timestamps": query.get("timestamps") == "true"}
    try:
        if "tailLines" in query:
            options["tail_lines"] = int(query["tailLines"])
        if "limitBytes" in query:
            options["limit_bytes"] = int(query["limitBytes"])
        if "sinceSeconds" in query:
            options["since"] = now - timedelta(seconds=int(query["sinceSeconds"]))
        elif "sinceTime" in query:
            options["since"] = datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
    except ValueError as exc:
        raise LogRequestError(400, f"bad query: {exc}") from exc
    return parts[1], parts[2], parts[3], options


class KubeletServer:
    """Serves /containerLogs and /healthz on loopback, on a free port, in a daemon thread."""

    def __init__(self, logs: LogStore, tls: KubeletTls) -> None:
        self._logs = logs
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tls.ca_cert))
        context.load_cert_chain(str(tls.serving_cert), str(tls.serving_key))
        context.verify_mode = ssl.CERT_REQUIRED
        self._server = ThreadingHTTPServer((NODE_IP, 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port: int = self._server.server_address[1]

    def start(self) -> None:
        threading.Thread(target=self._server.serve_forever, name="kubelet", daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        logs = self._logs

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/healthz":
                    self._reply(200, b"ok")
                    return
                try:
                    namespace, pod, container, options = parse_log_request(self.path, datetime.now(UTC))
                    entries = logs.entries(namespace, pod)
                    if entries is None:
                        raise LogRequestError(404, f'pod "{pod}" in namespace "{namespace}" not found')
                    if container != CONTAINER:
                        raise LogRequestError(404, f'container "{container}" in pod "{pod}" not found')
                    self._reply(200, select(entries, **options))
                except LogRequestError as exc:
                    self._reply(exc.status, str(exc).encode())

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("kubelet: " + format, *args)

        return Handler


def node_body(name: str) -> Json:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                                  "cnpg-mcp.io/simulated": "true"}}}


def node_status(name: str, port: int, now: str) -> Json:
    """Ready, reachable on loopback at the kubelet endpoint's port."""
    return {
        "addresses": [{"type": "InternalIP", "address": NODE_IP}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "message": "simulated kubelet (cnpg-simulator) is posting ready status",
                        "lastHeartbeatTime": now, "lastTransitionTime": now}],
        "nodeInfo": {"kubeletVersion": SIMULATED_KUBELET_VERSION, "kubeProxyVersion": "",
                     "operatingSystem": "linux", "architecture": "amd64", "containerRuntimeVersion": "simulated://0",
                     "osImage": "cnpg-simulator", "kernelVersion": "", "machineID": "", "systemUUID": "",
                     "bootID": ""},
    }


def register_node(kube: Kube, name: str, port: int, now: str) -> None:
    """Creates the Node (or reuses it after a restart) and publishes the kubelet endpoint's port."""
    core = kube.core()
    try:
        core.create_node(node_body(name))
        log.info("registered Node %s", name)
    except ApiException as exc:
        if exc.status != 409:
            raise
    core.patch_node_status(name, {"status": node_status(name, port, now)},
                          _content_type="application/merge-patch+json")
