"""deploy/helm/cnpg-mcp: lints, renders the same objects as the kustomize manifests (so the two never drift),
and installs into the real control plane, where the operator and the gateway then work as their ServiceAccounts.

Helm is built from its Go module by devcluster/build-binaries.sh (cached, keyed by version), like kubectl."""

from __future__ import annotations

import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcp import Client

from devcluster.controlplane import BUILD_SCRIPT, ControlPlane, wait_requester_stamping
from devcluster.postgres import PostgresServer
from tests.integration.conftest import Intents, OperatorProcess
from tests.integration.gateway_helpers import gateway_server, ok, secret_password, unique
from tests.integration.test_deploy_rbac import NAMESPACE, PEERING, kubectl, rbac_denials, token_kubeconfig

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "cnpg-mcp"
# Which kustomization each set of chart values must reproduce. The overlays hold the gateway only (no operator,
# no user roles, no admission policies).
GATEWAY_ONLY = ["--set", "operator.enabled=false", "--set", "userRoles.enabled=false",
                "--set", "admissionPolicies.enabled=false"]
VARIANTS: dict[str, tuple[Path, list[str]]] = {
    "default": (REPO / "deploy", ["--include-crds"]),
    "read-only": (REPO / "deploy" / "overlays" / "read-only-gateway",
                  [*GATEWAY_ONLY, "--set", "gateway.mode=readOnly"]),
    "impersonating": (REPO / "deploy" / "overlays" / "impersonating-gateway",
                      [*GATEWAY_ONLY, "--set", "gateway.impersonation=true"]),
    "namespaced": (REPO / "deploy" / "overlays" / "namespaced-gateway",
                   [*GATEWAY_ONLY, "--set", "gateway.namespaces={team-a,team-b}"]),
}
# Helm does not create the release namespace (`helm install --create-namespace` does).
NOT_IN_CHART = {"Namespace"}


@pytest.fixture(scope="module")
def helm() -> str:
    built = subprocess.run(["bash", str(BUILD_SCRIPT), "helm"], capture_output=True, text=True, timeout=3600,
                           check=False)
    assert built.returncode == 0, f"building Helm failed: {built.stderr[-3000:]}"
    return built.stdout.strip().splitlines()[-1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=300, check=False)


def helm_template(helm: str, *values: str) -> list[dict[str, Any]]:
    done = run(helm, "template", "cnpg-mcp", str(CHART), "--namespace", NAMESPACE, *values)
    assert done.returncode == 0, done.stderr
    return [o for o in yaml.safe_load_all(done.stdout) if o]


def kustomize(control_plane: ControlPlane, folder: Path) -> list[dict[str, Any]]:
    return [o for o in yaml.safe_load_all(kubectl(control_plane, "kustomize", str(folder))) if o]


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def what_matters(obj: dict[str, Any]) -> Any:
    """The parts of an object whose drift would change behaviour or privilege."""
    kind = obj["kind"]
    if kind in ("ClusterRole", "Role"):
        return obj["rules"]
    if kind in ("ClusterRoleBinding", "RoleBinding"):
        return obj["roleRef"], obj["subjects"]
    if kind == "CustomResourceDefinition":
        return obj["spec"]
    if kind == "Deployment":
        spec = obj["spec"]["template"]["spec"]
        containers = [{k: c.get(k) for k in ("name", "image", "command", "args", "securityContext", "resources",
                                              "ports", "env", "volumeMounts", "readinessProbe", "livenessProbe")}
                      for c in spec["containers"]]
        return (obj["spec"]["replicas"], obj["spec"]["selector"], spec["serviceAccountName"],
                spec["securityContext"], spec["volumes"], containers)
    if kind == "Service":
        return obj["spec"]
    if kind == "ServiceAccount":
        return obj.get("automountServiceAccountToken")
    return obj


def test_helm_lint_passes_for_every_variant(helm: str) -> None:
    for _, values in VARIANTS.values():
        done = run(helm, "lint", "--strict", str(CHART), *[v for v in values if v != "--include-crds"])
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_chart_renders_what_kustomize_renders(helm: str, control_plane: ControlPlane, variant: str) -> None:
    folder, values = VARIANTS[variant]
    expected = {key(o): o for o in kustomize(control_plane, folder) if o["kind"] not in NOT_IN_CHART}
    actual = {key(o): o for o in helm_template(helm, *values)}
    assert sorted(actual) == sorted(expected), "objects differ between the chart and kustomize"
    for name, obj in expected.items():
        assert what_matters(actual[name]) == what_matters(obj), f"{variant}: {name} drifted"


def test_chart_crds_are_the_generated_ones() -> None:
    """crds/ in the chart are copies (Helm reads only its own folder): byte for byte the generated ones."""
    generated = {p.name: p.read_text() for p in (REPO / "crds").glob("*.yaml") if p.name != "kustomization.yaml"}
    copied = {p.name: p.read_text() for p in (CHART / "crds").glob("pg*.yaml")}
    assert copied == generated, "the chart's CRDs are stale: run `make crds`"
    assert (CHART / "crds" / "kopf-peering-crds.yaml").read_text() == \
        (REPO / "deploy" / "operator" / "peering-crds.yaml").read_text()


def test_values_schema_rejects_bad_values(helm: str) -> None:
    for bad in (["--set", "gateway.mode=admin"], ["--set", "gateway.auth.oidc.issuer=not-a-url"],
                ["--set", "gateway.typo=1"]):
        done = run(helm, "template", "cnpg-mcp", str(CHART), *bad)
        assert done.returncode != 0 and "schema" in done.stderr, done.stderr


def test_chart_refuses_a_gateway_without_authentication(helm: str) -> None:
    done = run(helm, "template", "cnpg-mcp", str(CHART), "--set", "gateway.auth.tokenSecret.name=")
    assert done.returncode != 0 and "refuses HTTP without authentication" in done.stderr


def test_oidc_values_reach_the_gateway_and_toggles_render(helm: str) -> None:
    objects = helm_template(helm, "--set", "gateway.auth.oidc.issuer=https://idp.example.test",
                            "--set", "gateway.auth.oidc.jwksUrl=https://idp.example.test/keys",
                            "--set", "gateway.auth.oidc.resourceUrl=https://cnpg-mcp.example.test/mcp",
                            "--set", "gateway.auth.oidc.scopes={cnpg-mcp}", "--set", "gateway.auth.tokenSecret.name=",
                            "--set", "gateway.watchCache=false", "--set", "networkPolicy.enabled=true",
                            "--set", "metrics.serviceMonitor.enabled=true")
    gateway = next(o for o in objects if key(o) == ("Deployment", NAMESPACE, "cnpg-mcp-gateway"))
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    assert {"--oidc-issuer=https://idp.example.test", "--resource-url=https://cnpg-mcp.example.test/mcp",
            "--oidc-scope=cnpg-mcp"} <= set(container["args"])
    assert "--watch-cache" not in container["args"]
    assert not any(a.startswith("--token-file") for a in container["args"])
    kinds = {o["kind"] for o in objects}
    assert {"NetworkPolicy", "ServiceMonitor"} <= kinds


@pytest.fixture(scope="module")
def installed(helm: str, control_plane: ControlPlane, k8s: Any) -> Iterator[str]:
    """`helm install` into the control plane. deploy/ may already be applied in this session (same object
    names, fields owned by kubectl's server-side apply): --take-ownership and --force-conflicts let the release
    adopt them, so the test holds in any order."""
    done = run(helm, "upgrade", "--install", "cnpg-mcp", str(CHART), "--namespace", NAMESPACE, "--create-namespace",
               "--take-ownership", "--force-conflicts", "--kubeconfig", str(control_plane.kubeconfig))
    assert done.returncode == 0, done.stderr
    yield done.stdout
    # Leave the objects as deploy/'s own tests do, owned by kubectl: later tests apply overlays over them with
    # plain server-side apply, which would conflict with fields Helm co-owns. (CRDs stay: Helm never deletes them.)
    removed = run(helm, "uninstall", "cnpg-mcp", "--namespace", NAMESPACE, "--wait",
                  "--kubeconfig", str(control_plane.kubeconfig))
    assert removed.returncode == 0, removed.stderr
    kubectl(control_plane, "apply", "--server-side", "--force-conflicts", "-k", str(REPO / "deploy"))
    # The uninstall removed the admission policies and the apply re-created them; they take effect one by one,
    # and an intent created in between is refused by the immutability policy before the requester policy stamps
    # it (found by the next test in the full suite). Later tests start once stamping works again.
    wait_requester_stamping(k8s)


def test_helm_install_creates_the_release(installed: str, control_plane: ControlPlane) -> None:
    assert "CRDs" in installed  # the NOTES carry the upgrade note
    for kind, name in (("deployment", "cnpg-mcp-operator"), ("deployment", "cnpg-mcp-gateway"),
                       ("serviceaccount", "cnpg-mcp-gateway"), ("service", "cnpg-mcp-gateway")):
        managed = kubectl(control_plane, "-n", NAMESPACE, "get", kind, name,
                          "-o", "jsonpath={.metadata.labels.app\\.kubernetes\\.io/managed-by}")
        assert managed == "Helm", (kind, name)
    for crd in ("pgclusterrequests.cnpg-mcp.io", "clusterkopfpeerings.kopf.dev"):
        kubectl(control_plane, "get", "crd", crd)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_operator_and_gateway_work_as_the_charts_service_accounts(
    installed: str, control_plane: ControlPlane, k8s: Any, namespace: str, tmp_path: Path,
    operator: OperatorProcess, postgres: PostgresServer, intents: Intents, anyio_backend: str,
) -> None:
    operator_config = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-operator", tmp_path / "op")
    gateway_config = token_kubeconfig(control_plane, k8s, NAMESPACE, "cnpg-mcp-gateway", tmp_path / "gw")
    operator.stop()  # one operator at a time: ours runs as the chart's ServiceAccount, with its peering
    least = OperatorProcess(operator_config, tmp_path / "operator-helm.log",
                            ["--all-namespaces", f"--peering={PEERING}"])
    try:
        least.start()
        role = unique("helm_user")
        async with Client(gateway_server(control_plane, kubeconfig=str(gateway_config), watch_cache=True)) as mcp:
            ok(await mcp.call_tool("create_postgres_cluster", {"name": "helm-db", "instances": 1,
                                                               "namespace": namespace}))
            intents.wait_ready("PgClusterRequest", namespace, "helm-db")
            created = ok(await mcp.call_tool("create_postgres_role", {"cluster_name": "helm-db", "role_name": role,
                                                                      "namespace": namespace}))
            intents.wait_ready("PgRoleRequest", namespace, created["request"].split("/")[1])
            assert postgres.can_login(role, secret_password(k8s, namespace, created["password_secret"]))
            ok(await mcp.call_tool("get_cluster_status", {"name": "helm-db", "namespace": namespace,
                                                          "detail_level": "detailed", "format": "json"}))
        log = least.log_since_start()
        assert not rbac_denials(log)
    finally:
        least.stop()
        operator.start()


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert chart["appVersion"] == version, "bump Chart.yaml appVersion with pyproject's version"
