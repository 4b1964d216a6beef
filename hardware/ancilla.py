"""Ancilla elimination by branch sampling.

An ancilla prepared in ``|+>`` that only ever acts as a control and is never measured leaves the data qubits in the
uniform mixture over its control values (docs/quantum-facts.md, "Control-only ancillas are a mixture"). With ancilla
bits ``b``, ``<O> = 2^-k * sum_b <O>_b`` where ``<O>_b`` is measured on an n-qubit circuit in which each
ancilla-controlled gate is kept as its plain (uncontrolled) gate iff its control bit is 1, and dropped otherwise. So a
device can run an ensemble of narrower circuits without controlled rotations, one per sampled on/off pattern, with the
shots spread over them: same expectation, half the qubits (per-qubit ancillas), no controlled rotations.

This is *ancilla elimination by branch sampling*, an exact identity in expectation. It is not the "ancillas
removed" design of the paper, for which no code exists.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from qiskit import QuantumCircuit
from qiskit.circuit import ControlledGate, Parameter
from qiskit.quantum_info import SparsePauliOp

from circuits.spec import CircuitSpec

__all__ = ["Branch", "branch_circuits", "all_patterns", "branch_parameter_values", "check_eliminable"]


@dataclass(frozen=True, eq=False)
class Branch:
    """One on/off pattern of the ancillas and its n-qubit circuit.

    Attributes:
        pattern: Control bit per ancilla, in ``spec.ancilla_qubits`` order.
        circuit: The circuit on the data qubits only (wire j = ``spec.data_qubits[j]``).
        observables: The spec's observables restricted to the data qubits.
        index: For each ``circuit.parameters`` entry, its position in the spec order ``inputs + weights``.
    """

    pattern: tuple[int, ...]
    circuit: QuantumCircuit
    observables: tuple[SparsePauliOp, ...]
    index: tuple[int, ...]


def check_eliminable(spec: CircuitSpec) -> None:
    """Check the identity's preconditions: every ancilla gets one H first, then acts only as a control.

    Raises:
        ValueError: If the spec has no ancillas, an ancilla is touched by anything but a leading H and controls, or an
            observable acts on an ancilla.
    """
    anc = set(spec.ancilla_qubits)
    if not anc:
        raise ValueError(f"{spec.name}: no ancillas to eliminate")
    seen_h: set[int] = set()
    for inst in spec.circuit.data:
        qs = [spec.circuit.find_bit(q).index for q in inst.qubits]
        touched = anc.intersection(qs)
        if not touched:
            continue
        op = inst.operation
        if op.name == "h" and len(qs) == 1 and qs[0] not in seen_h:
            seen_h.add(qs[0])
            continue
        ok = isinstance(op, ControlledGate) and op.num_ctrl_qubits == 1 and qs[0] in anc and qs[1] not in anc
        if not ok or qs[0] not in seen_h:
            raise ValueError(f"{spec.name}: ancilla use {op.name} on {qs} is not a control of a |+> ancilla")
    for obs in spec.observables:
        for pauli in obs.paulis:
            if any(pauli.z[q] or pauli.x[q] for q in anc):
                raise ValueError(f"{spec.name}: an observable acts on an ancilla; it cannot be eliminated")


def all_patterns(num_ancillas: int) -> list[tuple[int, ...]]:
    """All ``2**num_ancillas`` on/off patterns, ``(0,...,0)`` first."""
    return [tuple(int(b) for b in bits) for bits in itertools.product((0, 1), repeat=num_ancillas)]


def branch_circuits(spec: CircuitSpec, pattern: tuple[int, ...]) -> Branch:
    """Build the n-qubit circuit of one on/off ``pattern`` (one bit per ancilla).

    Raises:
        ValueError: If the spec does not satisfy :func:`check_eliminable` or the pattern has the wrong length.
    """
    check_eliminable(spec)
    if len(pattern) != len(spec.ancilla_qubits):
        raise ValueError(f"{spec.name}: pattern of length {len(pattern)}, spec has {len(spec.ancilla_qubits)} ancillas")
    bit = dict(zip(spec.ancilla_qubits, pattern))
    wire = {q: j for j, q in enumerate(spec.data_qubits)}
    qc = QuantumCircuit(len(spec.data_qubits), name=f"{spec.circuit.name}_b{''.join(map(str, pattern))}")
    for inst in spec.circuit.data:
        qs = [spec.circuit.find_bit(q).index for q in inst.qubits]
        if qs[0] in bit:
            if len(qs) == 1:  # the ancilla's H: gone with the ancilla
                continue
            if bit[qs[0]]:  # control on: the plain gate on the target
                qc.append(inst.operation.base_gate, [wire[qs[1]]])
            continue
        qc.append(inst.operation, [wire[q] for q in qs])
    drop = list(spec.ancilla_qubits)
    # data qubits keep their relative order (builders put them first), so deleting the ancilla columns maps wire
    # spec.data_qubits[j] -> j, as in the circuit above
    if list(spec.data_qubits) != sorted(spec.data_qubits):
        raise ValueError(f"{spec.name}: data qubits must be in increasing wire order")
    observables = tuple(SparsePauliOp(obs.paulis.delete(drop, qubit=True), obs.coeffs) for obs in spec.observables)
    position: dict[Parameter, int] = {p: i for i, p in enumerate(spec.input_params + spec.weight_params)}
    return Branch(tuple(pattern), qc, observables, tuple(position[p] for p in qc.parameters))


def branch_parameter_values(branch: Branch, inputs: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Parameter values for ``branch.circuit`` in its ``circuit.parameters`` order.

    Args:
        branch: The branch.
        inputs: ``(B, n_in)``.
        weights: ``(n_w,)``.

    Returns:
        ``(B, branch.circuit.num_parameters)``.
    """
    inputs = np.asarray(inputs, dtype=float)
    full = np.concatenate([inputs, np.broadcast_to(np.asarray(weights, float), (inputs.shape[0], len(weights)))], 1)
    return full[:, list(branch.index)]
