"""Test substrate: a real control plane, a real PostgreSQL and the CNPG simulator, per session.

Nothing here skips: if a piece cannot start, every test that needs it fails with the reason.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from devcluster import controlplane
from devcluster.controlplane import ControlPlane
from tests.integration.conftest import Intents, OperatorProcess

if TYPE_CHECKING:
    import subprocess

    from devcluster.postgres import PostgresServer

TESTS_DIR = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tier markers follow the folder: tests/unit → unit, tests/integration → integration."""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(TESTS_DIR).parts
        if parts and parts[0] in ("unit", "integration"):
            item.add_marker(getattr(pytest.mark, parts[0]))


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[controlplane.ControlPlane]:
    state_dir = tmp_path_factory.mktemp("controlplane")
    try:
        plane = controlplane.start(state_dir)
    except controlplane.ControlPlaneError as exc:
        pytest.fail(f"the local Kubernetes control plane could not start: {exc}", pytrace=False)
    yield plane
    plane.stop()


@pytest.fixture(scope="session")
def k8s(control_plane: controlplane.ControlPlane) -> Iterator[Any]:
    """An admin kubernetes.client.ApiClient for the session's control plane."""
    api_client = control_plane.api_client()
    yield api_client
    api_client.close()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    from devcluster.postgres import PostgresServer  # noqa: PLC0415

    try:
        server = PostgresServer.start(tmp_path_factory.mktemp("postgres"))
    except Exception as exc:  # any failure must fail the run, with its reason
        pytest.fail(f"PostgreSQL could not start: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def cnpg_simulator_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the session's CNPG simulator writes its log (tests may read it)."""
    return tmp_path_factory.mktemp("simulator") / "cnpg-simulator.log"


@pytest.fixture(scope="session")
def cnpg_simulator(
    control_plane: controlplane.ControlPlane,
    postgres: PostgresServer,
    cnpg_simulator_log: Path,
) -> Iterator[subprocess.Popen[bytes]]:
    from devcluster.simulator import launch_simulator, stop_simulator  # noqa: PLC0415

    try:
        process = launch_simulator(control_plane.kubeconfig, postgres, cnpg_simulator_log)
    except Exception as exc:
        pytest.fail(f"the CNPG simulator could not start: {exc}", pytrace=False)
    yield process
    stop_simulator(process)


def _namespace_name(test_name: str) -> str:
    stem = re.sub(r"[^a-z0-9-]+", "-", test_name.lower()).strip("-")[:40].strip("-")
    return f"t-{stem}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(k8s: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards (the namespace controller finishes it)."""
    from kubernetes import client  # noqa: PLC0415
    from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

    core = client.CoreV1Api(k8s)
    name = _namespace_name(request.node.name)
    core.create_namespace({"metadata": {"name": name, "labels": {"cnpg-mcp.io/test": "true"}}})
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


# The operator and the intent helpers, for the integration and the reliability tests alike. Defined here once:
# a conftest that imported these fixtures would get a session operator of its own, and two unpeered operators
# would then act on every namespace at once (a test that swaps in an operator with other flags stopped only one).
@pytest.fixture(scope="session")
def operator(control_plane: ControlPlane, cnpg_simulator: Any,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    log_path = tmp_path_factory.mktemp("operator") / "cnpg-mcp-operator.log"
    process = OperatorProcess(control_plane.kubeconfig, log_path, ["--all-namespaces"])
    try:
        process.start()
    except Exception as exc:
        pytest.fail(f"the cnpg-mcp operator could not start: {exc}", pytrace=False)
    yield process
    process.stop()


@pytest.fixture
def operator_factory(operator: OperatorProcess, control_plane: ControlPlane,
                     tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    """`start(*flags)` → a running extra operator; the session operator pauses meanwhile."""
    extras: list[OperatorProcess] = []

    def start(*flags: str) -> OperatorProcess:
        if operator.running():
            operator.stop()
        extra = OperatorProcess(control_plane.kubeconfig, tmp_path / f"operator-{len(extras)}.log", flags)
        extra.start()
        extras.append(extra)
        return extra

    yield start
    for extra in extras:
        extra.stop()
    if not operator.running():
        operator.start()


@pytest.fixture
def intents(k8s: Any) -> Intents:
    return Intents(k8s)
