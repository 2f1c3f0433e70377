"""The one version of cnpg-mcp: pyproject.toml's, read from the installed distribution's metadata."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "cnpg-mcp"


def package_version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"
