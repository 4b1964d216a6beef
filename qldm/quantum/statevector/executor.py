"""The exact statevector executor: a spec compiled to a plan and run by :class:`PlanEngine`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from circuits.spec import CircuitSpec
from qldm.quantum.compile import compile_spec
from qldm.quantum.executor import Executor, Program, option
from qldm.quantum.statevector.engine import COMPLEX, PlanEngine
from qldm.quantum.statevector.plan import build_plan
from qldm.quantum.statevector.readout import PauliReadout

__all__ = ["StatevectorExecutor", "StatevectorProgram"]


def _device_name(device: str | torch.device | None) -> str | None:
    return None if device is None else str(device)


@dataclass(frozen=True)
class StatevectorOptions:
    """Constructor options of :class:`StatevectorExecutor` (see there)."""

    dtype: torch.dtype = option(torch.float32, config="executor_dtype")
    device: str | torch.device | None = option(None)
    chunk_size: int | None = option(None, config="executor_chunk_size")
    max_wires: int = option(24)
    cache_bytes: int = option(256 * 2**20)


class StatevectorExecutor(Executor):
    """Exact expectation values from a batched statevector of all ``2**num_wires`` amplitudes.

    Args:
        dtype: ``torch.float32`` (default) or ``torch.float64``; amplitudes use the matching complex type.
        device: Torch device for the simulation; ``None`` follows the inputs.
        chunk_size: Tokens simulated at once; ``None`` picks ``2**22 / 2**num_wires`` (about 32 MiB of complex64
            amplitudes per state). Peak memory is about 4 states of a chunk plus the cached final states.
        max_wires: Refuse circuits wider than this (a statevector of 2**30 amplitudes does not fit).
        cache_bytes: Keep the final states of all chunks for the backward pass while they fit in this many bytes;
            beyond it, the backward pass recomputes each chunk's forward instead.

    Raises:
        ValueError: On an unsupported dtype or non-positive chunk size.
    """

    name = "statevector"
    Options = StatevectorOptions
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
        if dtype not in COMPLEX:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.dtype, self.device, self.chunk_size = dtype, device, chunk_size
        self.max_wires, self.cache_bytes = int(max_wires), int(cache_bytes)
        self.options = StatevectorOptions(dtype, device, chunk_size, self.max_wires, self.cache_bytes)

    def check_spec(self, spec: CircuitSpec) -> None:
        if spec.num_qubits > self.max_wires:
            raise ValueError(
                f"{spec.name}: {spec.num_qubits} wires exceed the statevector limit of {self.max_wires}; "
                "use the 'tensornet' or 'branch' executor"
            )

    def compile(self, spec: CircuitSpec) -> StatevectorProgram:
        self.check_spec(spec)
        return StatevectorProgram(spec, self)


class StatevectorProgram(Program):
    """A spec lowered to a plan (:mod:`qldm.quantum.statevector.plan`) and its :class:`PlanEngine`.

    Results come in the executor's dtype, on the inputs' device.
    """

    def __init__(self, spec: CircuitSpec, executor: StatevectorExecutor) -> None:
        self.compiled = compile_spec(spec)
        plan = build_plan(self.compiled)
        self.engine = PlanEngine(plan, PauliReadout(spec.observables, plan.num_wires))
        chunk = executor.chunk_size or max(1, 2**22 >> plan.num_wires)
        super().__init__(spec, dtype=executor.dtype, device=executor.device, chunk_size=chunk)
        self.cdtype, self.cache_bytes = COMPLEX[executor.dtype], executor.cache_bytes
        self._cache = True

    def _begin(self, batch: int) -> None:
        # final states are kept for the backward pass only while all chunks of the call together fit the budget
        state_bytes = batch * 2**self.engine.n * torch.empty((), dtype=self.cdtype).element_size()
        self._cache = state_bytes <= self.cache_bytes

    def _run(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        angles = self.compiled.angles(x, w)  # (b, A)  autograd carries atan and weight broadcasting
        return self.engine.expectations(angles, None, self.cdtype, cache=self._cache)  # (b, n_obs)
