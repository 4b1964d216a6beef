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
import torch
from qiskit.circuit import Gate, ParameterExpression
from qiskit.circuit.library import get_standard_gate_name_mapping

from circuits.spec import CircuitSpec
from qldm.quantum.angles import angle_function

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
    freqs = np.array(list(itertools.product(_FREQS, repeat=num_params)), dtype=np.int64).reshape(-1, num_params)
    basis = TrigBasis(freqs=freqs[keep], coeffs=flat[keep])
    probe = tuple(np.random.default_rng(7).uniform(-3, 3, num_params))
    fitted = np.einsum("t,tij->ij", np.exp(1j * basis.freqs @ np.asarray(probe) / 2), basis.coeffs)
    if not np.allclose(fitted, matrix(probe), atol=1e-10):
        raise UnsupportedInstructionError(f"gate {gate_name!r} is not a trigonometric polynomial the executor handles")
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
            return torch.as_tensor(self.matrix, dtype=cdtype, device=angles.device if angles is not None else None)
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
                raise UnsupportedInstructionError(f"{spec.name}: gate {op.name!r} has no matrix: {err}") from err
            continue
        basis = trig_basis(op.name, len(op.params))
        slots = tuple(range(len(exprs), len(exprs) + len(op.params)))
        exprs.extend(op.params)
        ops.append(GateOp(op.name, qubits, basis=basis, slots=slots))
    inputs = set(spec.input_params)
    token_dependent = tuple(
        isinstance(e, ParameterExpression) and any(p in inputs for p in e.parameters) for e in exprs
    )
    return CompiledSpec(spec, circuit.num_qubits, tuple(ops), angle_function(exprs, spec), len(exprs), token_dependent)


def apply_gate(state: torch.Tensor, matrix: torch.Tensor, qubits: tuple[int, ...], num_wires: int) -> torch.Tensor:
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
    axes = [1 + num_wires - 1 - q for q in reversed(qubits)]  # tensor axis of each qubit, most significant first
    psi = state.reshape((b,) + (2,) * num_wires)
    rest = [a for a in range(1, num_wires + 1) if a not in axes]
    psi = psi.permute([0] + rest + axes).reshape(b, -1, 2**k)  # (B, R, d)
    if matrix.dim() == 2:
        psi = psi @ matrix.T  # (B, R, d)
    else:
        psi = psi @ matrix.transpose(1, 2)  # (B, R, d)
    inverse = np.argsort([0] + rest + axes)
    return psi.reshape((b,) + (2,) * num_wires).permute(*inverse.tolist()).reshape(b, -1)
