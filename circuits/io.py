"""Export a spec's circuit to QPY and OpenQASM 3 (and load both back), and draw it with matplotlib.

QPY carries the whole spec: the circuit's ``metadata`` holds the input and weight parameter names, the observables,
the data and ancilla wires, the name and the builder metadata, so :func:`from_qpy` returns an equal spec.

OpenQASM 3 carries the circuit only. Qiskit's importer (``qiskit.qasm3.loads``) resolves arithmetic of ``input
float`` parameters but no function calls, so an encoding such as ``ry(atan(x[0]))`` does not load back. With
``inputs`` given, :func:`to_qasm3` therefore binds the features on the way out (the encoded angles, through the
``atan``, become numbers) and keeps the weights as ``input float`` declarations; the text then always loads back.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qiskit import qasm3, qpy
from qiskit.quantum_info import SparsePauliOp

from circuits.spec import CircuitSpec

__all__ = ["to_qpy", "from_qpy", "to_qasm3", "draw", "SPEC_METADATA_KEY"]

#: Key of the spec record inside the QPY circuit's ``metadata``.
SPEC_METADATA_KEY = "qldm_spec"


def _spec_record(spec: CircuitSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "input_params": [p.name for p in spec.input_params],
        "weight_params": [p.name for p in spec.weight_params],
        "observables": [[[label, c.real, c.imag] for label, c in obs.to_list()] for obs in spec.observables],
        "data_qubits": list(spec.data_qubits),
        "ancilla_qubits": list(spec.ancilla_qubits),
        "metadata": dict(spec.metadata),
    }


def to_qpy(spec: CircuitSpec, path: str | Path) -> Path:
    """Write the circuit as QPY with the spec in its metadata (exact round trip, see :func:`from_qpy`).

    Returns:
        The path written.
    """
    path = Path(path)
    circuit = spec.circuit.copy()
    circuit.metadata = {**(circuit.metadata or {}), SPEC_METADATA_KEY: _spec_record(spec)}
    with path.open("wb") as fh:
        qpy.dump(circuit, fh)
    return path


def from_qpy(path: str | Path) -> CircuitSpec:
    """Load a spec written by :func:`to_qpy`; its parameters are the original ones (QPY keeps their identity).

    Raises:
        ValueError: If the file holds no spec record, or the record names parameters the circuit lacks.
    """
    with Path(path).open("rb") as fh:
        circuit = qpy.load(fh)[0]
    meta = dict(circuit.metadata or {})
    record = meta.pop(SPEC_METADATA_KEY, None)
    if record is None:
        raise ValueError(f"{path}: the QPY circuit carries no {SPEC_METADATA_KEY!r} metadata (not written by to_qpy)")
    circuit.metadata = meta
    by_name = {p.name: p for p in circuit.parameters}
    missing = [n for n in record["input_params"] + record["weight_params"] if n not in by_name]
    if missing:
        raise ValueError(f"{path}: spec names parameters the circuit lacks: {missing}")
    observables = tuple(
        SparsePauliOp.from_list([(label, complex(re, im)) for label, re, im in terms])
        for terms in record["observables"]
    )
    return CircuitSpec(
        circuit=circuit,
        input_params=tuple(by_name[n] for n in record["input_params"]),
        weight_params=tuple(by_name[n] for n in record["weight_params"]),
        observables=observables,
        data_qubits=tuple(record["data_qubits"]),
        ancilla_qubits=tuple(record["ancilla_qubits"]),
        name=record["name"],
        metadata=record["metadata"],
    )


def to_qasm3(spec: CircuitSpec, path: str | Path | None = None, *, inputs: Sequence[float] | None = None) -> str:
    """Return (and optionally write) the circuit as OpenQASM 3 text.

    Args:
        spec: The circuit.
        path: Where to write the text, if given.
        inputs: Shape ``(num_inputs,)``. ``None``: every parameter is an ``input float`` and encodings stay
            parameter expressions (``atan`` does not load back with ``qasm3.loads``). Given: the features are
            bound through the encoding on the way out and only the weights remain ``input float``, so the text
            loads back with ``qasm3.loads`` for every spec.

    Raises:
        ValueError: If ``inputs`` does not have ``num_inputs`` finite values.
    """
    circuit = spec.circuit
    if inputs is not None:
        values = np.asarray(inputs, dtype=float)
        if values.shape != (spec.num_inputs,) or not np.isfinite(values).all():
            raise ValueError(f"{spec.name}: inputs need {spec.num_inputs} finite values, got shape {values.shape}")
        circuit = circuit.assign_parameters(dict(zip(spec.input_params, values.tolist())))
    text = qasm3.dumps(circuit)
    if path is not None:
        Path(path).write_text(text)
    return text


def draw(spec: CircuitSpec, path: str | Path | None = None, **kwargs) -> Any:
    """Draw the circuit with matplotlib; save it to ``path`` if given. Returns the figure.

    The backend is the caller's: in a notebook the figure shows inline, a headless script falls back to Agg.
    """
    fig = spec.circuit.draw(output="mpl", fold=kwargs.pop("fold", 40), **kwargs)
    if path is not None:
        fig.savefig(path, dpi=120, bbox_inches="tight")
    return fig
