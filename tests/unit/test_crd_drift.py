"""crds/*.yaml must be exactly what the typed models generate."""

from __future__ import annotations

from cnpg_mcp_api import crdgen


def test_generated_crds_match_the_models() -> None:
    files = crdgen.expected_files()
    assert len(files) == 9  # eight CRDs (three for backups, one for poolers, one for operations) and the kustomization
    stale = [path.name for path, text in files.items() if not path.exists() or path.read_text() != text]
    assert not stale, f"CRD drift in {stale}: run `make crds` and commit the result"


def test_no_stray_crd_files() -> None:
    expected = {path.name for path in crdgen.expected_files()}
    present = {path.name for path in crdgen.CRD_DIR.glob("*.yaml")}
    assert present == expected
