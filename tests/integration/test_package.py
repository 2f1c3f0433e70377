"""The installable package: `python -m build` makes a clean wheel and sdist of the product only, and the
wheel, installed into a fresh virtual environment, runs `cnpg-mcp-server` for a real stdio MCP client."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from devcluster.controlplane import ControlPlane
from mcp_gateway import registry
from mcp_gateway.tools.catalog import TOOLS

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = {"mcp_gateway", "cnpg_mcp_api", "cnpg_mcp_operator"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass(frozen=True)
class Dists:
    wheel: Path
    sdist: Path


def project_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
                           capture_output=True, text=True, timeout=600, check=False)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return Dists(wheels[0], sdists[0])


@pytest.fixture(scope="module")
def installed(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment with only the wheel and its declared dependencies (from the package index,
    served from pip's cache when warm): proves the dependencies are declared, not borrowed from the dev venv."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(dists.wheel)],
                         capture_output=True, text=True, timeout=900, check=False)
    assert pip.returncode == 0, pip.stderr[-3000:]
    yield venv / "bin"


def top_level_names(names: list[str]) -> set[str]:
    return {name.split("/", 1)[0] for name in names if "/" in name and not name.split("/", 1)[0].endswith(".dist-info")}


def test_wheel_holds_only_the_product(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as wheel:
        names = wheel.namelist()
    assert top_level_names(names) == PRODUCT_PACKAGES
    assert f"cnpg_mcp-{project_version()}" in dists.wheel.name
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(dists.wheel) as wheel:
        scripts = wheel.read(entry_points).decode()
    assert "cnpg-mcp-server = mcp_gateway.__main__:main" in scripts
    assert "cnpg-mcp-operator = cnpg_mcp_operator.__main__:main" in scripts
    assert "cnpg-mcp = mcp_gateway.__main__:main" in scripts  # what `uvx cnpg-mcp` runs


def test_sdist_holds_no_devcluster_and_no_tests(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as sdist:
        inside = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert not [n for n in inside if n.startswith(("devcluster", "tests", "bench", ".devcluster"))], sorted(inside)
    assert "pyproject.toml" in inside and "README.md" in inside
    assert any(n.startswith("mcp_gateway/") for n in inside)


def test_twine_check_is_clean(dists: Dists) -> None:
    checked = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(dists.wheel), str(dists.sdist)],
                             capture_output=True, text=True, timeout=120, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_installed_commands_print_the_project_version(installed: Path) -> None:
    for command in ("cnpg-mcp-server", "cnpg-mcp-operator"):
        shown = subprocess.run([str(installed / command), "--version"], capture_output=True, text=True,
                               timeout=60, check=True)
        assert shown.stdout.strip() == f"{command} {project_version()}"


async def test_installed_server_answers_a_stdio_client(installed: Path, control_plane: ControlPlane) -> None:
    # No PYTHONPATH and a neutral working directory: only the installed wheel can answer.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
           "KUBECONFIG": str(control_plane.kubeconfig)}
    # `cnpg-mcp`: the command `uvx cnpg-mcp` and the MCP registry entry start.
    server = StdioServerParameters(command=str(installed / "cnpg-mcp"), args=["--read-only"], env=env,
                                   cwd=str(installed))
    async with Client(server, mode="legacy") as mcp:  # legacy era: a real initialize handshake
        assert mcp.server_info is not None
        assert (mcp.server_info.name, mcp.server_info.version) == ("cnpg-mcp", project_version())
        names = {tool.name for tool in (await mcp.list_tools()).tools}
    assert names == {spec.name for spec in registry.offered(TOOLS, read_only=True)}
