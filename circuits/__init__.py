"""Qiskit circuit builders. Every builder returns a :class:`CircuitSpec`, the single source of truth."""

from __future__ import annotations

from typing import Any

from circuits.barren import BP_ANCILLA_MODES, BP_OBSERVABLES, bp_circuit
from circuits.custom import spec_from_circuit, spec_from_qnn
from circuits.io import draw, from_qpy, to_qasm3, to_qpy
from circuits.qffn import ANCILLA_MODES, READOUTS, qffn_circuit, z_observable
from circuits.spec import CircuitSpec

__all__ = [
    "CircuitSpec",
    "qffn_circuit",
    "bp_circuit",
    "build_spec",
    "z_observable",
    "to_qpy",
    "from_qpy",
    "spec_from_circuit",
    "spec_from_qnn",
    "to_qasm3",
    "draw",
    "ANCILLA_MODES",
    "READOUTS",
    "BP_OBSERVABLES",
    "BP_ANCILLA_MODES",
]

_BUILDERS = {"qffn": qffn_circuit, "bp": bp_circuit}


def build_spec(metadata: dict[str, Any]) -> CircuitSpec:
    """Rebuild a spec from its ``metadata`` (as saved in configs and result files).

    Raises:
        ValueError: If ``metadata["kind"]`` names no builder.
    """
    meta = dict(metadata)
    kind = meta.pop("kind", None)
    meta.pop("axes", None)
    if kind not in _BUILDERS:
        raise ValueError(f"unknown circuit kind {kind!r}; choose one of {sorted(_BUILDERS)}")
    return _BUILDERS[kind](**meta)
