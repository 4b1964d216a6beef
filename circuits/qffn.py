"""The Q-FFN circuit: arctan phase encoding, ancilla-controlled rotation layers, CNOT ring, <Z> per data qubit.

Wire layout (as in Yao & Hasegawa, PRA 111, 022426, and the original implementation): data qubits ``0..n-1``; ancillas
after them. Per layer, every data qubit i gets a general rotation Rot(phi, theta, omega) = RZ(omega) RY(theta) RZ(phi),
controlled by its ancilla (in ``|+>``), followed by a CNOT ring i -> (i+1) mod n.
"""

from __future__ import annotations

from typing import Literal

from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.quantum_info import SparsePauliOp

from circuits.spec import CircuitSpec

__all__ = ["qffn_circuit", "ANCILLA_MODES", "READOUTS", "z_observable"]

AncillaMode = Literal["per-qubit", "shared", "none"]
Readout = Literal["ring", "local"]
ANCILLA_MODES: tuple[str, ...] = ("per-qubit", "shared", "none")
READOUTS: tuple[str, ...] = ("ring", "local")


def z_observable(qubits: list[int] | tuple[int, ...], num_qubits: int) -> SparsePauliOp:
    """Return the Pauli-Z product on ``qubits`` as a ``SparsePauliOp`` over ``num_qubits`` wires."""
    return SparsePauliOp.from_sparse_list([("Z" * len(qubits), list(qubits), 1.0)], num_qubits=num_qubits)


def _cnot_ring(qc: QuantumCircuit, data: list[int]) -> None:
    n = len(data)
    if n < 2:
        return
    for i in range(n):  # i -> (i+1) mod n, as in the original; for n = 2 this is CX(0,1) then CX(1,0)
        qc.cx(data[i], data[(i + 1) % n])


def qffn_circuit(
    n_qubits: int,
    n_layers: int = 2,
    ancillas: AncillaMode = "per-qubit",
    readout: Readout = "ring",
) -> CircuitSpec:
    """Build the Q-FFN circuit.

    Args:
        n_qubits: Data qubits n; also the number of input features and of outputs.
        n_layers: Number of (controlled Rot, CNOT ring) layers.
        ancillas: ``"per-qubit"`` (one ancilla per data qubit, reused by every layer: 2n wires), ``"shared"``
            (one ancilla controls every rotation: n+1 wires) or ``"none"`` (plain rotations: n wires).
        readout: ``"ring"`` measures Z after the last CNOT ring (the original design; each <Z_i> is then a parity
            of several qubits), ``"local"`` drops that last ring.

    Returns:
        A spec with inputs ``x[0..n-1]`` (raw features, encoded as ``RY(atan(x_i))``), weights ``w[(l*n + i)*3 + k]``
        for layer l, qubit i and angle k in (phi, theta, omega), and observables Z_i.

    Raises:
        ValueError: On a non-positive size or an unknown ancilla mode or readout.
    """
    if int(n_qubits) < 1 or int(n_layers) < 1:
        raise ValueError(f"n_qubits and n_layers must be >= 1, got n_qubits={n_qubits}, n_layers={n_layers}")
    if ancillas not in ANCILLA_MODES:
        raise ValueError(f"unknown ancilla mode {ancillas!r}; choose one of {ANCILLA_MODES}")
    if readout not in READOUTS:
        raise ValueError(f"unknown readout {readout!r}; choose one of {READOUTS}")
    n, n_layers = int(n_qubits), int(n_layers)
    n_anc = {"per-qubit": n, "shared": 1, "none": 0}[ancillas]
    data, anc = list(range(n)), list(range(n, n + n_anc))
    x = ParameterVector("x", n)
    w = ParameterVector("w", n_layers * n * 3)
    qc = QuantumCircuit(n + n_anc, name=f"qffn_n{n}")

    for q in anc:
        qc.h(q)  # ancillas in |+>: the uniform mixture over control values (Yao & Hasegawa, Sec. III)
    for i in data:
        qc.ry(x[i].arctan(), i)  # arctan phase encoding keeps any real feature inside (-pi/2, pi/2)

    for layer in range(n_layers):
        for i in data:
            phi, theta, omega = (w[(layer * n + i) * 3 + k] for k in range(3))
            if ancillas == "none":
                qc.rz(phi, i)
                qc.ry(theta, i)
                qc.rz(omega, i)
            else:
                c = anc[i] if ancillas == "per-qubit" else anc[0]
                qc.crz(phi, c, i)
                qc.cry(theta, c, i)
                qc.crz(omega, c, i)
        if readout == "ring" or layer < n_layers - 1:
            _cnot_ring(qc, data)

    total = n + n_anc
    return CircuitSpec(
        circuit=qc,
        input_params=tuple(x),
        weight_params=tuple(w),
        observables=tuple(z_observable([i], total) for i in data),
        data_qubits=tuple(data),
        ancilla_qubits=tuple(anc),
        name=f"qffn-n{n}-L{n_layers}-{ancillas}-{readout}",
        metadata={"kind": "qffn", "n_qubits": n, "n_layers": n_layers, "ancillas": ancillas, "readout": readout},
    )
