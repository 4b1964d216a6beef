"""The exact statevector executor: a spec compiled to a plan and run by :class:`PlanEngine`."""

from __future__ import annotations

import torch

from circuits.spec import CircuitSpec
from qldm.quantum.compile import compile_spec
from qldm.quantum.executor import Executor, check_inputs
from qldm.quantum.statevector.engine import COMPLEX as _COMPLEX
from qldm.quantum.statevector.engine import PlanEngine, run_plan
from qldm.quantum.statevector.plan import build_plan
from qldm.quantum.statevector.readout import PauliReadout

__all__ = ["StatevectorExecutor"]

class StatevectorExecutor(Executor):
    """Exact expectation values from a batched statevector of all ``2**num_wires`` amplitudes.

    Args:
        dtype: ``torch.float32`` (default) or ``torch.float64``; amplitudes use the matching complex type.
        device: Torch device for the simulation; ``None`` follows the inputs.
        chunk_size: Tokens simulated at once; ``None`` picks ``2**22 / 2**num_wires`` (about 32 MiB of
        complex64
            amplitudes per state). Peak memory is about 4 states of a chunk plus the cached final states.
        max_wires: Refuse circuits wider than this (a statevector of 2**30 amplitudes does not fit).
        cache_bytes: Keep the final states of all chunks for the backward pass while they fit in this many
        bytes;
            beyond it, the backward pass recomputes each chunk's forward instead.

    Raises:
        ValueError: On an unsupported dtype or non-positive chunk size.
    """

    name = "statevector"
    exact = True

    def __init__(
        self,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = None,
        chunk_size: int | None = None,
        max_wires: int = 24,
        cache_bytes: int = 256 * 2**20,
    ) -> None:
        if dtype not in _COMPLEX:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.dtype, self.device, self.chunk_size = dtype, device, chunk_size
        self.max_wires, self.cache_bytes = int(max_wires), int(cache_bytes)

    def describe(self) -> dict:
        return {"name": self.name, "dtype": str(self.dtype), "chunk_size": self.chunk_size}

    def check_spec(self, spec: CircuitSpec) -> None:
        if spec.num_qubits > self.max_wires:
            raise ValueError(
                f"{spec.name}: {spec.num_qubits} wires exceed the statevector limit of {self.max_wires}; "
                "use the 'tensornet' or 'branch' executor"
            )

    def compile(self, spec: CircuitSpec) -> _StatevectorProgram:
        self.check_spec(spec)
        return _StatevectorProgram(spec, self)


class _StatevectorProgram:
    def __init__(self, spec: CircuitSpec, executor: StatevectorExecutor) -> None:
        self.spec, self.executor = spec, executor
        self.compiled = compile_spec(spec)
        plan = build_plan(self.compiled)
        self.engine = PlanEngine(plan, PauliReadout(spec.observables, plan.num_wires))
        self.chunk_size = executor.chunk_size or max(1, 2**22 >> plan.num_wires)

    def __call__(self, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """``inputs (B, n_in), weights (n_w,) -> (B, n_obs)`` in the executor's dtype, on the inputs'
        device."""
        check_inputs(self.spec, inputs, weights)
        dev = self.executor.device or inputs.device
        x = inputs.to(device=dev, dtype=self.executor.dtype)  # (B, n_in)
        w = weights.to(device=dev, dtype=self.executor.dtype)  # (n_w,)
        if x.shape[0] == 0:
            return x.new_zeros((0, self.spec.num_outputs)).to(inputs.device)
        angles = self.compiled.angles(x, w)  # (B, A)  autograd carries atan and weight broadcasting
        prefix, mats = self.engine.plan.matrices(angles, None, _COMPLEX[self.executor.dtype])
        out = run_plan(self.engine, prefix, mats, x.shape[0], self.chunk_size, self.executor.cache_bytes)
        return out.to(device=inputs.device)  # (B, n_obs)
