"""Batched exact simulation of many random circuits that share one skeleton, for gradient-variance studies.

The random circuits of :func:`circuits.bp_circuit` differ between seeds only in *which* rotation axis each gate uses;
the wires every instruction touches are the same. Compiling each seed separately (``qldm.quantum.compile_spec``
lambdifies every angle through sympy) would dominate the study, and running them one at a time wastes the batch
dimension. :class:`SkeletonBatch` walks the instructions of all specs in lock-step and applies, per instruction, a
``(B, d, d)`` stack of per-sample matrices built from qldm's own fitted gate bases
(:func:`qldm.quantum.compile.trig_basis`, fitted from Qiskit's ``to_matrix``, evaluated by
:func:`qldm.quantum.compile.trig_matrix`) with :func:`apply_gate` and qldm's ``PauliReadout``. Each sample's circuit
is therefore exactly the Qiskit circuit of its spec. Exact derivatives come from the four-term shift rule of
:mod:`qldm.quantum.shift`.

Branch mode uses the control-only-ancilla identity (docs/quantum-facts.md, checked by
:func:`hardware.ancilla.check_eliminable`): with ancillas in ``|+>`` used only as controls, ``<O>`` is the average over
on/off patterns of an n-qubit circuit in which a controlled gate acts (as its target block) only when its control bit
is on. Sampling K patterns per circuit gives unbiased estimates at the cost of a ``2**n`` state.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from qiskit.circuit import Gate, Parameter
from qiskit.quantum_info import SparsePauliOp

from circuits.spec import CircuitSpec
from qldm.quantum.compile import trig_basis, trig_matrix
from qldm.quantum.statevector.readout import PauliReadout

__all__ = ["SkeletonBatch", "apply_gate"]


def apply_gate(state: torch.Tensor, matrix: torch.Tensor, qubits: tuple[int, ...], num_wires: int) -> torch.Tensor:
    """Apply a k-qubit gate to a batch of statevectors.

    Args:
        state: ``(B, 2**num_wires)`` complex, Qiskit little-endian (qubit q is bit q of the index).
        matrix: ``(d, d)`` or ``(B, d, d)``, ``d = 2**k``, in Qiskit's qarg order (``qubits[0]`` least significant).
        qubits: The k target wires.
        num_wires: Total wires.

    Returns:
        The new state, ``(B, 2**num_wires)``.
    """
    b, k = state.shape[0], len(qubits)
    axes = [1 + num_wires - 1 - q for q in reversed(qubits)]  # tensor axis of each qubit, most significant first
    psi = state.reshape((b,) + (2,) * num_wires)
    rest = [a for a in range(1, num_wires + 1) if a not in axes]
    psi = psi.permute([0] + rest + axes).reshape(b, -1, 2**k)  # (B, R, d)
    psi = psi @ (matrix.T if matrix.dim() == 2 else matrix.transpose(1, 2))  # (B, R, d)
    inverse = np.argsort([0] + rest + axes)
    return psi.reshape((b,) + (2,) * num_wires).permute(*inverse.tolist()).reshape(b, -1)


@dataclass(frozen=True)
class _Step:
    qubits: tuple[int, ...]
    const: np.ndarray | None  # (d, d) when the instruction is the same constant gate in every sample
    bases: tuple | None  # per sample: (freqs (T,1), coeffs (T,d,d)); None for constant steps
    slot: int  # weight index of the angle (-1 for constant steps)
    control: int  # ancilla bit index controlling this gate in branch mode (-1: none)


class SkeletonBatch:
    """``B`` circuits with a shared skeleton, simulated together: ``angles (B, P) -> <O> (B,)``.

    Args:
        specs: Specs with no inputs, one observable, identical instruction wires and bare-parameter gate angles.
        branch: Simulate only the data qubits per on/off ancilla pattern (see module doc) instead of all wires.
        repeat: Rows per spec (sample-major), e.g. one per sampled branch; ``batch = len(specs) * repeat``.

    Raises:
        ValueError: If the specs differ in skeleton, use parameter expressions, have inputs or several
            observables, or (branch mode) violate the ancilla-elimination preconditions.
    """

    def __init__(self, specs: Sequence[CircuitSpec], *, branch: bool = False, repeat: int = 1) -> None:
        if not specs:
            raise ValueError("SkeletonBatch needs at least one spec")
        first = specs[0]
        for s in specs:
            if s.num_inputs or s.num_outputs != 1:
                raise ValueError(f"{s.name}: SkeletonBatch needs specs without inputs and with one observable")
            if len(s.circuit.data) != len(first.circuit.data) or s.num_qubits != first.num_qubits:
                raise ValueError(f"{s.name}: skeleton differs from {first.name}")
        if branch:
            from hardware.ancilla import check_eliminable

            for s in specs:
                check_eliminable(s)
        self.specs, self.branch, self.repeat, self.batch = (
            tuple(specs),
            branch,
            int(repeat),
            len(specs) * int(repeat),
        )
        anc = {q: j for j, q in enumerate(first.ancilla_qubits)}
        self.num_ancillas = len(anc)
        self.num_wires = len(first.data_qubits) if branch else first.num_qubits
        self.num_weights = first.num_weights
        slot_of = [{p: i for i, p in enumerate(s.weight_params)} for s in specs]
        wire_of = [{q: i for i, q in enumerate(s.circuit.qubits)} for s in specs]
        steps: list[_Step] = []
        for pos, inst0 in enumerate(first.circuit.data):
            qubits = tuple(wire_of[0][q] for q in inst0.qubits)
            insts = [s.circuit.data[pos] for s in specs]
            for s, inst, wires in zip(specs, insts, wire_of):
                if tuple(wires[q] for q in inst.qubits) != qubits:
                    raise ValueError(f"{s.name}: instruction {pos} acts on other wires than in {first.name}")
            ops = [inst.operation for inst in insts]
            if not all(isinstance(op, Gate) for op in ops):
                raise ValueError(f"{first.name}: instruction {pos} is not a unitary gate")
            control = anc.get(qubits[0], -1) if len(qubits) == 2 else -1
            if branch and len(qubits) == 1 and qubits[0] in anc:
                continue  # the ancilla's H disappears with the ancilla
            if not ops[0].params:
                if any(op.name != ops[0].name or op.params for op in ops):
                    raise ValueError(f"{first.name}: constant instruction {pos} differs between specs")
                steps.append(_Step(qubits, np.asarray(ops[0].to_matrix(), dtype=complex), None, -1, -1))
                continue
            slots = set()
            for k, op in enumerate(ops):
                if len(op.params) != 1 or not isinstance(op.params[0], Parameter):
                    raise ValueError(f"{specs[k].name}: instruction {pos} must have one bare parameter angle")
                slots.add(slot_of[k][op.params[0]])
            if len(slots) != 1:
                raise ValueError(f"{first.name}: instruction {pos} uses different weights in different specs")
            bases = []
            for op in ops:
                b = trig_basis(op.name, 1)
                if np.ptp(b.freqs) > 2:
                    raise ValueError(f"gate {op.name!r}: frequencies beyond the shift rule's range")
                coeffs = b.coeffs
                if branch and control >= 0:
                    coeffs = coeffs[:, [1, 3]][:, :, [1, 3]]  # control bit (qarg 0, least significant) on
                bases.append((b.freqs, coeffs))
            steps.append(_Step(qubits, None, tuple(bases), slots.pop(), control if branch else -1))
        self.steps = tuple(steps)
        obs = first.observables[0]
        if branch:
            obs = SparsePauliOp(obs.paulis.delete(list(first.ancilla_qubits), qubit=True), obs.coeffs)
        self.readout = PauliReadout((obs,), self.num_wires)
        self._dense = [self._stack(st, self.repeat) for st in steps]

    @staticmethod
    def _stack(step: _Step, repeat: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Pad per-sample bases to one ``(B, T, 1)`` freq / ``(B, T, d, d)`` coeff array (zero coeffs pad)."""
        if step.bases is None:
            return None
        t = max(len(f) for f, _ in step.bases)
        d = step.bases[0][1].shape[-1]
        freqs = np.zeros((len(step.bases), t), dtype=float)
        coeffs = np.zeros((len(step.bases), t, d, d), dtype=complex)
        for b, (f, c) in enumerate(step.bases):
            freqs[b, : len(f)], coeffs[b, : len(f)] = f[:, 0], c
        # per-row bases: freqs (B, T, 1) for the one angle, coeffs (B, T, d, d)
        return torch.as_tensor(np.repeat(freqs, repeat, 0))[..., None], torch.as_tensor(np.repeat(coeffs, repeat, 0))

    def state_memory(self, batch: int | None = None) -> int:
        """Bytes of one batch of complex128 states (autograd keeps about one per step)."""
        return (batch or self.batch) * (2**self.num_wires) * 16

    def expectation(self, angles: torch.Tensor, patterns: torch.Tensor | None = None) -> torch.Tensor:
        """Evaluate ``<O>`` per sample.

        Args:
            angles: ``(B, P)`` float64 weights, row b for spec b (differentiable).
            patterns: Branch mode only: ``(B, num_ancillas)`` 0/1 control bits.

        Returns:
            ``(B,)`` expectation values.

        Raises:
            ValueError: On wrong shapes or a missing/extra ``patterns`` argument.
        """
        if angles.shape != (self.batch, self.num_weights):
            raise ValueError(f"angles must have shape ({self.batch}, {self.num_weights}), got {tuple(angles.shape)}")
        if self.branch != (patterns is not None):
            raise ValueError("patterns are required in branch mode and only there")
        cdtype = torch.complex128
        state = torch.zeros(self.batch, 2**self.num_wires, dtype=cdtype)  # (B, 2**N)
        state[:, 0] = 1
        for step, dense in zip(self.steps, self._dense):
            if dense is None:
                mat = torch.tensor(step.const, dtype=cdtype)  # (d, d)
            else:
                mat = trig_matrix(angles[:, step.slot : step.slot + 1], dense[0], dense[1], cdtype)  # (B, d, d)
            qubits = step.qubits
            if step.control >= 0:
                on = patterns[:, step.control].to(cdtype).view(-1, 1, 1)  # (B, 1, 1)
                eye = torch.eye(2, dtype=cdtype)
                mat = on * mat + (1 - on) * eye  # (B, 2, 2): target block if the control bit is on, else identity
                qubits = qubits[1:]
            state = apply_gate(state, mat, qubits, self.num_wires)  # (B, 2**N)
        return self.readout(state)[:, 0]  # (B,)
