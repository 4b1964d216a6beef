"""The ring executor: an unmodified Q-FFN as a ring of real Pauli-basis transfer matrices, and nothing else.

It takes exactly the circuits :func:`~qldm.quantum.tensornet.ring.match_qffn` recognises (an unmodified
:func:`circuits.qffn_circuit` of at most four layers, any width) and refuses every other circuit in one line, so a
config that names it can never fall back to a slower path unnoticed. :mod:`qldm.quantum.tensornet.ring` builds the
site tensors and :mod:`qldm.quantum.tensornet.sweep` reads every output from one left and one right sweep with a
hand-written backward; on the Q-FFN it gives the values of the general ``tensornet`` network, much faster
(``benchmarks/RESULTS.md`` has the measured ratio).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from circuits.spec import CircuitSpec
from qldm.quantum.executor import Executor, Program, option
from qldm.quantum.tensornet.ring import QffnRing, match_qffn, site_tensors
from qldm.quantum.tensornet.sweep import SweepPlan, plan_sweep, ring_expectations, sweep_flops

__all__ = ["RingExecutor", "RingOptions", "RingSweepProgram"]


@dataclass(frozen=True)
class RingOptions:
    """Constructor options of :class:`RingExecutor` (see there)."""

    dtype: torch.dtype = option(torch.float32, config="executor_dtype")
    device: str | torch.device | None = option(None)
    chunk_size: int = option(4096, config="executor_chunk_size")
    max_chunk_elements: int = option(2**25)


class RingExecutor(Executor):
    """Exact expectation values of an unmodified Q-FFN by the transfer-matrix ring sweep.

    Args:
        dtype: ``torch.float32`` (default) or ``torch.float64``; the ring is real, so no complex type is used.
        device: Torch device; ``None`` follows the inputs.
        chunk_size: Most tokens swept at once (about 6e3 floats per token at n = 16, two layers).
        max_chunk_elements: Bound on the floats one chunk keeps (site matrices, left and right products and
            their gradients); a deeper ring gets a smaller chunk.

    Raises:
        ValueError: On an unsupported dtype or a non-positive chunk size.
    """

    name = "ring"
    exact = True
    Options = RingOptions

    def __init__(
        self,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = None,
        chunk_size: int = 4096,
        max_chunk_elements: int = 2**25,
    ) -> None:
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if int(chunk_size) < 1 or int(max_chunk_elements) < 1:
            raise ValueError(f"chunk_size and max_chunk_elements must be >= 1, got {chunk_size}, {max_chunk_elements}")
        self.dtype, self.device = dtype, device
        self.chunk_size, self.max_chunk_elements = int(chunk_size), int(max_chunk_elements)
        self.options = RingOptions(dtype, device, self.chunk_size, self.max_chunk_elements)

    def _match(self, spec: CircuitSpec) -> tuple[QffnRing, SweepPlan]:
        ring = match_qffn(spec)
        sweep = plan_sweep(ring.masks) if ring is not None else None
        if ring is None or sweep is None:
            raise ValueError(
                f"{spec.name}: the 'ring' executor runs only an unmodified qffn_circuit of at most 4 layers; "
                "use 'tensornet' or 'statevector' for this circuit"
            )
        return ring, sweep

    def check_spec(self, spec: CircuitSpec) -> None:
        self._match(spec)

    def compile(self, spec: CircuitSpec) -> RingSweepProgram:
        """The spec's ring sweep.

        Raises:
            ValueError: One line, if the spec is not an unmodified Q-FFN the sweep takes.
        """
        ring, sweep = self._match(spec)
        return RingSweepProgram(spec, ring, sweep, self)


class RingSweepProgram(Program):
    """A recognised Q-FFN as a ring of real ``D x D`` transfer matrices (:mod:`qldm.quantum.tensornet.ring`).

    The weight part of the site tensors is built once per call (differentiable, by autograd) and every chunk runs
    :func:`~qldm.quantum.tensornet.sweep.ring_expectations`, whose backward is hand-written.

    Attributes:
        ring: The recognised circuit (sites, layers, ancilla mode, readout masks).
        sweep: Which close each output takes.
        flops_per_token: Real flops of one token's forward+backward (:func:`~qldm.quantum.tensornet.sweep.sweep_flops`).
    """

    def __init__(self, spec: CircuitSpec, ring: QffnRing, sweep: SweepPlan, executor: RingExecutor) -> None:
        branches = 2 if ring.ancillas == "shared" else 1
        stored = 6 * ring.n * branches * 2 * ring.bond**2  # site matrices, left and right products, their gradients
        chunk = max(1, min(executor.chunk_size, int(executor.max_chunk_elements // stored)))
        super().__init__(spec, dtype=executor.dtype, device=executor.device, chunk_size=chunk)
        self.ring, self.sweep = ring, sweep
        self.flops_per_token = sweep_flops(sweep, ring.bond, branches)
        self._site: tuple[torch.Tensor, torch.Tensor] | None = None  # (weights, site tensors) of the current call

    def _begin(self, batch: int) -> None:
        self._site = None  # a new call: the site tensors join this call's autograd graph

    def _run(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        if self._site is None or self._site[0] is not w:
            self._site = (w, site_tensors(self.ring, w))  # (br, n, 3, 2, D, D), shared by the call's chunks
        return ring_expectations(x, self._site[1], self.sweep)
