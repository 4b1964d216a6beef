"""Random circuits of the barren-plateau experiments (Yao & Hasegawa, PRA 111, 022426, and its code).

Baseline (McClean-style hardware-efficient ansatz): H on every qubit, then per layer a rotation drawn uniformly from
{RX, RY, RZ} on each qubit, then a CZ open chain (i, i+1). The ancilla variant gives data qubit i its own ancilla in
``|+>``, reused by every layer, which controls all of qubit i's rotations (CRX/CRY/CRZ); the CZ chain stays on the data
qubits. ``"shared"`` uses one ancilla for every rotation. The angles are the weights; the random *structure* (which
axis per gate) comes from ``seed``, so a seed fixes the circuit and the analysis draws angles separately.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector

from circuits.qffn import z_observable
from circuits.spec import CircuitSpec

__all__ = ["bp_circuit", "BP_OBSERVABLES", "BP_ANCILLA_MODES"]

BP_OBSERVABLES: tuple[str, ...] = ("z0z1", "global", "local")
BP_ANCILLA_MODES: tuple[str, ...] = ("none", "per-qubit", "shared")


def bp_circuit(
    n_qubits: int,
    n_layers: int,
    *,
    ancillas: Literal["none", "per-qubit", "shared"] = "none",
    observable: Literal["z0z1", "global", "local"] = "z0z1",
    seed: int = 0,
) -> CircuitSpec:
    """Build one random barren-plateau circuit.

    Args:
        n_qubits: Data qubits (>= 2 for the ``z0z1`` observable).
        n_layers: Rotation + CZ-chain layers.
        ancillas: ``"none"`` (the paper's baseline), ``"per-qubit"`` (the paper's ancilla variant) or ``"shared"``.
        observable: ``"z0z1"`` (the paper's Z0 Z1), ``"global"`` (Z on every data qubit) or ``"local"`` (Z0).
        seed: Seed of the random gate axes.

    Returns:
        A spec with no inputs, weights ``theta[l*n + i]`` (layer l, qubit i; ``theta[0]`` is the paper's theta_{1,1})
        and a single observable. ``metadata["axes"]`` lists the drawn axes.

    Raises:
        ValueError: On bad sizes, an unknown ancilla mode or observable.
    """
    n, n_layers = int(n_qubits), int(n_layers)
    if n < 1 or n_layers < 1:
        raise ValueError(f"n_qubits and n_layers must be >= 1, got {n_qubits}, {n_layers}")
    if ancillas not in BP_ANCILLA_MODES:
        raise ValueError(f"unknown ancilla mode {ancillas!r}; choose one of {BP_ANCILLA_MODES}")
    if observable not in BP_OBSERVABLES:
        raise ValueError(f"unknown observable {observable!r}; choose one of {BP_OBSERVABLES}")
    if observable == "z0z1" and n < 2:
        raise ValueError("observable 'z0z1' needs n_qubits >= 2")
    rng = np.random.default_rng(seed)
    axes = rng.choice(np.array(["x", "y", "z"]), size=(n_layers, n))
    n_anc = {"none": 0, "per-qubit": n, "shared": 1}[ancillas]
    total = n + n_anc
    theta = ParameterVector("theta", n_layers * n)
    qc = QuantumCircuit(total, name=f"bp_{ancillas}_n{n}_L{n_layers}")
    for q in range(total):
        qc.h(q)
    for layer in range(n_layers):
        for i in range(n):
            angle, axis = theta[layer * n + i], str(axes[layer, i])
            if ancillas == "none":
                getattr(qc, f"r{axis}")(angle, i)
            else:
                ctrl = n + i if ancillas == "per-qubit" else n
                getattr(qc, f"cr{axis}")(angle, ctrl, i)
        for i in range(n - 1):
            qc.cz(i, i + 1)
    obs_qubits = {"z0z1": [0, 1], "global": list(range(n)), "local": [0]}[observable]
    return CircuitSpec(
        circuit=qc,
        input_params=(),
        weight_params=tuple(theta),
        observables=(z_observable(obs_qubits, total),),
        data_qubits=tuple(range(n)),
        ancilla_qubits=tuple(range(n, total)),
        name=f"bp-{ancillas}-n{n}-L{n_layers}-{observable}-s{seed}",
        metadata={
            "kind": "bp",
            "n_qubits": n,
            "n_layers": n_layers,
            "ancillas": ancillas,
            "observable": observable,
            "seed": int(seed),
            "axes": ["".join(row) for row in axes],
        },
    )
