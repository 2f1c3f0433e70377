"""server.json, the MCP registry entry: valid against the registry's schema, and true to the package it names."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mcp_gateway.config import parse_args

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "tests" / "data" / "mcp-registry" / "server.schema.json"  # vendored: see the README beside it


def load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


SERVER = load(REPO / "server.json")
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def pypi_package() -> dict[str, Any]:
    (package,) = [p for p in SERVER["packages"] if p["registryType"] == "pypi"]
    return dict(package)


def test_server_json_is_valid_against_the_registry_schema() -> None:
    schema = load(SCHEMA)
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    problems = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(SERVER)]
    assert problems == []
    assert SERVER["$schema"] == schema["$id"]


def test_the_schema_rejects_what_the_registry_rejects() -> None:
    """The vendored schema is the real one: a version range and a missing transport are refused."""
    validator = jsonschema.Draft7Validator(load(SCHEMA))
    broken = json.loads(json.dumps(SERVER))
    broken["packages"][0]["version"] = "latest"
    assert list(validator.iter_errors(broken))
    del broken["packages"][0]["transport"]
    broken["packages"][0]["version"] = "0.1.0"
    assert list(validator.iter_errors(broken))


def test_server_json_names_this_package_and_version() -> None:
    package = pypi_package()
    assert package["identifier"] == PROJECT["name"]
    assert package["version"] == SERVER["version"] == PROJECT["version"]
    assert package["transport"] == {"type": "stdio"}
    # `uvx <identifier>` runs the script named like the package: it must be the gateway.
    assert PROJECT["scripts"][package["identifier"]] == "mcp_gateway.__main__:main"
    # The registry verifies PyPI ownership by this line in the package's README.
    assert f"mcp-name: {SERVER['name']}" in (REPO / PROJECT["readme"]).read_text()


def test_every_argument_in_server_json_is_accepted_by_the_gateway() -> None:
    argv: list[str] = []
    for argument in pypi_package()["packageArguments"]:
        assert argument["type"] == "named"
        argv += [argument["name"], "value"] * (2 if argument.get("isRepeated") else 1)
    config = parse_args(argv)
    assert config.kubeconfig == "value"
    assert config.namespace_allow == ("value", "value")
