"""Execute every notebook at its default (small) sizes, so none can rot. Outputs must be stripped in git."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = [
    "barren_plateaus.ipynb",
    "signal_and_simulability.ipynb",
    "feature_maps_and_gradient_flow.ipynb",
    "hardware_noise.ipynb",
    "your_estimatorqnn.ipynb",
]


@pytest.mark.parametrize("name", NAMES)
def test_notebook_is_stripped_and_has_parameters(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), f"{name}: outputs not stripped"
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name):
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert any(
        o.output_type in ("stream", "display_data") for c in nb.cells if c.cell_type == "code" for o in c.outputs
    )
