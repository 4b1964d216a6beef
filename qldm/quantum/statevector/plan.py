"""Execution plans: compiled ops regrouped for fast statevector simulation.

A plan regroups the compiled ops: single-wire gates before any multi-wire gate on their wire fold into a product
state; constant permutation-with-phase gates (X, CX, SWAP, CZ, S, T...) compose into one index gather; every
other gate is split into control wires and a target block, and gates with the same targets and controls that
commute past everything in between fuse into one per-token matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from qldm.quantum.compile import CompiledSpec, GateOp, trig_matrix


@dataclass(frozen=True)
class BlockGate:
    """A gate as ``matrix`` on ``targets``, acting only where every control wire and every mask bit is 1.

    ``mask`` lists pattern columns: the ancilla-branch executor replaces an ancilla control by a sampled bit.
    """

    targets: tuple[int, ...]  # plan wires, block-matrix qarg order (targets[0] is the least significant bit)
    controls: tuple[int, ...]  # plan wires
    coeffs: np.ndarray  # (T, d, d) trig-basis coefficients, or (1, d, d) constant matrix
    freqs: np.ndarray | None  # (T, p) half-angle frequencies; None for a constant gate
    slots: tuple[int, ...] = ()
    token_dependent: bool = False
    mask: tuple[int, ...] = ()

    def matrix(self, angles: torch.Tensor, bits: torch.Tensor | None, cdtype: torch.dtype) -> torch.Tensor:
        """``(R, d, d)`` per row, or ``(1, d, d)`` when the gate is the same for every row."""
        dev = angles.device
        if self.freqs is None:
            m = torch.as_tensor(self.coeffs[:1], dtype=cdtype, device=dev)  # (1, d, d)
        else:
            theta = angles[:, list(self.slots)] if self.token_dependent else angles[:1, list(self.slots)]  # (R|1, p)
            m = trig_matrix(theta, self.freqs, self.coeffs, cdtype)  # (R|1, d, d)
        if self.mask:
            on = bits[:, list(self.mask)].all(dim=1)[:, None, None]  # (R, 1, 1)
            m = torch.where(on, m, torch.eye(m.shape[-1], dtype=cdtype, device=dev))  # (R, d, d)
        return m


@dataclass(frozen=True)
class MatStep:
    """Fused gates on the same targets and controls, applied as one matrix (last gate leftmost)."""

    targets: tuple[int, ...]
    controls: tuple[int, ...]
    gates: tuple[BlockGate, ...]

    @property
    def wires(self) -> frozenset[int]:
        return frozenset(self.targets + self.controls)


@dataclass(frozen=True)
class PermStep:
    """A constant monomial unitary: ``psi'[j] = phase[j] * psi[index[j]]`` (``phase`` None means all ones)."""

    wires: frozenset[int]
    index: np.ndarray
    phase: np.ndarray | None


@dataclass(frozen=True)
class CircuitPlan:
    """Prefix product state plus a list of steps on ``num_wires`` plan wires."""

    num_wires: int
    prefix: tuple[tuple[BlockGate, ...], ...]  # per plan wire, applied to |0> in order
    steps: tuple[MatStep | PermStep, ...]

    def matrices(
        self, angles: torch.Tensor, bits: torch.Tensor | None, cdtype: torch.dtype
    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """Evaluate (with autograd) the prefix single-wire states and the fused step matrices.

        Returns:
            ``prefix`` of shape ``(R|1, N, 2)`` and one ``(R|1, d, d)`` tensor per step (None for permutations).
        """
        e0 = torch.tensor([[1.0, 0.0]], dtype=cdtype, device=angles.device)  # (1, 2)
        states = []
        for gates in self.prefix:
            s = e0
            for g in gates:
                s = (g.matrix(angles, bits, cdtype) @ s[..., None])[..., 0]  # (R|1, 2)
            states.append(s)
        prefix = torch.stack(torch.broadcast_tensors(*states), dim=1)  # (R|1, N, 2)
        mats: list[torch.Tensor | None] = []
        for step in self.steps:
            if isinstance(step, PermStep):
                mats.append(None)
                continue
            m = step.gates[0].matrix(angles, bits, cdtype)
            for g in step.gates[1:]:
                m = g.matrix(angles, bits, cdtype) @ m  # (R|1, d, d)
            mats.append(m)
        return prefix, mats


def _is_monomial(m: np.ndarray) -> bool:
    nz = np.abs(m) > 1e-12
    return bool((nz.sum(0) == 1).all() and (nz.sum(1) == 1).all() and np.allclose(np.abs(m[nz]), 1.0))


def _perm_arrays(m: np.ndarray, wires: tuple[int, ...], num_wires: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-state gather index and phase of a monomial gate ``m`` on ``wires`` (qarg order)."""
    j = np.arange(2**num_wires)
    row = sum(((j >> w) & 1) << b for b, w in enumerate(wires))  # local output index of each j
    col = np.argmax(np.abs(m) > 0.5, axis=1)[row]  # its unique source column
    mask = sum(1 << w for w in wires)
    index = (j & ~mask) | sum(((col >> b) & 1) << w for b, w in enumerate(wires))
    return index, m[row, col]


def _split_controls(op: GateOp, prefer: set[int]) -> tuple[tuple[int, ...], tuple[int, ...], np.ndarray]:
    """Peel off qubits on which ``op`` is block-diag(I, U); returns (controls, targets, coefficients of U)."""
    coeffs = op.basis.coeffs if op.basis is not None else op.matrix[None]  # (T, d, d)
    freqs = op.basis.freqs if op.basis is not None else np.zeros((1, 0), dtype=np.int64)
    constant = np.all(freqs == 0, axis=1)  # (T,) the theta-independent term
    qubits, controls = list(op.qubits), []
    found = True
    while found and len(qubits) > 1:
        found = False
        for p in sorted(range(len(qubits)), key=lambda p: qubits[p] not in prefer):
            idx = np.arange(coeffs.shape[-1])
            off, on = idx[(idx >> p) & 1 == 0], idx[(idx >> p) & 1 == 1]
            want = np.zeros((len(coeffs), len(off), len(off)), dtype=complex)
            want[constant] = np.eye(len(off))
            if (
                np.allclose(coeffs[:, off][:, :, off], want, atol=1e-10)
                and np.allclose(coeffs[:, off][:, :, on], 0, atol=1e-10)
                and np.allclose(coeffs[:, on][:, :, off], 0, atol=1e-10)
            ):
                controls.append(qubits.pop(p))
                coeffs = coeffs[:, on][:, :, on]
                found = True
                break
    return tuple(controls), tuple(qubits), coeffs


def build_plan(
    compiled: CompiledSpec,
    *,
    wires: tuple[int, ...] | None = None,
    ancilla_masks: dict[int, int] | None = None,
    skip: frozenset[int] = frozenset(),
) -> CircuitPlan:
    """Regroup ``compiled.ops`` into a :class:`CircuitPlan`.

    Args:
        compiled: The compiled spec.
        wires: Circuit wires simulated, in plan order (default: all).
        ancilla_masks: Circuit wires that are dropped and replaced by pattern bits (column index), for the
            ancilla-branch executor; such a wire may only ever act as a control.
        skip: Indices of ``compiled.ops`` to leave out (the ancillas' initial Hadamards).

    Raises:
        ValueError: If a gate touches a wire that is neither simulated nor a dropped control.
    """
    masks = dict(ancilla_masks or {})
    wires = tuple(range(compiled.num_wires)) if wires is None else tuple(wires)
    plan_index = {w: i for i, w in enumerate(wires)}
    n = len(wires)
    prefix: list[list[BlockGate]] = [[] for _ in range(n)]
    steps: list[MatStep | PermStep] = []
    touched: set[int] = set()
    for i, op in enumerate(compiled.ops):
        if i in skip or not op.qubits:
            continue  # a global phase does not change expectation values
        on_masked = any(q in masks for q in op.qubits)
        if op.basis is None and not on_masked and _is_monomial(op.matrix) and len(op.qubits) > 1:
            qs = tuple(plan_index[q] for q in op.qubits)
            index, phase = _perm_arrays(op.matrix, qs, n)
            _add_perm(steps, frozenset(qs), index, phase)
            touched.update(qs)
            continue
        controls, targets, coeffs = _split_controls(op, set(masks))
        bad = [q for q in targets if q not in plan_index] + [q for q in controls if q not in plan_index | masks]
        if bad:
            raise ValueError(
                f"{compiled.spec.name}: gate {op.name!r} on {op.qubits} acts on wire(s) {bad} other than as a "
                "control, but they are not simulated"
            )
        freqs = None if op.basis is None else op.basis.freqs
        if freqs is not None:
            keep = np.abs(coeffs).max(axis=(1, 2)) > 1e-12
            coeffs, freqs = coeffs[keep], freqs[keep]
        gate = BlockGate(
            targets=tuple(plan_index[q] for q in targets),
            controls=tuple(plan_index[q] for q in controls if q not in masks),
            coeffs=coeffs,
            freqs=freqs,
            slots=op.slots,
            token_dependent=any(compiled.token_dependent[s] for s in op.slots),
            mask=tuple(masks[q] for q in controls if q in masks),
        )
        span = set(gate.targets) | set(gate.controls)
        if len(span) == 1 and not span & touched:
            prefix[gate.targets[0]].append(gate)
            continue
        touched.update(span)
        _add_mat(steps, gate)
    return CircuitPlan(n, tuple(tuple(p) for p in prefix), tuple(steps))


def _add_perm(steps: list, wires: frozenset[int], index: np.ndarray, phase: np.ndarray) -> None:
    for k in range(len(steps) - 1, -1, -1):
        s = steps[k]
        if isinstance(s, PermStep):  # compose: new gather after the old one
            ph = phase * (s.phase[index] if s.phase is not None else 1.0)
            steps[k] = PermStep(s.wires | wires, s.index[index], None if np.allclose(ph, 1) else ph)
            return
        if s.wires & wires:
            break
    steps.append(PermStep(wires, index, None if np.allclose(phase, 1) else phase))


def _add_mat(steps: list, gate: BlockGate) -> None:
    span = frozenset(gate.targets + gate.controls)
    for k in range(len(steps) - 1, -1, -1):
        s = steps[k]
        if isinstance(s, MatStep) and s.targets == gate.targets and set(s.controls) == set(gate.controls):
            steps[k] = MatStep(s.targets, s.controls, s.gates + (gate,))
            return
        if s.wires & span:
            break
    steps.append(MatStep(gate.targets, gate.controls, (gate,)))
