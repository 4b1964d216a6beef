"""Export a spec's circuit to QPY and OpenQASM 3, and draw it with matplotlib."""

from __future__ import annotations

from pathlib import Path

from qiskit import qasm3, qpy

from circuits.spec import CircuitSpec

__all__ = ["to_qpy", "to_qasm3", "draw"]


def to_qpy(spec: CircuitSpec, path: str | Path) -> Path:
    """Write the circuit as QPY (exact round trip, parameter expressions included). Returns the path."""
    path = Path(path)
    with path.open("wb") as fh:
        qpy.dump(spec.circuit, fh)
    return path


def to_qasm3(spec: CircuitSpec, path: str | Path | None = None) -> str:
    """Return (and optionally write) the circuit as OpenQASM 3 text, with inputs as ``input float`` declarations."""
    text = qasm3.dumps(spec.circuit)
    if path is not None:
        Path(path).write_text(text)
    return text


def draw(spec: CircuitSpec, path: str | Path | None = None, **kwargs):
    """Draw the circuit with matplotlib; save it to ``path`` if given. Returns the figure."""
    import matplotlib

    if path is not None:
        matplotlib.use("Agg", force=False)
    fig = spec.circuit.draw(output="mpl", fold=kwargs.pop("fold", 40), **kwargs)
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig
