"""A real local Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager.

The binaries are built from Go modules (see build-binaries.sh) or taken from KUBEBUILDER_ASSETS.
The API server runs with real TLS, RBAC authorization, a token-authenticated admin and an audit log
(deploy/audit/policy.yaml, written to <state dir>/audit.log); the controller manager runs the garbage
collector, the namespace controller and the ClusterRole aggregation controller. CloudNativePG's CRDs
come from the CNPG Go module through the Go module proxy; this project's CRDs from crds/, then its
admission policies and aggregated user roles from deploy/ (as a real install applies them).
CloudNativePG's own manager, built from the same module version, serves its mutating and
validating admission webhooks for the CNPG kinds (see cnpg_webhooks.py); its controllers idle.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import functools
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devcluster import cnpg_webhooks
from devcluster.pki import Pki, create_pki, create_webhook_pki

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD_SCRIPT = Path(__file__).resolve().parent / "build-binaries.sh"
CNPG_MODULE = "github.com/cloudnative-pg/cloudnative-pg"
CNPG_VERSION = os.environ.get("CNPG_MCP_CNPG_VERSION", "v1.30.0")
# The Barman Cloud plugin's ObjectStore CRD (backups the CNPG 1.30 way), pinned like CNPG's.
BARMAN_PLUGIN_MODULE = "github.com/cloudnative-pg/plugin-barman-cloud"
BARMAN_PLUGIN_VERSION = os.environ.get("CNPG_MCP_BARMAN_PLUGIN_VERSION", "v0.14.0")
START_TIMEOUT = float(os.environ.get("CNPG_MCP_START_TIMEOUT", "90"))
# Room for 5,000 CNPG clusters of 3 Services each (65,534 addresses). Only the apiserver allocates
# ClusterIPs here: kube-controller-manager runs no controller that reads this range.
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
AUDIT_POLICY = REPO_ROOT / "deploy" / "audit" / "policy.yaml"
AUDIT_LOG = "audit.log"
# Applied after the CRDs, as a real install does: requester stamping and immutability (admission
# policies), and the intent kinds in the standard view/edit/admin roles.
PROJECT_MANIFESTS = (REPO_ROOT / "deploy" / "admission", REPO_ROOT / "deploy" / "user-roles")
# The controllers the tests rely on: ownerReferences, namespace deletion, and the standard roles
# picking up aggregated ClusterRoles (rbac.authorization.k8s.io/aggregate-to-*).
KCM_CONTROLLERS = ("garbage-collector-controller", "namespace-controller", "clusterrole-aggregation-controller")


class ControlPlaneError(RuntimeError):
    """The control plane could not be built or started; the message says why and what to do."""


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kube_controller_manager: Path
    kubectl: Path
    cnpg_manager: Path


@dataclass
class ControlPlane:
    """A running control plane. Serialisable to state.json so `devcluster down` can stop it."""

    state_dir: Path
    server: str
    kubeconfig: Path
    ca_file: Path
    admin_token: str
    kubectl: str = "kubectl"
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def audit_log(self) -> Path:
        """kube-apiserver's audit log (JSON lines, one event per request that deploy/audit/policy.yaml keeps)."""
        return self.state_dir / AUDIT_LOG

    def api_client(self) -> Any:
        """A new kubernetes.client.ApiClient logged in as the admin."""
        from kubernetes import config  # noqa: PLC0415  (heavy import, only when asked)

        return config.new_client_from_config(config_file=str(self.kubeconfig))

    def to_json(self) -> str:
        data = asdict(self)
        data.update(state_dir=str(self.state_dir), kubeconfig=str(self.kubeconfig), ca_file=str(self.ca_file))
        return json.dumps(data, indent=2)

    @classmethod
    def from_json(cls, text: str) -> ControlPlane:
        data = json.loads(text)
        return cls(
            state_dir=Path(data["state_dir"]),
            server=data["server"],
            kubeconfig=Path(data["kubeconfig"]),
            ca_file=Path(data["ca_file"]),
            admin_token=data["admin_token"],
            kubectl=data.get("kubectl", "kubectl"),
            pids={k: int(v) for k, v in data["pids"].items()},
        )

    def stop(self) -> None:
        stop_processes(self.pids, self.state_dir)
        self.pids.clear()

    @contextlib.contextmanager
    def outage(self, name: str, *, timeout: float = START_TIMEOUT) -> Iterator[None]:
        """Stop one process ("kube-apiserver", "etcd") for the duration of the block, then start it again
        with the same command line and return once the API server answers /readyz (fault-injection tests).
        """
        pid = self.pids[name]
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").decode().split("\0")
        stop_processes({name: pid}, self.state_dir)
        try:
            yield
        finally:
            process = spawn(name, argv, self.state_dir, detach=False)
            self.pids[name] = process.pid
            context = ssl.create_default_context(cafile=str(self.ca_file))
            _wait_http_ok(f"{self.server}/readyz", context, name, process, self.state_dir, timeout=timeout)


# --------------------------------------------------------------------------- binaries and CRDs


def locate_binaries() -> Binaries:
    """Use KUBEBUILDER_ASSETS when set (envtest convention), else build or reuse the cached build."""
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    built: Path | None = None
    if assets:
        folder = Path(assets)
        etcd, apiserver = folder / "etcd", folder / "kube-apiserver"
        if not (etcd.is_file() and apiserver.is_file()):
            raise ControlPlaneError(f"KUBEBUILDER_ASSETS={assets} must hold etcd and kube-apiserver")
        kcm, kubectl = folder / "kube-controller-manager", folder / "kubectl"
        if not (kcm.is_file() and kubectl.is_file()):  # envtest ships no controller manager: build ours
            built = build_binaries()
            kcm = kcm if kcm.is_file() else built / "kube-controller-manager"
            kubectl = kubectl if kubectl.is_file() else built / "kubectl"
        return Binaries(etcd, apiserver, kcm, kubectl, build_cnpg_manager())
    built = build_binaries()
    return Binaries(
        built / "etcd", built / "kube-apiserver", built / "kube-controller-manager", built / "kubectl",
        build_cnpg_manager(),
    )


def build_binaries() -> Path:
    result = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise ControlPlaneError(
            "building etcd/kube-apiserver/kube-controller-manager from Go modules failed "
            f"(exit {result.returncode}); see the go output above. Go and the Go module proxy are required."
        )
    return Path(result.stdout.strip().splitlines()[-1])


def build_cnpg_manager(version: str = CNPG_VERSION) -> Path:
    """CloudNativePG's manager binary, built from its Go module (cached; see build-binaries.sh)."""
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "cnpg"], stdout=subprocess.PIPE, text=True, check=False,
        env={**os.environ, "CNPG_MCP_CNPG_VERSION": version},
    )
    if result.returncode != 0:
        raise ControlPlaneError(
            f"building the CloudNativePG manager {version} from its Go module failed "
            f"(exit {result.returncode}); see the go output above. Go and the Go module proxy are required."
        )
    return Path(result.stdout.strip().splitlines()[-1])


@functools.cache
def module_dir(module: str, version: str) -> Path:
    """A Go module's source, downloaded through the module proxy (once per process)."""
    result = subprocess.run(
        ["go", "mod", "download", "-json", f"{module}@{version}"],
        capture_output=True, text=True, check=False, cwd=REPO_ROOT / "devcluster",
        env={**os.environ, "GOFLAGS": "-mod=mod"},
    )
    if result.returncode != 0:
        raise ControlPlaneError(f"go mod download {module}@{version} failed: {result.stderr.strip()}")
    return Path(json.loads(result.stdout)["Dir"])


def cnpg_module_dir(version: str = CNPG_VERSION) -> Path:
    """The CloudNativePG Go module's source."""
    return module_dir(CNPG_MODULE, version)


def cnpg_crd_files(version: str = CNPG_VERSION) -> list[Path]:
    """CloudNativePG's CRDs from its Go module (config/crd/bases)."""
    return _module_crd_files(CNPG_MODULE, version, "postgresql.cnpg.io_*.yaml")


def barman_plugin_crd_files(version: str = BARMAN_PLUGIN_VERSION) -> list[Path]:
    """The Barman Cloud plugin's CRDs (ObjectStore) from its Go module, like CNPG's."""
    return _module_crd_files(BARMAN_PLUGIN_MODULE, version, "barmancloud.cnpg.io_*.yaml")


def _module_crd_files(module: str, version: str, pattern: str) -> list[Path]:
    bases = module_dir(module, version) / "config" / "crd" / "bases"
    files = sorted(bases.glob(pattern))
    if not files:
        raise ControlPlaneError(f"no CRDs found in {bases}")
    return files


def project_crd_files() -> list[Path]:
    crds = sorted(p for p in (REPO_ROOT / "crds").glob("*.yaml") if p.name != "kustomization.yaml")
    return [*crds, REPO_ROOT / "deploy" / "operator" / "peering-crds.yaml"]  # Kopf peering (several replicas)


def apply_manifests(plane: ControlPlane, folders: Iterable[Path]) -> None:
    """`kubectl apply --server-side -k` each kustomization, as an admin would on a real cluster."""
    for folder in folders:
        done = subprocess.run(
            [plane.kubectl, "--kubeconfig", str(plane.kubeconfig), "apply", "--server-side",
             "--force-conflicts", "-k", str(folder)],
            capture_output=True, text=True, timeout=120, check=False,
        )
        if done.returncode != 0:
            raise ControlPlaneError(f"applying {folder.relative_to(REPO_ROOT)} failed: {done.stderr.strip()}")


def wait_requester_stamping(api_client: Any) -> None:
    """Until the MutatingAdmissionPolicy stamps new intents.

    Its schema for a custom resource comes from the API server's OpenAPI v3, which it re-reads every
    5 s, so right after the CRDs and the policy appear, creating an intent answers 503 for a while.
    A dry-run create (nothing stored) shows when it is over.
    """
    from kubernetes import client  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    from cnpg_mcp_api import constants  # noqa: PLC0415

    probe = {"apiVersion": constants.API_VERSION, "kind": constants.ROLE_REQUEST_KIND,
             "metadata": {"name": "admission-probe"}, "spec": {"cluster": "probe", "roleName": "probe"}}
    custom = client.CustomObjectsApi(api_client)
    deadline = time.monotonic() + START_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        try:
            created = custom.create_namespaced_custom_object(constants.GROUP, constants.VERSION, "default",
                                                             constants.ROLE_REQUEST_PLURAL, probe, dry_run="All")
            if constants.REQUESTER_ANNOTATION in (created["metadata"].get("annotations") or {}):
                return
            last = "created without the requester annotation"
        except ApiException as exc:
            if exc.status != 503:
                raise ControlPlaneError(f"admission probe failed: {exc.status} {exc.reason}: {exc.body}") from exc
            last = f"{exc.status} {exc.reason}"
        time.sleep(0.5)
    raise ControlPlaneError(f"the requester MutatingAdmissionPolicy never applied ({last})")


def load_crds(files: Iterable[Path]) -> list[dict[str, Any]]:
    crds: list[dict[str, Any]] = []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                crds.append(doc)
    return crds


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """Ask the kernel to kill this child when the process that started it dies (PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGKILL)


def spawn(name: str, args: Sequence[str], state_dir: Path, *, detach: bool,
          env: Mapping[str, str] | None = None) -> subprocess.Popen[bytes]:
    log = (state_dir / f"{name}.log").open("ab")
    return subprocess.Popen(
        list(args),
        env=None if env is None else dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=None if detach else _die_with_parent,  # noqa: PLW1509 (only prctl, no locks)
    )


def _is_ours(pid: int, state_dir: Path) -> bool:
    """Guards against a reused pid: the process names our state dir in its command line or
    environment (CNPG's manager takes its paths from the environment only)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        environ = Path(f"/proc/{pid}/environ").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return str(state_dir) in cmdline or str(state_dir) in environ or "devcluster.simulator" in cmdline


KILL_WAIT_SECONDS = 10.0


def stop_processes(pids: dict[str, int], state_dir: Path, timeout: float = 5.0) -> None:
    """SIGTERM every process (in reverse start order), then SIGKILL what is left.

    The timeout is short on purpose: kube-apiserver's graceful shutdown waits for open watches.
    """
    alive = [pid for pid in reversed(list(pids.values())) if _is_ours(pid, state_dir)]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap()
        alive = [pid for pid in alive if _exists(pid)]
        if not alive:
            return
        time.sleep(0.1)
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    # SIGKILL is not instant on a loaded machine (found by CI: `sandbox down` returned while one process
    # still ran): return only once every process is gone.
    deadline = time.monotonic() + KILL_WAIT_SECONDS
    while alive and time.monotonic() < deadline:
        _reap()
        alive = [pid for pid in alive if _exists(pid)]
        if alive:
            time.sleep(0.05)


def _exists(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def _reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def _log_tail(state_dir: Path, name: str, lines: int = 30) -> str:
    path = state_dir / f"{name}.log"
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --------------------------------------------------------------------------- readiness


def _wait_http_ok(url: str, context: ssl.SSLContext | None, what: str, proc: subprocess.Popen[bytes],
                  state_dir: Path, *, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ControlPlaneError(f"{what} exited with {proc.returncode}:\n{_log_tail(state_dir, what)}")
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as response:  # noqa: S310
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise ControlPlaneError(f"{what} not ready after {timeout:.0f}s ({last}):\n{_log_tail(state_dir, what)}")


def install_crds(api_client: Any, crds: Sequence[dict[str, Any]]) -> None:
    """Create or replace each CRD, then wait until it is Established and served by discovery."""
    from kubernetes import client  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    ext = client.ApiextensionsV1Api(api_client)
    for crd in crds:
        name = crd["metadata"]["name"]
        try:
            ext.create_custom_resource_definition(body=crd)
        except ApiException as exc:
            if exc.status != 409:
                raise ControlPlaneError(f"installing CRD {name} failed: {exc.status} {exc.reason}") from exc
            live = ext.read_custom_resource_definition(name)
            body = dict(crd)
            body["metadata"] = {**crd["metadata"], "resourceVersion": live.metadata.resource_version}
            ext.replace_custom_resource_definition(name, body=body)
    deadline = time.monotonic() + START_TIMEOUT
    pending = {crd["metadata"]["name"]: crd for crd in crds}
    while pending and time.monotonic() < deadline:
        for name, crd in list(pending.items()):
            live = ext.read_custom_resource_definition(name)
            conditions = {c.type: c.status for c in (live.status.conditions or [])}
            if conditions.get("Established") == "True" and _discoverable(api_client, crd):
                del pending[name]
        if pending:
            time.sleep(0.1)
    if pending:
        raise ControlPlaneError(f"CRDs not established/discoverable: {sorted(pending)}")


def _discoverable(api_client: Any, crd: dict[str, Any]) -> bool:
    from kubernetes import client  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    group, plural = crd["spec"]["group"], crd["spec"]["names"]["plural"]
    for version in crd["spec"]["versions"]:
        if not version.get("served", True):
            continue
        try:
            resources = client.CustomObjectsApi(api_client).get_api_resources(group, version["name"])
        except ApiException:
            return False
        if plural not in {r.name for r in resources.resources}:
            return False
    return True


def _wait_for_default_namespace(api_client: Any) -> None:
    from kubernetes import client  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            core.read_namespace("default")
            return
        except ApiException:
            time.sleep(0.2)
    raise ControlPlaneError("namespace 'default' never appeared")


# --------------------------------------------------------------------------- start


def kubelet_client_flags(pki: Pki) -> list[str]:
    """How the API server reaches a kubelet (`kubectl logs`, pods/log): the CNPG simulator's Node
    publishes a loopback InternalIP and its endpoint's port; both sides use the control plane's CA."""
    assert pki.kubelet_client_cert is not None and pki.kubelet_client_key is not None
    return [
        f"--kubelet-client-certificate={pki.kubelet_client_cert}",
        f"--kubelet-client-key={pki.kubelet_client_key}",
        f"--kubelet-certificate-authority={pki.ca_cert}",
        "--kubelet-preferred-address-types=InternalIP",
    ]


def write_kubeconfig(path: Path, server: str, ca_file: Path, token: str, namespace: str = "default") -> None:
    ca_data = base64.b64encode(ca_file.read_bytes()).decode()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cnpg-mcp-dev", "cluster": {"server": server,
                                                          "certificate-authority-data": ca_data}}],
        "users": [{"name": "admin", "user": {"token": token}}],
        "contexts": [{"name": "cnpg-mcp-dev",
                      "context": {"cluster": "cnpg-mcp-dev", "user": "admin", "namespace": namespace}}],
        "current-context": "cnpg-mcp-dev",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def start(state_dir: Path, *, detach: bool = False, extra_crd_files: Sequence[Path] = ()) -> ControlPlane:
    """Start etcd, kube-apiserver and kube-controller-manager; install CRDs; return when usable.

    With detach=False the processes die with the calling process (tests); with detach=True they
    outlive it (`make cluster`), and `stop()` / `devcluster down` ends them.
    """
    state_dir = state_dir.resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    binaries = locate_binaries()
    crds = load_crds([*cnpg_crd_files(), *barman_plugin_crd_files(), *project_crd_files(), *extra_crd_files])
    pki = create_pki(state_dir / "pki")
    (state_dir / "tokens.csv").write_text(f'{pki.admin_token},admin,admin,"system:masters"\n')
    (state_dir / "tokens.csv").chmod(0o600)
    audit_policy = state_dir / "audit-policy.yaml"
    audit_policy.write_text(AUDIT_POLICY.read_text())

    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    plane = ControlPlane(state_dir, server, state_dir / "kubeconfig", pki.ca_cert, pki.admin_token,
                         kubectl=str(binaries.kubectl))
    try:
        etcd = spawn("etcd", [
            str(binaries.etcd), "--name=dev", f"--data-dir={state_dir / 'etcd-data'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=dev=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync=true", "--log-level=warn",
        ], state_dir, detach=detach)
        plane.pids["etcd"] = etcd.pid
        _wait_http_ok(f"http://127.0.0.1:{etcd_port}/health", None, "etcd", etcd, state_dir)

        apiserver = spawn("kube-apiserver", [
            str(binaries.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
            f"--tls-cert-file={pki.serving_cert}", f"--tls-private-key-file={pki.serving_key}",
            f"--client-ca-file={pki.ca_cert}", f"--token-auth-file={state_dir / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--audit-policy-file={audit_policy}", f"--audit-log-path={state_dir / AUDIT_LOG}",
            f"--service-account-issuer={server}",
            f"--service-account-key-file={pki.service_account_key}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # No ServiceAccount controller runs, so the admission plugin would reject every pod/SA use.
            "--disable-admission-plugins=ServiceAccount",
            # As hardened clusters do: blockOwnerDeletion needs update on the owner's finalizers.
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
            # A loopback advertise address must not be written into the kubernetes Endpoints.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true", "--profiling=false",
            f"--cert-dir={state_dir / 'pki'}",
            *kubelet_client_flags(pki),
        ], state_dir, detach=detach)
        plane.pids["kube-apiserver"] = apiserver.pid
        context = ssl.create_default_context(cafile=str(pki.ca_cert))
        _wait_http_ok(f"{server}/readyz", context, "kube-apiserver", apiserver, state_dir)
        write_kubeconfig(plane.kubeconfig, server, pki.ca_cert, pki.admin_token)

        api_client = plane.api_client()
        try:
            _wait_for_default_namespace(api_client)
            install_crds(api_client, crds)
            apply_manifests(plane, PROJECT_MANIFESTS)
            wait_requester_stamping(api_client)
        finally:
            api_client.close()

        # Started after the CRDs exist: the garbage collector re-reads discovery only every 30 s.
        kcm = spawn("kube-controller-manager", [
            str(binaries.kube_controller_manager), f"--kubeconfig={plane.kubeconfig}",
            f"--controllers={','.join(KCM_CONTROLLERS)}",
            "--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false",
            "--kube-api-qps=200", "--kube-api-burst=400", "--concurrent-gc-syncs=10",
            "--concurrent-namespace-syncs=10",
        ], state_dir, detach=detach)
        plane.pids["kube-controller-manager"] = kcm.pid
        time.sleep(0.5)
        if kcm.poll() is not None:
            log = _log_tail(state_dir, "kube-controller-manager")
            raise ControlPlaneError(f"kube-controller-manager exited:\n{log}")

        plane.pids[CNPG_MANAGER] = start_cnpg_admission(plane, binaries.cnpg_manager, detach=detach)
    except BaseException:
        plane.stop()
        raise
    (state_dir / "controlplane.json").write_text(plane.to_json())
    return plane


CNPG_MANAGER = "cnpg-manager"


def start_cnpg_admission(plane: ControlPlane, manager: Path, *, detach: bool,
                         timeout: float = cnpg_webhooks.ADMISSION_TIMEOUT) -> int:
    """Start CloudNativePG's manager, register its webhooks, return its pid once admission is served.

    No fallback: if the webhook server does not come up, this raises with the manager's log.
    """
    port = free_port()
    # A directory per run: the manager re-reads its certificates, another run must not replace them.
    pki = create_webhook_pki(plane.state_dir / f"pki-cnpg-webhooks-{port}")
    process = spawn(
        CNPG_MANAGER, cnpg_webhooks.manager_arguments(manager, port), plane.state_dir, detach=detach,
        env=cnpg_webhooks.manager_environment(plane.kubeconfig, pki.cert_dir),
    )
    base_url = f"https://127.0.0.1:{port}"
    api_client = plane.api_client()
    registered = False
    try:
        cnpg_webhooks.wait_readyz(base_url, pki.ca_cert, process,
                                  lambda: _log_tail(plane.state_dir, CNPG_MANAGER), timeout)
        manifests = cnpg_webhooks.read_manifests(cnpg_module_dir())
        # Registered only once the server answers: with failurePolicy Fail, CNPG writes need it.
        registered = True
        cnpg_webhooks.register(api_client, cnpg_webhooks.webhook_configurations(
            manifests, base_url, pki.ca_cert.read_bytes()))
        cnpg_webhooks.wait_admission(api_client, timeout)
    except BaseException as exc:
        if registered:
            with contextlib.suppress(Exception):
                cnpg_webhooks.unregister(api_client)
        stop_processes({CNPG_MANAGER: process.pid}, plane.state_dir)
        if isinstance(exc, cnpg_webhooks.WebhookStartError):
            raise ControlPlaneError(f"CloudNativePG admission webhooks: {exc}") from exc
        raise
    finally:
        api_client.close()
    return process.pid


def load_running(state_dir: Path) -> ControlPlane | None:
    path = state_dir.resolve() / "controlplane.json"
    if not path.exists():
        return None
    return ControlPlane.from_json(path.read_text())


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m devcluster.controlplane build` only builds (or finds) the binaries."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["build"]:
        print(build_binaries())
        return 0
    print("usage: python -m devcluster.controlplane build", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
