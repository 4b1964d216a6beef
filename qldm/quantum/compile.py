"""Compile a spec's Qiskit instructions into torch-evaluable gate matrices and angle functions.

Nothing here re-describes a gate by hand. A parametrized gate's matrix is fitted, once per gate class, from Qiskit's
own ``Gate.to_matrix()``: every standard rotation, phase and controlled-rotation gate has matrix entries that are
trigonometric polynomials of degree <= 2 in each half-angle, so sampling 5 points per parameter recovers

    M(theta) = sum_k C_k exp(i k . theta / 2),   k in {-2..2}^p,

exactly (a discrete Fourier transform), and the fit is verified at a random point.

Gate angles may be parameter expressions (``atan(x[i])``, linear combinations after transpilation). Most angles are a
bare parameter (a weight, or an input); they become one index gather. The rest are lambdified to torch with sympy
over *their own* parameters only, and identical expressions share one compiled function, so compile time stays linear
in the circuit size.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import sympy
import torch
from qiskit.circuit import Gate, Parameter, ParameterExpression
from qiskit.circuit.library import get_standard_gate_name_mapping

from circuits.spec import CircuitSpec

__all__ = [
    "UnsupportedInstructionError",
    "GateOp",
    "CompiledSpec",
    "compile_spec",
    "angle_function",
    "trig_basis",
    "trig_matrix",
    "TrigBasis",
]

_TORCH_FUNCS: dict[str, Callable | float] = {
    "atan": torch.atan, "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "exp": torch.exp,
    "log": torch.log, "sqrt": torch.sqrt, "asin": torch.asin, "acos": torch.acos, "Abs": torch.abs,
    "sign": torch.sign, "pi": float(np.pi), "E": float(np.e),
}  # fmt: skip


def _bare_parameter(expr: ParameterExpression) -> Parameter | None:
    params = expr.parameters
    if len(params) != 1:
        return None
    (p,) = params
    return p if expr == p else None


def angle_function(
    exprs: Sequence[ParameterExpression | float], spec: CircuitSpec
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Compile gate-angle expressions into ``f(inputs (B, n_in), weights (n_w,)) -> (B, len(exprs))``.

    Args:
        exprs: One entry per gate parameter: a ``ParameterExpression`` over the spec's parameters, or a float.
        spec: The spec whose ``input_params`` and ``weight_params`` define the argument order.

    Raises:
        ValueError: If an expression uses a parameter the spec does not declare.
    """
    params = list(spec.input_params) + list(spec.weight_params)
    position = {p: i for i, p in enumerate(params)}
    gather: list[int] = []  # column j of the output -> index into [inputs, weights, computed...]
    computed: list[tuple[Callable, list[int]]] = []
    cache: dict[str, int] = {}
    constants: list[float] = []
    for e in exprs:
        if not isinstance(e, ParameterExpression):
            constants.append(float(e))
            gather.append(-len(constants))  # negative: a constant
            continue
        unknown = [p.name for p in e.parameters if p not in position]
        if unknown:
            raise ValueError(f"{spec.name}: angle {e} uses undeclared parameter(s) {unknown}")
        bare = _bare_parameter(e)
        if bare is not None:
            gather.append(position[bare])
            continue
        key = str(e)
        if key not in cache:
            own = sorted(e.parameters, key=lambda p: position[p])
            symbols = [sympy.Symbol(f"a{i}") for i in range(len(own))]
            sym = e.sympify().subs({sympy.Symbol(p.name): s for p, s in zip(own, symbols)})
            fn = sympy.lambdify(symbols, sym, modules=[_TORCH_FUNCS, "math"])
            computed.append((fn, [position[p] for p in own]))
            cache[key] = len(params) + len(computed) - 1
        gather.append(cache[key])
    n_in = spec.num_inputs
    index = torch.tensor([g if g >= 0 else 0 for g in gather], dtype=torch.long)
    is_const = torch.tensor([g < 0 for g in gather])
    const_vals = torch.tensor([constants[-g - 1] if g < 0 else 0.0 for g in gather], dtype=torch.float64)

    def angle_fn(inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        b = inputs.shape[0]
        base = [inputs[:, :n_in], weights.reshape(1, -1).expand(b, -1)]  # (B, n_in), (B, n_w)
        cols = torch.cat(base, dim=1)  # (B, P)
        if computed:
            extra = []
            for fn, idx in computed:
                v = fn(*[cols[:, i] for i in idx])
                extra.append(v if torch.is_tensor(v) else torch.full((b,), float(v), dtype=cols.dtype))
            cols = torch.cat([cols, torch.stack(extra, dim=1)], dim=1)  # (B, P + C)
        if not gather:
            return inputs.new_zeros((b, 0))
        out = cols[:, index.to(cols.device)]  # (B, A)
        if bool(is_const.any()):
            out = torch.where(is_const.to(cols.device), const_vals.to(cols), out)
        return out

    return angle_fn


_SKIP = {"barrier", "delay"}
_FREQS = np.arange(-2, 3)  # k in exp(i k theta / 2)


class UnsupportedInstructionError(ValueError):
    """A circuit holds an instruction the torch executors cannot compile (measurement, reset, unknown gate...)."""


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
    """One compiled instruction: its qubits (Qiskit qarg order) and either a constant matrix or a basis + slots."""

    name: str
    qubits: tuple[int, ...]
    matrix: np.ndarray | None = None  # constant (d, d)
    basis: TrigBasis | None = None
    slots: tuple[int, ...] = ()  # indices into the angle vector, one per gate parameter

    def torch_matrix(self, angles: torch.Tensor | None, cdtype: torch.dtype) -> torch.Tensor:
        """Return ``(d, d)`` for a constant gate, else ``(B, d, d)`` from ``angles`` of shape ``(B, n_angles)``."""
        if self.basis is None:
            return torch.as_tensor(self.matrix, dtype=cdtype, device=angles.device if angles is not None else None)
        return trig_matrix(angles[:, list(self.slots)], self.basis.freqs, self.basis.coeffs, cdtype)


def trig_matrix(
    theta: torch.Tensor, freqs: np.ndarray | torch.Tensor, coeffs: np.ndarray | torch.Tensor, cdtype: torch.dtype
) -> torch.Tensor:
    """Gate matrices from fitted coefficients: ``M(theta) = sum_t coeffs[t] exp(i freqs[t] . theta / 2)``.

    The one place a :class:`TrigBasis` (or a slice of it) becomes matrices, differentiable in ``theta``.

    Args:
        theta: ``(R, p)`` real gate angles, one row per matrix.
        freqs: ``(T, p)`` half-angle frequencies shared by all rows, or ``(R, T, p)`` per row.
        coeffs: ``(T, d, d)`` complex coefficients shared by all rows, or ``(R, T, d, d)`` per row.
        cdtype: Complex dtype of the result.

    Returns:
        ``(R, d, d)`` matrices.
    """
    k = torch.as_tensor(freqs, dtype=theta.dtype, device=theta.device)
    arg = theta @ k.T if k.dim() == 2 else torch.einsum("rp,rtp->rt", theta, k)  # (R, T)
    phase = torch.polar(torch.ones_like(arg), arg / 2).to(cdtype)  # (R, T)
    c = torch.as_tensor(coeffs, dtype=cdtype, device=theta.device)
    return torch.einsum("rt,tij->rij" if c.dim() == 3 else "rt,rtij->rij", phase, c)


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
                f"{spec.name}: instruction {op.name!r} on qubits {qubits} cannot be compiled to a torch executor "
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
