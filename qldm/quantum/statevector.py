"""Exact batched statevector simulation in torch, compiled from the spec's Qiskit instructions."""

from __future__ import annotations

import torch

from circuits.spec import CircuitSpec
from qldm.quantum.compile import CompiledSpec, apply_gate, compile_spec
from qldm.quantum.executor import Executor, check_inputs
from qldm.quantum.observables import PauliReadout

__all__ = ["StatevectorExecutor"]

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


class StatevectorExecutor(Executor):
    """Exact expectation values from a batched statevector of all ``2**num_wires`` amplitudes.

    Args:
        dtype: ``torch.float32`` (default) or ``torch.float64``; amplitudes use the matching complex type.
        device: Torch device for the simulation; ``None`` follows the inputs.
        chunk_size: Tokens simulated at once, bounding memory at ``chunk_size * 2**num_wires`` amplitudes.
        max_wires: Refuse circuits wider than this (a statevector of 2**30 amplitudes does not fit).

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
        chunk_size: int = 4096,
        max_wires: int = 24,
    ) -> None:
        if dtype not in _COMPLEX:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.dtype, self.device, self.chunk_size, self.max_wires = dtype, device, int(chunk_size), int(max_wires)

    def describe(self) -> dict:
        return {"name": self.name, "dtype": str(self.dtype), "chunk_size": self.chunk_size}

    def compile(self, spec: CircuitSpec) -> _StatevectorProgram:
        if spec.num_qubits > self.max_wires:
            raise ValueError(
                f"{spec.name}: {spec.num_qubits} wires exceed the statevector limit of {self.max_wires}; "
                "use the 'tensornet' or 'branch' executor"
            )
        return _StatevectorProgram(compile_spec(spec), self)


class _StatevectorProgram:
    def __init__(self, compiled: CompiledSpec, executor: StatevectorExecutor) -> None:
        self.compiled, self.spec, self.executor = compiled, compiled.spec, executor
        self.readout = PauliReadout(compiled.spec.observables, compiled.num_wires)

    def _run_chunk(self, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        c = self.compiled
        cdtype = _COMPLEX[self.executor.dtype]
        angles = c.angles(inputs, weights)  # (B, A)
        state = torch.zeros(inputs.shape[0], 2**c.num_wires, dtype=cdtype, device=inputs.device)  # (B, 2**N)
        state[:, 0] = 1
        for op in c.ops:
            state = apply_gate(state, op.torch_matrix(angles, cdtype), op.qubits, c.num_wires)  # (B, 2**N)
        return self.readout(state)  # (B, n_obs)

    def __call__(self, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        check_inputs(self.spec, inputs, weights)
        dev = self.executor.device or inputs.device
        x = inputs.to(device=dev, dtype=self.executor.dtype)
        w = weights.to(device=dev, dtype=self.executor.dtype)
        outs = [self._run_chunk(x[i : i + self.executor.chunk_size], w) for i in range(0, x.shape[0], self.executor.chunk_size)]
        if not outs:
            return x.new_zeros((0, self.spec.num_outputs))
        return torch.cat(outs).to(device=inputs.device)
