"""Ancilla-branch Monte Carlo: drop control-only ancillas and average over sampled on/off patterns.

An ancilla prepared in ``|+>`` that only ever acts as a control and is never measured leaves the data qubits in the
uniform mixture over its control values (``../shared/docs/quantum-facts.md``; Yao & Hasegawa, PRA 111, 022426). With
``a`` such ancillas,

    <O> = 2^-a  sum_{b in {0,1}^a}  <O>_b,

where ``<O>_b`` is the expectation in the data-only circuit in which a gate controlled by ancilla j acts iff
``b_j = 1``. Sampling K patterns per token uniformly gives an unbiased estimate with per-token variance
``Var_b[<O>_b] / K`` at the cost of a ``2**n_data`` state. Patterns are drawn from torch's *global* RNG, which gradient
checkpointing restores before its recompute, so the recompute reuses the same branches.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from qiskit.quantum_info import PauliList, SparsePauliOp

from circuits.spec import CircuitSpec
from qldm.quantum.compile import compile_spec
from qldm.quantum.executor import Executor, Program, option
from qldm.quantum.statevector.engine import COMPLEX, PlanEngine
from qldm.quantum.statevector.plan import build_plan
from qldm.quantum.statevector.readout import PauliReadout

__all__ = ["BranchExecutor"]


@dataclass(frozen=True)
class BranchOptions:
    """Constructor options of :class:`BranchExecutor` (see there)."""

    samples: int = option(1, config="branch_samples")
    dtype: torch.dtype = option(torch.float32, config="executor_dtype")
    device: str | torch.device | None = option(None)
    chunk_size: int | None = option(None, config="executor_chunk_size")
    exact_if_at_most: int = option(0)
    cache_bytes: int = option(256 * 2**20)
    max_data_qubits: int = option(24)


class BranchExecutor(Executor):
    """Unbiased Monte-Carlo expectation values over sampled ancilla branches.

    Args:
        samples: K, branches sampled per token (each an independent uniform on/off pattern of the ancillas).
        dtype: ``torch.float32`` (default) or ``torch.float64``.
        device: Torch device; ``None`` follows the inputs.
        chunk_size: Branch rows (tokens x K) simulated at once; ``None`` picks ``2**22 / 2**n_data``.
        exact_if_at_most: Enumerate all ``2**a`` patterns (exact, deterministic) instead of sampling when
            ``2**a <= exact_if_at_most``. 0 (default) always samples.
        cache_bytes: See :class:`~qldm.quantum.statevector.StatevectorExecutor`.
        max_data_qubits: Refuse specs with more data qubits (each branch simulates ``2**n_data`` amplitudes).

    Raises:
        ValueError: On ``samples < 1``, a bad dtype or chunk size.
    """

    name = "branch"
    Options = BranchOptions
    exact = False

    def __init__(
        self,
        *,
        samples: int = 1,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = None,
        chunk_size: int | None = None,
        exact_if_at_most: int = 0,
        cache_bytes: int = 256 * 2**20,
        max_data_qubits: int = 24,
    ) -> None:
        if int(samples) < 1:
            raise ValueError(f"samples must be >= 1, got {samples}")
        if dtype not in COMPLEX:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        self.samples, self.dtype, self.device, self.chunk_size = int(samples), dtype, device, chunk_size
        self.exact_if_at_most, self.cache_bytes = int(exact_if_at_most), int(cache_bytes)
        self.max_data_qubits = int(max_data_qubits)
        self.options = BranchOptions(
            self.samples, dtype, device, chunk_size, self.exact_if_at_most, self.cache_bytes, self.max_data_qubits
        )

    def check_spec(self, spec: CircuitSpec) -> None:
        if len(spec.data_qubits) > self.max_data_qubits:
            raise ValueError(
                f"{spec.name}: {len(spec.data_qubits)} data qubits exceed the branch executor's statevector limit "
                f"of {self.max_data_qubits} (each branch simulates 2**n amplitudes); use the 'tensornet' executor"
            )

    def compile(self, spec: CircuitSpec) -> BranchProgram:
        """Compile ``spec`` to its data-only branch plan.

        Raises:
            ValueError: If the spec's ancillas are not control-only ``|+>`` wires (see module docstring), or if the
                data register is too wide for a statevector.
        """
        self.check_spec(spec)
        return BranchProgram(spec, self)


def _data_observable(op: SparsePauliOp, keep: list[int], spec: CircuitSpec) -> SparsePauliOp:
    drop = [q for q in range(spec.num_qubits) if q not in keep]
    if op.paulis.x[:, drop].any() or op.paulis.z[:, drop].any():
        raise ValueError(f"{spec.name}: the branch executor needs observables that act as identity on ancillas")
    paulis = PauliList.from_symplectic(op.paulis.z[:, keep], op.paulis.x[:, keep], op.paulis.phase)
    return SparsePauliOp(paulis, op.coeffs)


class BranchProgram(Program):
    """The data-only plan of a spec with control-only ancillas; a call averages K branches per token."""

    def __init__(self, spec: CircuitSpec, executor: BranchExecutor) -> None:
        anc = list(spec.ancilla_qubits)
        if not anc:
            raise ValueError(f"{spec.name}: the branch executor needs ancilla qubits; this spec has none")
        self.compiled = compile_spec(spec)
        # each ancilla's first instruction must be its H (|0> -> |+>); build_plan then checks it is only a control
        skip = set()
        for a in anc:
            first = next((i for i, op in enumerate(self.compiled.ops) if a in op.qubits), None)
            op = None if first is None else self.compiled.ops[first]
            if op is None or op.name != "h" or op.qubits != (a,):
                raise ValueError(
                    f"{spec.name}: ancilla {a} must start with an H gate and then act only as a control; "
                    f"its first instruction is {None if op is None else op.name!r}"
                )
            skip.add(first)
        keep = [q for q in range(spec.num_qubits) if q not in anc]
        plan = build_plan(
            self.compiled, wires=tuple(keep), ancilla_masks={a: j for j, a in enumerate(anc)}, skip=frozenset(skip)
        )
        observables = tuple(_data_observable(op, keep, spec) for op in spec.observables)
        self.engine = PlanEngine(plan, PauliReadout(observables, plan.num_wires))
        self.num_ancillas = len(anc)
        self.enumerate = 2 ** len(anc) <= executor.exact_if_at_most
        self.branches = 2 ** len(anc) if self.enumerate else executor.samples  # K rows per token
        rows = executor.chunk_size or max(1, 2**22 >> plan.num_wires)  # branch rows (tokens x K) per chunk
        super().__init__(spec, dtype=executor.dtype, device=executor.device, chunk_size=max(1, rows // self.branches))
        self.cdtype, self.cache_bytes = COMPLEX[executor.dtype], executor.cache_bytes
        self._cache = True

    def _begin(self, batch: int) -> None:
        state_bytes = batch * self.branches * 2**self.engine.n * torch.empty((), dtype=self.cdtype).element_size()
        self._cache = state_bytes <= self.cache_bytes

    def _run(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """The mean over K branches per token: ``(b, n_obs)``."""
        b, a, k = x.shape[0], self.num_ancillas, self.branches
        if self.enumerate:
            table = np.array(list(itertools.product((0, 1), repeat=a)), dtype=bool)  # (2**a, a)
            bits = torch.as_tensor(table, device=x.device).repeat(b, 1)  # (b*K, a)
        else:
            bits = torch.randint(0, 2, (b * k, a), device=x.device).bool()  # (b*K, a)  global RNG: checkpoint-safe
        angles = self.compiled.angles(x, w).repeat_interleave(k, dim=0)  # (b*K, A)
        out = self.engine.expectations(angles, bits, self.cdtype, cache=self._cache)  # (b*K, n_obs)
        return out.view(b, k, -1).mean(dim=1)  # (b, n_obs)
