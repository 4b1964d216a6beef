"""A fast calibrated emulator: exact torch expectation values, damped per observable, plus shot noise.

Runtime local mode simulates device noise one trajectory per shot (timings in docs/quantum-facts.md), far too slow for
sampling images. This emulator instead computes the exact ``<O_j>`` with qldm's ``StatevectorExecutor`` and multiplies
it by a damping factor ``f_j`` from the *transpiled* circuit's calibration on that device, then adds Gaussian shot noise
of variance ``(1 - (f_j <O_j>)^2) / shots``:

- gates: each gate in the backward light cone of ``O_j`` (its device qubits) acts as a depolarizing channel
  with parameter ``lambda = e * d / (d - 1)`` from the target's average gate error ``e`` (``d = 2`` or ``4``),
  damping the observable by ``1 - lambda`` (a global-depolarizing-style approximation inside the light cone);
- readout: each measured qubit flips with the target's readout error ``p``, damping ``Z`` by ``1 - 2p``;
- idle decoherence (``idle_decoherence=True``): a qubit in the light cone that waits for ``t`` during the scheduled
  circuit is damped by ``(exp(-t/T1) + 2 exp(-t/T2)) / 3`` (Pauli-averaged amplitude and phase damping). Aer's
  ``NoiseModel.from_backend`` (and so local mode) puts relaxation only on gates, not on idle qubits of an unscheduled
  circuit, so this is off by default and meant for real devices.

Because all of this is a constant factor, the emulator stays differentiable. With ``ancilla_elimination`` each branch
circuit is emulated with its own damping and the branches are averaged, as the hardware executor would run them.
Non-unital effects enter as an offset ``b`` for single-qubit ``Z`` observables (T1 relaxation of the read-out qubit over
its busy time and the readout asymmetry ``P(0|1) - P(1|0)`` from ``backend.properties()``): ``<O> -> f <O> + b``.
Crosstalk and coherent errors are ignored; ``benchmarks/bench_hardware.py`` measures its error against Aer's noisy
simulation.

"""

from __future__ import annotations

import math
from typing import Any

import torch

from circuits.spec import CircuitSpec
from hardware.ancilla import all_patterns
from hardware.backends import ResolvedBackend, resolve_backend
from hardware.transpile import Transpiled, Transpiler, _error, measured_qubits
from qldm.quantum.executor import Executor, Program
from qldm.quantum.statevector import StatevectorExecutor

__all__ = ["EmulatorExecutor", "observable_damping"]


def _duration(target: Any, name: str, qubits: tuple[int, ...]) -> float:
    try:
        props = target[name][qubits]
    except (KeyError, TypeError):
        return 0.0
    return float(props.duration or 0.0) if props is not None else 0.0


def _readout_asymmetry(backend: Any, qubit: int) -> float:
    """``P(0|1) - P(1|0)`` of a qubit from ``backend.properties()`` (0 where the backend has none)."""
    try:
        props = backend.properties()
        p01 = props.qubit_property(qubit, "prob_meas0_prep1")[0]
        p10 = props.qubit_property(qubit, "prob_meas1_prep0")[0]
    except Exception:  # noqa: BLE001 - no properties: symmetric readout
        return 0.0
    return float(p01) - float(p10)


def observable_damping(
    transpiled: Transpiled, backend: Any, *, idle_decoherence: bool = False
) -> tuple[list[float], list[float]]:
    """Affine noise map ``<O> -> f <O> + b`` of each mapped observable from ``backend``'s calibration.

    ``f`` is the damping of the module docstring. ``b`` (single-qubit ``Z`` observables only, else 0) is the non-unital
    part: amplitude damping of the read-out qubit towards ``|0>`` over its busy time, ``gamma = 1 - exp(-t/T1)``, and
    the readout asymmetry ``P(0|1) - P(1|0)``.
    """
    target = backend.target
    isa = transpiled.circuit
    ops = []
    for inst in isa.data:
        if inst.operation.name in ("barrier", "delay", "measure"):
            continue
        ops.append((inst.operation.name, tuple(isa.find_bit(q).index for q in inst.qubits)))
    # ASAP schedule: busy time per qubit and total duration, for decoherence
    clock: dict[int, float] = {}
    busy: dict[int, float] = {}
    for name, qs in ops:
        dur = _duration(target, name, qs)
        start = max(clock.get(q, 0.0) for q in qs)
        for q in qs:
            clock[q] = start + dur
            busy[q] = busy.get(q, 0.0) + dur
    total = max(clock.values(), default=0.0)
    factors, offsets = [], []
    for obs in transpiled.observables:
        measured = measured_qubits((obs,))
        cone = set(measured)
        log_f = 0.0
        for name, qs in reversed(ops):
            if cone.isdisjoint(qs):
                continue
            d = 2 ** len(qs)
            lam = _error(target, name, qs) * d / (d - 1)
            log_f += math.log(max(1.0 - lam, 1e-12))
            cone.update(qs)
        for q in measured:
            log_f += math.log(max(1.0 - 2.0 * _error(target, "measure", (q,)), 1e-12))
        if idle_decoherence:
            for q in cone:
                props = target.qubit_properties[q] if target.qubit_properties else None
                t = total - busy.get(q, 0.0)
                if props is None or t <= 0:
                    continue
                t1, t2 = props.t1 or math.inf, props.t2 or math.inf
                log_f += math.log((math.exp(-t / t1) + 2 * math.exp(-t / t2)) / 3)
        f, b = math.exp(log_f), 0.0
        single_z = len(measured) == 1 and len(obs) == 1 and not obs.paulis[0].x.any()
        if single_z:
            q = measured[0]
            props = target.qubit_properties[q] if target.qubit_properties else None
            t1 = (props.t1 if props is not None else None) or math.inf
            t = (total if idle_decoherence else busy.get(q, 0.0)) + _duration(target, "measure", (q,))
            gamma = 1.0 - math.exp(-t / t1)
            b = float(obs.coeffs[0].real) * (
                (1 - 2 * _error(target, "measure", (q,))) * gamma + _readout_asymmetry(backend, q)
            )
        factors.append(f)
        offsets.append(b)
    return factors, offsets


def _branch_spec(spec: CircuitSpec, pattern: tuple[int, ...], transpiler: Transpiler) -> tuple[CircuitSpec, list[int]]:
    branch, _ = transpiler.transpile_branch(spec, pattern)
    used = set(branch.circuit.parameters)
    weights = tuple(p for p in spec.weight_params if p in used)
    index = [i for i, p in enumerate(spec.weight_params) if p in used]
    inputs = tuple(p for p in spec.input_params if p in used)
    if len(inputs) != spec.num_inputs:
        raise ValueError(f"{spec.name}: branch {pattern} drops an input; emulation needs every input encoded")
    bspec = CircuitSpec(
        circuit=branch.circuit,
        input_params=inputs,
        weight_params=weights,
        observables=branch.observables,
        data_qubits=tuple(range(branch.circuit.num_qubits)),
        name=f"{spec.name}-b{''.join(map(str, pattern))}",
    )
    return bspec, index


class EmulatorExecutor(Executor):
    """Calibrated noise emulation: exact torch values x per-observable damping + shot noise (differentiable).

    Args:
        backend: A backend name or resolved backend with calibration (``aer-noise:``, ``fake:``, ``ibm:``).
        shots: Shots per parameter set for the Gaussian shot noise; ``None``: no shot noise (damped means).
        ancilla_elimination: Emulate the branch ensemble instead of the faithful circuit.
        max_branches: Enumerate all patterns up to this many, else sample this many per call (torch RNG).
        idle_decoherence: Add T1/T2 damping of idle light-cone qubits (real devices; see module doc).
        noise: False leaves the device's noise out: exact values plus shot noise only (any backend, calibrated or
            not), the "exact with finite shots" reference of a device study.
        optimization_level, layout_candidates, cache_dir: Passed to :class:`hardware.transpile.Transpiler`.
        dtype: Simulation precision (a torch dtype or its name, ``"float64"``).

    Raises:
        ValueError: On a backend without calibration (with ``noise``), a bad shot count or dtype.
    """

    name = "emulator"
    exact = False

    def __init__(
        self,
        backend: str | ResolvedBackend,
        *,
        shots: int | None = 1024,
        ancilla_elimination: bool = False,
        max_branches: int = 64,
        idle_decoherence: bool = False,
        noise: bool = True,
        optimization_level: int = 2,
        layout_candidates: int = 3,
        cache_dir: str | None = None,
        dtype: torch.dtype | str = torch.float64,
    ) -> None:
        dtype = getattr(torch, dtype.removeprefix("torch.")) if isinstance(dtype, str) else dtype
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        self.resolved = resolve_backend(backend) if isinstance(backend, str) else backend
        if noise and not self.resolved.has_calibration:
            raise ValueError(f"the emulator needs a calibrated backend, not {self.resolved.name!r}")
        self.noise = bool(noise)
        if shots is not None and shots < 1:
            raise ValueError(f"shots must be >= 1 or None, got {shots}")
        self.shots, self.ancilla_elimination, self.max_branches = (
            shots,
            bool(ancilla_elimination),
            int(max_branches),
        )
        self.idle_decoherence, self.dtype = bool(idle_decoherence), dtype
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.transpiler = Transpiler(
            self.resolved,
            optimization_level=optimization_level,
            layout_candidates=layout_candidates,
            cache_dir=cache_dir,
        )

    def describe(self) -> dict:
        """Every constructor option, JSON-able: ``EmulatorExecutor(**{k: v for k, v in d.items() if k != "name"})``
        rebuilds the executor (``dtype`` as its string is accepted back)."""
        return {
            "name": self.name,
            "backend": self.resolved.name,
            "shots": self.shots,
            "ancilla_elimination": self.ancilla_elimination,
            "max_branches": self.max_branches,
            "idle_decoherence": self.idle_decoherence,
            "noise": self.noise,
            "optimization_level": self.transpiler.optimization_level,
            "layout_candidates": self.transpiler.layout_candidates,
            "cache_dir": self.cache_dir,
            "dtype": str(self.dtype).removeprefix("torch."),
        }

    def damping(self, transpiled: Transpiled) -> torch.Tensor:
        """``(2, n_obs)``: damping factors and offsets of one transpiled circuit (1 and 0 without ``noise``)."""
        if not self.noise:
            n_obs = len(transpiled.observables)
            return torch.tensor([[1.0] * n_obs, [0.0] * n_obs], dtype=self.dtype)
        f, b = observable_damping(transpiled, self.resolved.backend, idle_decoherence=self.idle_decoherence)
        return torch.tensor([f, b], dtype=self.dtype)

    def compile(self, spec: CircuitSpec) -> _EmulatorProgram:
        return _EmulatorProgram(spec, self)


def _exact(spec: CircuitSpec, dtype: torch.dtype) -> Executor:
    """The exact executor for the noiseless values: the statevector where it fits, else the ring sweep for an
    unmodified Q-FFN (any width), else the general tensor network (too slow for wide Q-FFNs, hence the ring first)."""
    sv = StatevectorExecutor(dtype=dtype)
    if spec.num_qubits <= sv.max_wires:
        return sv
    from qldm.quantum.tensornet import RingExecutor, TensorNetworkExecutor

    ring = RingExecutor(dtype=dtype)
    try:
        ring.check_spec(spec)
    except ValueError:
        return TensorNetworkExecutor(dtype=dtype)
    return ring


class _EmulatorProgram(Program):
    """Damped exact values of the faithful circuit or of its branch circuits, plus Gaussian shot noise."""

    cast_back = True

    def __init__(self, spec: CircuitSpec, ex: EmulatorExecutor) -> None:
        super().__init__(spec, dtype=ex.dtype)
        self.ex = ex
        sv = StatevectorExecutor(dtype=ex.dtype)
        if not ex.ancilla_elimination:
            ident = torch.tensor([[1.0] * spec.num_outputs, [0.0] * spec.num_outputs], dtype=ex.dtype)
            damping = ex.damping(ex.transpiler.transpile(spec)) if ex.noise else ident  # no transpile without noise
            self.full = (_exact(spec, ex.dtype).compile(spec), damping)
            return
        k = len(spec.ancilla_qubits)
        if k == 0:
            raise ValueError(f"{spec.name}: ancilla elimination needs ancillas; the spec has none")
        self.k, self.sv = k, sv
        self.branches: dict[tuple[int, ...], tuple[Any, list[int], torch.Tensor]] = {}
        self.enumerate = 2**k <= ex.max_branches

    def _branch(self, pattern: tuple[int, ...]) -> tuple[Any, list[int], torch.Tensor]:
        if pattern not in self.branches:
            bspec, index = _branch_spec(self.spec, pattern, self.ex.transpiler)
            _, t = self.ex.transpiler.transpile_branch(self.spec, pattern)
            self.branches[pattern] = (self.sv.compile(bspec), index, self.ex.damping(t))
        return self.branches[pattern]

    def mean_and_var(self, inputs: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Damped expectation ``(B, n_obs)`` and the per-shot variance ``(B, n_obs)`` of the estimator."""
        x, w = inputs.to(self.ex.dtype), weights.to(self.ex.dtype)  # a no-op when called from the template
        if not self.ex.ancilla_elimination:
            program, f = self.full
            f = f.to(x.device)
            mean = program(x, w) * f[0] + f[1]  # (B, n_obs)
            return mean, (1 - mean.detach() ** 2).clamp_min(0)
        if self.enumerate:
            patterns = all_patterns(self.k)
        else:
            rows = torch.randint(0, 2, (self.ex.max_branches, self.k)).tolist()  # torch global RNG
            patterns = [tuple(r) for r in rows]
        means = []
        for pattern in patterns:
            program, index, f = self._branch(pattern)
            f = f.to(x.device)
            means.append(program(x, w[index]) * f[0] + f[1])  # (B, n_obs)
        stack = torch.stack(means)  # (K, B, n_obs)
        # shots split evenly over K branches: var of the mean = sum_b var_b / (K^2 * shots/K) = mean_b var_b / shots
        return stack.mean(0), (1 - stack.detach() ** 2).clamp_min(0).mean(0)

    def _run(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        mean, var = self.mean_and_var(x, w)  # (B, n_obs) each
        if self.ex.shots is not None:
            mean = mean + torch.randn_like(mean) * (var / self.ex.shots).sqrt()  # torch global RNG
        return mean  # (B, n_obs)
