"""Compile a spec's Qiskit instructions into torch-evaluable gate matrices and angle functions.

Nothing here re-describes a gate by hand. A parametrized gate's matrix is fitted, once per gate class, from
Qiskit's
own ``Gate.to_matrix()``: every standard rotation, phase and controlled-rotation gate has matrix entries
that are
trigonometric polynomials of degree <= 2 in each half-angle, so sampling 5 points per parameter recovers

    M(theta) = sum_k C_k exp(i k . theta / 2),   k in {-2..2}^p,

exactly (a discrete Fourier transform), and the fit is verified at a random point. Gate angles may be
parameter
expressions (``atan(x[i])``, linear combinations after transpilation); they are lambdified to torch via sympy.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy
import torch
from qiskit.circuit import Gate, ParameterExpression
from qiskit.circuit.library import get_standard_gate_name_mapping

from circuits.spec import CircuitSpec

__all__ = [
    "UnsupportedInstructionError",
    "GateOp",
    "CompiledSpec",
    "compile_spec",
    "apply_gate",
    "trig_basis",
    "TrigBasis",
]

_SKIP = {"barrier", "delay"}
_FREQS = np.arange(-2, 3)  # k in exp(i k theta / 2)


class UnsupportedInstructionError(ValueError):
    """A circuit holds an instruction the torch executors cannot compile (measurement, reset, unknown
    gate...)."""


@dataclass(frozen=True)
class TrigBasis:
    """``M(theta) = sum_t coeffs[t] * exp(i * (freqs[t] . theta) / 2)`` for one gate class."""

    freqs: np.ndarray  # (T, p) integer half-angle frequencies
    coeffs: np.ndarray  # (T, d, d) complex


@functools.cache
def trig_basis(gate_name: str, num_params: int) -> TrigBasis:
    """Fit (and verify) the trigonometric basis of a standard Qiskit gate from its own ``to_matrix``.

    Raises:
        UnsupportedInstructionError: If the gate is unknown to Qiskit's standard library or is not a degree-2
            trigonometric polynomial in its half-angles.
    """
    mapping = get_standard_gate_name_mapping()
    if gate_name not in mapping:
        raise UnsupportedInstructionError(f"gate {gate_name!r} is not a standard Qiskit gate")
    cls = type(mapping[gate_name])

    def matrix(angles: tuple[float, ...]) -> np.ndarray:
        return np.asarray(cls(*angles).to_matrix(), dtype=complex)

    grid = 4 * np.pi * np.arange(5) / 5  # samples of theta over one period of exp(i theta / 2)
    samples = np.stack([matrix(a) for a in itertools.product(grid, repeat=num_params)])
    d = samples.shape[-1]
    samples = samples.reshape((5,) * num_params + (d, d))
    # DFT over each parameter axis: c_k = mean_j M(theta_j) exp(-i k theta_j / 2)
    coef = samples
    for axis in range(num_params):
        kernel = np.exp(-1j * np.outer(_FREQS, grid) / 2) / 5  # (5 freqs, 5 samples)
        coef = np.moveaxis(np.tensordot(kernel, coef, axes=([1], [axis])), 0, axis)
    flat = coef.reshape(-1, d, d)
    keep = np.abs(flat).max(axis=(1, 2)) > 1e-12
    freqs = np.array(list(itertools.product(_FREQS, repeat=num_params)), dtype=np.int64).reshape(
        -1, num_params
    )
    basis = TrigBasis(freqs=freqs[keep], coeffs=flat[keep])
    probe = tuple(np.random.default_rng(7).uniform(-3, 3, num_params))
    fitted = np.einsum("t,tij->ij", np.exp(1j * basis.freqs @ np.asarray(probe) / 2), basis.coeffs)
    if not np.allclose(fitted, matrix(probe), atol=1e-10):
        raise UnsupportedInstructionError(
            f"gate {gate_name!r} is not a trigonometric polynomial the executor handles"
        )
    return basis


@dataclass(frozen=True)
class GateOp:
    """One compiled instruction: its qubits (Qiskit qarg order) and either a constant matrix or a basis +
    slots."""

    name: str
    qubits: tuple[int, ...]
    matrix: np.ndarray | None = None  # constant (d, d)
    basis: TrigBasis | None = None
    slots: tuple[int, ...] = ()  # indices into the angle vector, one per gate parameter

    def torch_matrix(self, angles: torch.Tensor | None, cdtype: torch.dtype) -> torch.Tensor:
        """Return ``(d, d)`` for a constant gate, else ``(B, d, d)`` from ``angles`` of shape ``(B,
        n_angles)``."""
        if self.basis is None:
            return torch.as_tensor(
                self.matrix, dtype=cdtype, device=angles.device if angles is not None else None
            )
        theta = angles[:, list(self.slots)]  # (B, p)
        k = torch.as_tensor(self.basis.freqs, dtype=theta.dtype, device=theta.device)  # (T, p)
        phase = torch.polar(torch.ones((), dtype=theta.dtype, device=theta.device), theta @ k.T / 2)  # (B, T)
        c = torch.as_tensor(self.basis.coeffs, dtype=cdtype, device=theta.device)  # (T, d, d)
        return torch.einsum("bt,tij->bij", phase.to(cdtype), c)


@dataclass(frozen=True)
class CompiledSpec:
    """A spec lowered to gate ops plus the functions that map (inputs, weights) to gate angles."""

    spec: CircuitSpec
    num_wires: int
    ops: tuple[GateOp, ...]
    angle_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    num_angles: int
    token_dependent: tuple[bool, ...] = ()  # per angle: does it depend on an input parameter?

    def angles(self, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Gate angles, shape ``(B, num_angles)``, from inputs ``(B, n_in)`` and weights ``(n_w,)``."""
        return self.angle_fn(inputs, weights)


def _torch_modules() -> dict[str, Callable]:
    return {
        "atan": torch.atan, "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "exp": torch.exp,
        "log": torch.log, "sqrt": torch.sqrt, "asin": torch.asin, "acos": torch.acos, "Abs": torch.abs,
        "sign": torch.sign, "pi": float(np.pi), "E": float(np.e),
    }  # fmt: skip


def _angle_function(exprs: list[ParameterExpression | float], spec: CircuitSpec):
    """Lambdify every gate angle into one torch function of (inputs (B, n_in), weights (n_w,)) -> (B, A)."""
    params = list(spec.input_params) + list(spec.weight_params)
    symbols = [sympy.Symbol(f"p{i}") for i in range(len(params))]
    by_name = {p.name: s for p, s in zip(params, symbols)}
    fns: list[Callable] = []
    for e in exprs:
        if isinstance(e, ParameterExpression):
            sym = e.sympify().subs({sympy.Symbol(p.name): by_name[p.name] for p in e.parameters})
            fns.append(sympy.lambdify(symbols, sym, modules=[_torch_modules(), "math"]))
        else:
            fns.append(float(e))
    n_in = spec.num_inputs

    def angle_fn(inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        b = inputs.shape[0]
        args = [inputs[:, i] for i in range(n_in)] + [weights[j].expand(b) for j in range(weights.shape[-1])]
        cols = [
            f(*args) if callable(f) else torch.full((b,), f, dtype=inputs.dtype, device=inputs.device)
            for f in fns
        ]
        cols = [
            c if torch.is_tensor(c) and c.dim() == 1 else torch.as_tensor(c, dtype=inputs.dtype).expand(b)
            for c in cols
        ]
        return torch.stack(cols, dim=1) if cols else inputs.new_zeros((b, 0))

    return angle_fn


def compile_spec(spec: CircuitSpec) -> CompiledSpec:
    """Lower ``spec.circuit`` to :class:`GateOp` s.

    Raises:
        UnsupportedInstructionError: On measurements, resets, conditionals, or gates that are neither constant
            unitaries nor fitted standard rotations.
    """
    circuit = spec.circuit
    index = {q: i for i, q in enumerate(circuit.qubits)}
    ops: list[GateOp] = []
    exprs: list[ParameterExpression | float] = []
    for inst in circuit.data:
        op = inst.operation
        if op.name in _SKIP:
            continue
        qubits = tuple(index[q] for q in inst.qubits)
        if not isinstance(op, Gate) or getattr(op, "condition", None) is not None:
            raise UnsupportedInstructionError(
                f"{spec.name}: instruction {op.name!r} on qubits {qubits} cannot be compiled to a torch "
                f"executor "
                "(only unitary gates are supported)"
            )
        if not any(isinstance(p, ParameterExpression) for p in op.params):
            try:
                ops.append(GateOp(op.name, qubits, matrix=np.array(op.to_matrix(), dtype=complex)))
            except Exception as err:  # noqa: BLE001 - qiskit raises several types for gates without a matrix
                raise UnsupportedInstructionError(
                    f"{spec.name}: gate {op.name!r} has no matrix: {err}"
                ) from err
            continue
        basis = trig_basis(op.name, len(op.params))
        slots = tuple(range(len(exprs), len(exprs) + len(op.params)))
        exprs.extend(op.params)
        ops.append(GateOp(op.name, qubits, basis=basis, slots=slots))
    inputs = set(spec.input_params)
    token_dependent = tuple(
        isinstance(e, ParameterExpression) and any(p in inputs for p in e.parameters) for e in exprs
    )
    return CompiledSpec(
        spec, circuit.num_qubits, tuple(ops), _angle_function(exprs, spec), len(exprs), token_dependent
    )


def apply_gate(
    state: torch.Tensor, matrix: torch.Tensor, qubits: tuple[int, ...], num_wires: int
) -> torch.Tensor:
    """Apply a k-qubit gate to a batch of statevectors.

    Args:
        state: ``(B, 2**num_wires)`` complex, Qiskit little-endian (qubit q is bit q of the index).
        matrix: ``(d, d)`` or ``(B, d, d)``, ``d = 2**k``, in Qiskit's qarg order (``qubits[0]`` least
        significant).
        qubits: The k target wires.
        num_wires: Total wires.

    Returns:
        The new state, ``(B, 2**num_wires)``.
    """
    b, k = state.shape[0], len(qubits)
    axes = [
        1 + num_wires - 1 - q for q in reversed(qubits)
    ]  # tensor axis of each qubit, most significant first
    psi = state.reshape((b,) + (2,) * num_wires)
    rest = [a for a in range(1, num_wires + 1) if a not in axes]
    psi = psi.permute([0] + rest + axes).reshape(b, -1, 2**k)  # (B, R, d)
    if matrix.dim() == 2:
        psi = psi @ matrix.T  # (B, R, d)
    else:
        psi = psi @ matrix.transpose(1, 2)  # (B, R, d)
    inverse = np.argsort([0] + rest + axes)
    return psi.reshape((b,) + (2,) * num_wires).permute(*inverse.tolist()).reshape(b, -1)


# ---------------------------------------------------------------------------------------------- execution
# plans
# A plan regroups the compiled ops for fast simulation: single-wire gates before any multi-wire gate on
# their wire
# fold into a product state; constant permutation-with-phase gates (X, CX, SWAP, CZ, S, T...) compose into
# one index
# gather; every other gate is split into control wires and a target block, and gates with the same targets and
# controls that commute past everything in between fuse into one per-token matrix.


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
        c = torch.as_tensor(self.coeffs, dtype=cdtype, device=dev)  # (T, d, d)
        if self.freqs is None:
            m = c[:1]  # (1, d, d)
        else:
            theta = (
                angles[:, list(self.slots)] if self.token_dependent else angles[:1, list(self.slots)]
            )  # (R|1, p)
            k = torch.as_tensor(self.freqs, dtype=theta.dtype, device=dev)  # (T, p)
            phase = torch.polar(torch.ones_like(theta[:, :1]), theta @ k.T / 2)  # (R|1, T)
            m = torch.einsum("rt,tij->rij", phase.to(cdtype), c)  # (R|1, d, d)
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
            ``prefix`` of shape ``(R|1, N, 2)`` and one ``(R|1, d, d)`` tensor per step (None for
            permutations).
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
        bad = [q for q in targets if q not in plan_index] + [
            q for q in controls if q not in plan_index | masks
        ]
        if bad:
            raise ValueError(
                f"{compiled.spec.name}: gate {op.name!r} on {op.qubits} acts on wire(s) {bad} other than as "
                f"a "
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
