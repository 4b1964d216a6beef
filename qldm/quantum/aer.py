"""Qiskit Aer executor: the spec's circuit on ``qiskit_aer.primitives.EstimatorV2``, differentiable in torch.

Two execution paths share one decomposed circuit:

- ``method="pub"`` (default): one Aer ``EstimatorV2`` PUB per chunk of tokens. The circuit is decomposed to
  RX/RY/RZ + Clifford gates and every parameterized rotation gets its own gate angle ``g_k``. The angles are
  computed from (inputs, weights) in torch (so ``atan(x)`` and ``theta/2`` chain-rule through autograd). The
  forward PUB broadcasts all tokens against all observables; the backward runs the two-term parameter-shift
  rule (Mitarai et al., PRA 98, 032309; Schuld et al., PRA 99, 032331) for all gate angles in one shifted PUB.
- ``method="qnn"``: qiskit-machine-learning's ``EstimatorQNN`` with ``input_gradients=True`` and its
  ``ParamShiftEstimatorGradient``, in an autograd function that does what ``TorchConnector`` does (kept in
  float64, and taking the weights as an argument because ``QuantumLayer`` owns them). It sends one PUB per
  observable in the forward and one per (token, observable) in the backward, so it is far slower; it is the
  reference path that issue 2 asks for and cross-checks ``"pub"``.

Pitfalls of this stack, handled here and tested in ``tests/test_aer.py``:

1. Aer 0.18 reads parameterized ``crx``/``cry``/``crz``/``cp`` bound at run time as angle 0. The circuit is
   therefore transpiled to :data:`AER_SAFE_BASIS` (parameterized gates only RX/RY/RZ) before it reaches Aer.
2. ``EstimatorQNN(default_precision=0.015625)`` adds Gaussian noise to every forward pass, even on exact estimators. We
   pass ``0.0`` unless the user asks for shots/precision.
3. PUB parameter arrays bind in ``circuit.parameters`` order (sorted by name), not in spec order. The ``"pub"`` path
   binds its own ``g[k]`` vector (checked to be in index order); the ``"qnn"`` path gives ``EstimatorQNN`` the spec's
   ``input_params``/``weight_params``, which it renames ``inputs[i]`` and ``weights[j]``, so its forward takes
   ``(inputs, weights)`` in spec order.

Shots: Aer's ``EstimatorV2`` computes exact expectation values and, for ``precision > 0``, returns a draw from
``N(exact, precision)``. ``shots=S`` maps to ``precision = 1/sqrt(S)``, the worst-case standard error of a Pauli
estimate from S shots. Each call's noise seed is drawn from torch's global RNG (so gradient checkpointing, which
restores that RNG, replays the same noise), or from a private generator when ``seed`` is given.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from qiskit import QuantumCircuit, transpile
from qiskit.circuit import ParameterExpression, ParameterVector
from qiskit.circuit.library import RXGate, RYGate, RZGate
from qiskit.primitives import BaseEstimatorV2

from circuits.spec import CircuitSpec
from qldm.quantum.compile import UnsupportedInstructionError, angle_function
from qldm.quantum.executor import Executor, Program, option
from qldm.quantum.shift import PAULI_SHIFT

__all__ = ["AerExecutor", "AER_SAFE_BASIS", "aer_estimator", "decompose_for_aer", "resolve_aer_device"]

#: Target basis for Aer: the only parameterized gates are RX/RY/RZ, which Aer binds correctly at run time.
AER_SAFE_BASIS: tuple[str, ...] = (
    "rx", "ry", "rz", "cx", "cz", "h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "sxdg", "swap", "id",
)  # fmt: skip
_ROTATIONS = {"rx": RXGate, "ry": RYGate, "rz": RZGate}


def resolve_aer_device(device: Literal["auto", "CPU", "GPU"]) -> str:
    """``"auto"`` -> ``"GPU"`` when qiskit-aer-gpu is installed and sees a GPU, else ``"CPU"``.

    Raises:
        ValueError: On an unknown device name, or ``"GPU"`` when Aer reports no GPU.
    """
    from qiskit_aer import AerSimulator

    available = tuple(AerSimulator().available_devices())
    if device == "auto":
        return "GPU" if "GPU" in available else "CPU"
    if device not in ("CPU", "GPU"):
        raise ValueError(f"unknown Aer device {device!r}; choose 'auto', 'CPU' or 'GPU'")
    if device not in available:
        raise ValueError(f"Aer device {device!r} is not available (Aer reports {available})")
    return device


def aer_estimator(
    *,
    precision: float = 0.0,
    device: Literal["CPU", "GPU"] | None = None,
    backend_options: Mapping[str, object] | None = None,
) -> BaseEstimatorV2:
    """Build ``qiskit_aer.primitives.EstimatorV2``: the one place an Aer estimator is configured.

    Args:
        precision: Std of the Gaussian noise Aer adds to each expectation value; 0 = exact.
        device: ``"CPU"`` or ``"GPU"`` sets Aer's device; on CPU it also parallelises over a PUB's bindings
            (``max_parallel_experiments=0``), where Aer's own default parallelises inside each state from 14 wires
            on, much slower for many small bindings (``benchmarks/RESULTS.md``). ``None`` leaves Aer's defaults.
        backend_options: ``AerSimulator`` options over those defaults (``method``, ``noise_model``, threads...).
    """
    from qiskit_aer.primitives import EstimatorV2

    options: dict[str, object] = {}
    if device is not None:
        options["device"] = device
        if device == "CPU":
            options["max_parallel_experiments"] = 0  # 0 = as many as threads
    options |= dict(backend_options or {})
    config: dict[str, object] = {"default_precision": float(precision)}
    if options:
        config["backend_options"] = options
    return EstimatorV2(options=config)


def decompose_for_aer(circuit: QuantumCircuit, basis: Sequence[str] = AER_SAFE_BASIS) -> QuantumCircuit:
    """Transpile ``circuit`` so that Aer binds every run-time parameter correctly (pitfall 1, module doc).

    Returns:
        An equivalent circuit on the same wires whose parameterized gates are all RX/RY/RZ.

    Raises:
        UnsupportedInstructionError: If a parameterized gate other than RX/RY/RZ survives, or wires moved.
    """
    out = transpile(circuit, basis_gates=list(basis), optimization_level=0)
    if out.num_qubits != circuit.num_qubits or out.layout is not None:
        raise UnsupportedInstructionError(f"{circuit.name}: decomposition for Aer changed the wire layout")
    for inst in out.data:
        op = inst.operation
        # Gate.is_parameterized() is False for crz(w)/cry(w) in qiskit 2.6, so look at the params themselves
        if any(isinstance(p, ParameterExpression) for p in op.params) and op.name not in _ROTATIONS:
            raise UnsupportedInstructionError(
                f"{circuit.name}: parameterized {op.name!r} remains after decomposition for Aer"
            )
    return out


@functools.cache
def aer_max_wires() -> int:
    """The widest statevector ``AerSimulator`` reports it can simulate in this machine's memory."""
    from qiskit_aer import AerSimulator

    return int(AerSimulator(method="statevector").configuration().n_qubits)


@dataclass(frozen=True)
class AerOptions:
    """Constructor options of :class:`AerExecutor` that a description carries (an injected estimator is not one:
    ``device`` then reads ``"injected"``)."""

    method: str = option("pub")
    shots: int | None = option(None)
    precision: float | None = option(None)
    seed: int | None = option(None)
    chunk_size: int = option(256, config="executor_chunk_size")
    device: str = option("auto")
    backend_options: Mapping[str, object] = option(None)
    max_wires: int | None = option(None)


class AerExecutor(Executor):
    """Expectation values from Qiskit Aer's ``EstimatorV2``, with parameter-shift gradients.

    Args:
        method: ``"pub"`` (batched PUBs, own parameter shift; default: same numbers, much faster) or ``"qnn"``
            (``EstimatorQNN`` + a ``TorchConnector``-style autograd function).
        shots: Emulated shots per expectation value (``precision = 1/sqrt(shots)``); ``None`` = exact.
        precision: Std of the Gaussian noise Aer adds; exclusive with ``shots``. ``None``/0 = exact.
        seed: Seed of the noise; ``None`` draws each call's seed from torch's global RNG (checkpoint-safe).
        chunk_size: Tokens per Aer job; the shifted backward PUB holds ``2 * A * chunk_size`` bindings for
            ``A`` gate angles, which bounds memory.
        device: ``"auto"``, ``"CPU"`` or ``"GPU"`` (qiskit-aer-gpu); ignored when ``estimator`` is given.
        backend_options: ``AerSimulator`` options over our defaults (e.g. ``max_parallel_threads``). On CPU
            our default parallelises over a PUB's bindings (see :func:`aer_estimator`).
        estimator: An ``EstimatorV2`` to use instead of building ``qiskit_aer.primitives.EstimatorV2``.
        max_wires: Refuse circuits wider than this; ``None``: the widest statevector Aer reports it can hold in
            this machine's memory (``AerSimulator().configuration().n_qubits``).

    Raises:
        ValueError: On an unknown method or device, both ``shots`` and ``precision``, or non-positive sizes.
    """

    name = "aer"
    exact = True
    Options = AerOptions

    def __init__(
        self,
        *,
        method: Literal["pub", "qnn"] = "pub",
        shots: int | None = None,
        precision: float | None = None,
        seed: int | None = None,
        chunk_size: int = 256,
        device: Literal["auto", "CPU", "GPU"] = "auto",
        estimator: BaseEstimatorV2 | None = None,
        backend_options: Mapping[str, object] | None = None,
        max_wires: int | None = None,
    ) -> None:
        if method not in ("pub", "qnn"):
            raise ValueError(f"unknown Aer method {method!r}; choose 'pub' or 'qnn'")
        if shots is not None and precision is not None:
            raise ValueError("give either shots or precision, not both")
        if shots is not None and int(shots) < 1:
            raise ValueError(f"shots must be >= 1, got {shots}")
        if precision is not None and precision < 0:
            raise ValueError(f"precision must be >= 0, got {precision}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if max_wires is not None and max_wires < 1:
            raise ValueError(f"max_wires must be >= 1, got {max_wires}")
        self.max_wires = None if max_wires is None else int(max_wires)
        self.method, self.shots, self.seed, self.chunk_size = method, shots, seed, int(chunk_size)
        self.precision = 1.0 / math.sqrt(shots) if shots is not None else float(precision or 0.0)
        self.exact = self.precision == 0.0  # instance value shadows the class default
        self._generator = torch.Generator().manual_seed(seed) if seed is not None else None
        if estimator is None:
            self.device = resolve_aer_device(device)
            self.backend_options = dict(backend_options or {})
            estimator = aer_estimator(
                precision=self.precision, device=self.device, backend_options=self.backend_options
            )
        else:
            if backend_options:
                raise ValueError("backend_options configure the estimator built here, not an injected one")
            self.device, self.backend_options = "injected", {}
        self.estimator = estimator
        self.options = AerOptions(
            method, shots, precision, seed, self.chunk_size, self.device, dict(self.backend_options), self.max_wires
        )

    def check_spec(self, spec: CircuitSpec) -> None:
        """Refuse a circuit wider than :attr:`max_wires` (or Aer's memory limit) before any work.

        Raises:
            ValueError: One line naming the limit and the executors that can run wider circuits.
        """
        limit = self.max_wires if self.max_wires is not None else aer_max_wires()
        if spec.num_qubits > limit:
            source = "max_wires" if self.max_wires is not None else "Aer's statevector limit in this machine's memory"
            raise ValueError(
                f"{spec.name}: {spec.num_qubits} wires exceed {source} ({limit}); use the 'tensornet' or 'branch' "
                "executor"
            )

    def compile(self, spec: CircuitSpec) -> _PubProgram | _QnnProgram:
        self.check_spec(spec)
        decomposed = decompose_for_aer(spec.circuit)
        program = _PubProgram if self.method == "pub" else _QnnProgram
        return program(spec, decomposed, self)

    def _reseed(self) -> None:
        """Give Aer a fresh noise seed per call (its EstimatorV2 reseeds numpy from ``seed_simulator``)."""
        if self.precision == 0.0:
            return
        seed = int(torch.randint(0, 2**31 - 1, (1,), generator=self._generator).item())
        run_options = getattr(getattr(self.estimator, "options", None), "run_options", None)
        if isinstance(run_options, dict):
            run_options["seed_simulator"] = seed


# ------------------------------------------------------------------------------------------- batched PUB path
class _AerProgram(Program):
    """Shared template settings: float64 arguments, chunks of ``executor.chunk_size`` tokens, one noise seed per call,
    results in the inputs' dtype."""

    cast_back = True

    def __init__(self, spec: CircuitSpec, executor: AerExecutor) -> None:
        super().__init__(spec, dtype=torch.float64, chunk_size=executor.chunk_size)
        self.executor = executor

    def _begin(self, batch: int) -> None:
        self.executor._reseed()


class _PubProgram(_AerProgram):
    """Gate-level circuit with one angle ``g[k]`` per parameterized rotation; parameter shift on the ``g``."""

    def __init__(self, spec: CircuitSpec, decomposed: QuantumCircuit, executor: AerExecutor) -> None:
        super().__init__(spec, executor)
        exprs = [inst.operation.params[0] for inst in decomposed.data if inst.operation.is_parameterized()]
        g = ParameterVector("g", len(exprs))
        circuit = decomposed.copy_empty_like()
        circuit.global_phase = 0.0  # a (maybe parameterized) global phase does not change expectation values
        k = 0
        for inst in decomposed.data:
            op = inst.operation
            if op.is_parameterized():
                circuit.append(_ROTATIONS[op.name](g[k]), inst.qubits)
                k += 1
            else:
                circuit.append(op, inst.qubits, inst.clbits)
        if list(circuit.parameters) != list(g):  # PUB values bind in circuit.parameters order (pitfall 3)
            raise RuntimeError("gate-angle parameters are not in index order; PUB binding would be wrong")
        self.circuit, self.num_angles = circuit, len(exprs)
        self.angle_fn = angle_function(exprs, spec)  # torch (B, n_in), (n_w,) -> (B, A), differentiable
        self.observables = [[obs] for obs in spec.observables]  # (n_obs, 1): broadcasts against bindings

    def expectations(self, angles: np.ndarray) -> np.ndarray:
        """``angles (..., A) -> (..., n_obs)``: one PUB, observables broadcast against every binding."""
        if self.num_angles == 0:  # a circuit without parameters: bind nothing, broadcast the result
            lead = angles.shape[:-1]
            evs = self._estimate([row[0] for row in self.observables], None)  # (n_obs,)
            return np.broadcast_to(evs, lead + evs.shape).copy()
        flat = angles.reshape(-1, self.num_angles)  # (N, A)
        evs = self._estimate(self.observables, flat)  # (n_obs, N)
        return evs.T.reshape(angles.shape[:-1] + (len(self.spec.observables),))

    def _estimate(self, observables: list, values: np.ndarray | None) -> np.ndarray:
        pub = (self.circuit, observables) if values is None else (self.circuit, observables, values)
        result = self.executor.estimator.run([pub], precision=self.executor.precision).result()
        return np.asarray(result[0].data.evs, dtype=np.float64)

    def shift_jacobian(self, angles: np.ndarray) -> np.ndarray:
        """``angles (B, A) -> d<O>/dg (B, n_obs, A)``, two-term shift rule (exact for ``exp(-i g P / 2)``)."""
        eye = np.eye(self.num_angles)  # (A, A)
        shifted = np.stack([angles[:, None, :] + shift * eye for shift, _ in PAULI_SHIFT])  # (S, B, A, A)
        evs = self.expectations(shifted)  # (S, B, A, n_obs)  all shifts of all angles in one PUB
        jac = sum(coeff * e for (_, coeff), e in zip(PAULI_SHIFT, evs))  # (B, A, n_obs)
        return jac.transpose(0, 2, 1)  # (B, n_obs, A)

    def _run(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        angles = self.angle_fn(x, w)  # (b, A), carries autograd to x and w
        return _ShiftExpectation.apply(angles, self)  # (b, n_obs)


class _ShiftExpectation(torch.autograd.Function):
    @staticmethod
    def forward(ctx, angles: torch.Tensor, program: _PubProgram) -> torch.Tensor:  # (b, A) -> (b, n_obs)
        ctx.program = program
        ctx.save_for_backward(angles)
        evs = program.expectations(angles.detach().cpu().numpy())  # (b, n_obs)
        return torch.from_numpy(evs).to(device=angles.device, dtype=angles.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # (b, n_obs) -> (b, A)
        (angles,) = ctx.saved_tensors
        if ctx.program.num_angles == 0:
            return angles.new_zeros(angles.shape), None
        ctx.program.executor._reseed()  # fresh noise for the shifted runs, not a replay of the forward's
        jac = ctx.program.shift_jacobian(angles.detach().cpu().numpy())  # (b, n_obs, A)
        jac_t = torch.from_numpy(jac).to(device=grad_out.device, dtype=grad_out.dtype)
        return torch.einsum("bo,boa->ba", grad_out, jac_t), None  # (b, A)


# ------------------------------------------------------------------------------------------ EstimatorQNN path
class _QnnProgram(_AerProgram):
    """``EstimatorQNN`` on the decomposed circuit; forward/backward take spec-ordered (inputs, weights)."""

    def __init__(self, spec: CircuitSpec, decomposed: QuantumCircuit, executor: AerExecutor) -> None:
        from qiskit_machine_learning.gradients import ParamShiftEstimatorGradient
        from qiskit_machine_learning.neural_networks import EstimatorQNN

        super().__init__(spec, executor)
        self.qnn = EstimatorQNN(
            circuit=decomposed,
            estimator=executor.estimator,
            observables=list(spec.observables),
            input_params=list(spec.input_params),  # EstimatorQNN renames these inputs[i] (pitfall 3) ...
            weight_params=list(spec.weight_params),  # ... and these weights[j], so forward takes spec order
            gradient=ParamShiftEstimatorGradient(estimator=executor.estimator),
            input_gradients=True,  # False (the library default) silently cuts gradients to upstream layers
            default_precision=executor.precision,  # 0.0 if exact; the 0.015625 default adds noise (pitfall 2)
        )

    def _run(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return _QnnFunction.apply(x, w, self.qnn)  # (b, n_obs)


class _QnnFunction(torch.autograd.Function):
    """``TorchConnector``'s autograd function, kept in float64 and with the weights passed in."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, w: torch.Tensor, qnn) -> torch.Tensor:  # (b, n_in), (n_w,) -> (b, n_o)
        ctx.qnn = qnn
        ctx.save_for_backward(x, w)
        out = qnn.forward(x.detach().cpu().numpy(), w.detach().cpu().numpy())  # (b, n_obs)
        return torch.as_tensor(np.asarray(out), dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # (b, n_obs) -> (b, n_in), (n_w,)
        x, w = ctx.saved_tensors
        in_grad, w_grad = ctx.qnn.backward(x.detach().cpu().numpy(), w.detach().cpu().numpy())
        d_in = torch.as_tensor(np.asarray(in_grad), dtype=x.dtype, device=x.device)  # (b, n_obs, n_in)
        d_w = torch.as_tensor(np.asarray(w_grad), dtype=w.dtype, device=w.device)  # (b, n_obs, n_w)
        return torch.einsum("bo,boi->bi", grad_out, d_in), torch.einsum("bo,bow->w", grad_out, d_w), None
