"""Execute every notebook at its default (small) sizes, so none can rot, and check that every plotting cell shows its
figure inline. Outputs must be stripped in git."""

from __future__ import annotations

import re
import subprocess
import sys
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


# A cell that calls one of these draws a figure; it must reach the notebook as an inline image.
_PLOTTING = re.compile(r"\bplot(_\w+)?\(|\.plot\(|draw\(output=.mpl")


def plotting_cells(nb) -> list[int]:
    """Indices of the code cells that draw a matplotlib figure."""
    return [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and _PLOTTING.search(c.source)]


def test_library_leaves_the_backend_alone(tmp_path):
    """Plotting through the library keeps the caller's backend: a notebook's inline backend must survive it."""
    script = f"""
import matplotlib
matplotlib.use("svg")
from analysis.plots import plot_variance
from analysis.results import StudyResult
from circuits import qffn_circuit
from circuits.io import draw
from qldm.eval.spectrum import plot_spectra
from qldm.train.progress import plot_loss
point = dict(design="none", n_layers=5, n_qubits=2, variance=0.1, ci_low=0.05, ci_high=0.2, exact=True)
plot_variance(StudyResult(settings={{}}, points=[point]), r"{tmp_path / "v.png"}")
draw(qffn_circuit(2), r"{tmp_path / "c.png"}")
plot_spectra({{"a": ([0.1, 0.2], [1.0, 0.5])}}, r"{tmp_path / "s.png"}")
plot_loss([{{"step": 1, "loss": 1.0}}, {{"step": 2, "loss": 0.5}}], r"{tmp_path / "l.png"}")
print(matplotlib.get_backend())
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True, cwd=tmp_path
    )
    assert out.stdout.strip().splitlines()[-1] == "svg"
    assert all((tmp_path / f"{n}.png").stat().st_size > 0 for n in "vcsl")


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
    blank = [i for i in plotting_cells(nb) if not any("image/png" in o.get("data", {}) for o in nb.cells[i].outputs)]
    assert not blank, f"{name}: plotting cells {blank} show no figure"
