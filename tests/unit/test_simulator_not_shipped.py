"""The CNPG simulator (devcluster/) is test and sandbox tooling: never in the wheel, never imported by the product."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("mcp_gateway", "operator", "cnpg_mcp_api")


def test_devcluster_is_not_packaged() -> None:
    find = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    assert not any(pattern.startswith("devcluster") for pattern in find["include"])


def test_the_product_never_imports_devcluster() -> None:
    importing = [str(path.relative_to(REPO)) for folder in PRODUCT for path in (REPO / folder).rglob("*.py")
                 if re.search(r"^\s*(from|import)\s+devcluster\b", path.read_text(), re.MULTILINE)]
    assert importing == []
