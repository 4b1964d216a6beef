"""Exact expectation values by contracting the circuit as a ket-and-bra tensor network, batched over tokens.

A recognised Q-FFN (an unmodified :func:`circuits.qffn_circuit` of at most four layers) runs as a ring of real
Pauli-basis transfer matrices instead (:class:`RingSweepProgram`: :mod:`qldm.quantum.tensornet.ring` builds the site
tensors, :mod:`qldm.quantum.tensornet.sweep` reads every output from one left and one right sweep and has a
hand-written backward); at n = 16 that is about 40x faster forward+backward than the general network below
(``benchmarks/RESULTS.md``, section 1b). Every other circuit, and any circuit with ``method="tree"``, takes the
general network:

The network is built from the spec's compiled instructions (:mod:`qldm.quantum.tensornet.network`: gate fusion,
diagonal wires as hyperedges, traced ancillas closed early), its pairwise contraction path is planned once per
spec with opt_einsum and every Pauli term of every observable is read from one forward pass plus environments
(:mod:`qldm.quantum.tensornet.tree`). Each pairwise step is a ``torch.einsum`` whose leading index is the token
batch, so autograd gives gradients to inputs and weights, on CPU or CUDA.

Where it pays: on the Q-FFN with per-qubit ancillas the network is a ring whose bond dimension across a cut is
about ``4**n_layers`` (each CNOT of the ring has operator Schmidt rank 2, doubled by the bra), so for a fixed
depth the cost per token is linear in ``n`` (2.4e4 flops per token at n = 16, 5.0e4 at n = 32, two layers).
With depth it grows much faster. Planned per-token costs at n = 8 (16 wires), greedy path, two-layer Q-FFN with
per-qubit ancillas (throughput against the statevector executor: ``benchmarks/RESULTS.md``):

    ======  ================  ===================
    layers  flops per token   largest (per token)
    ======  ================  ===================
    1       1.1e3             8
    2       1.1e4             128
    3       6.0e5             4.1e3
    4       7.8e7             2.6e5
    5       2.8e8             1.0e6
    6       4.8e9             1.7e7
    ======  ================  ===================

So it stops paying at about four layers for n = 8, where an intermediate outgrows the ``2**16`` statevector;
``optimize="random-greedy-128"`` finds cheaper paths there (1.0e7 instead of 7.8e7 flops at four layers), which moves
the crossover by less than a layer. Beyond it use the statevector (up to ~24 wires) or the branch estimator. Random
circuits with long-range wiring lose the ring structure sooner.
"""

from __future__ import annotations

import torch

from circuits.spec import CircuitSpec
from qldm.quantum.compile import CompiledSpec, compile_spec
from qldm.quantum.executor import Executor, Program
from qldm.quantum.tensornet.network import Network, build_network, gate_tensor
from qldm.quantum.tensornet.ring import QffnRing, match_qffn, site_tensors
from qldm.quantum.tensornet.sweep import SweepPlan, plan_sweep, ring_expectations, sweep_flops
from qldm.quantum.tensornet.tree import ContractionPlan, plan_contraction

__all__ = ["TensorNetworkExecutor", "TensorNetworkProgram", "RingSweepProgram"]

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}
_OPTIMIZERS = ("greedy", "random-greedy", "random-greedy-128", "dp", "auto")
_METHODS = ("auto", "sweep", "tree")


class TensorNetworkExecutor(Executor):
    """Exact expectation values by a planned, batched tensor-network contraction.

    Args:
        dtype: ``torch.float32`` (default) or ``torch.float64``; tensors use the matching complex type.
        device: Torch device of the contraction; ``None`` follows the inputs.
        chunk_size: Most tokens contracted at once (the ring sweep keeps about 6e3 floats per token at n = 16).
        max_chunk_elements: Bound on the complex elements one chunk keeps (node values and environments, which
            autograd holds); a deep circuit gets a smaller chunk, so memory stays bounded for any token count.
            The two-layer Q-FFN keeps about 1.7e4 elements per token at n = 16.
        optimize: opt_einsum path optimiser (``random-greedy-128`` finds 2-8x cheaper paths for >= 3 layers,
            at a longer planning time), run once per compiled spec.
        method: ``"auto"`` runs a recognised Q-FFN (:func:`~qldm.quantum.tensornet.ring.match_qffn`, up to four
            layers) as a real transfer-matrix ring (:class:`RingSweepProgram`) and every other circuit as the
            planned complex network (:class:`TensorNetworkProgram`); ``"tree"`` always takes the network;
            ``"sweep"`` requires the ring.

    Raises:
        ValueError: On an unsupported dtype, a non-positive chunk size, an unknown optimiser or method.
    """

    name = "tensornet"
    exact = True

    def __init__(
        self,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = None,
        chunk_size: int = 4096,
        max_chunk_elements: int = 2**25,
        optimize: str = "greedy",
        method: str = "auto",
    ) -> None:
        if dtype not in _COMPLEX:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if int(chunk_size) < 1 or int(max_chunk_elements) < 1:
            raise ValueError(f"chunk_size and max_chunk_elements must be >= 1, got {chunk_size}, {max_chunk_elements}")
        if optimize not in _OPTIMIZERS:
            raise ValueError(f"unknown contraction optimiser {optimize!r}; choose one of {_OPTIMIZERS}")
        if method not in _METHODS:
            raise ValueError(f"unknown tensor-network method {method!r}; choose one of {_METHODS}")
        self.dtype, self.device, self.chunk_size, self.optimize = dtype, device, int(chunk_size), optimize
        self.max_chunk_elements, self.method = int(max_chunk_elements), method

    def describe(self) -> dict:
        return {
            "name": self.name,
            "dtype": str(self.dtype),
            "device": None if self.device is None else str(self.device),
            "chunk_size": self.chunk_size,
            "max_chunk_elements": self.max_chunk_elements,
            "optimize": self.optimize,
            "method": self.method,
        }

    def compile(self, spec: CircuitSpec) -> TensorNetworkProgram | RingSweepProgram:
        """Compile the spec: a recognised Q-FFN to its ring sweep, anything else to a planned network (once).

        The path is planned for this circuit's own network; a circuit whose single token exceeds ``max_chunk_elements``
        under that path is refused rather than run out of memory.

        Raises:
            UnsupportedInstructionError: If the circuit holds an instruction that is not a unitary gate.
            ValueError: If even one token's contraction exceeds ``max_chunk_elements`` (too entangled), or
                ``method="sweep"`` and the spec is not a Q-FFN the sweep takes.
        """
        ring = match_qffn(spec) if self.method != "tree" else None
        sweep = plan_sweep(ring.masks) if ring is not None else None
        if ring is not None and sweep is not None:
            return RingSweepProgram(spec, ring, sweep, self)
        if self.method == "sweep":
            raise ValueError(
                f"{spec.name}: method='sweep' takes only an unmodified qffn_circuit of at most 4 layers; "
                "use method='auto' or 'tree'"
            )
        compiled = compile_spec(spec)
        network = build_network(compiled)
        plan = plan_contraction(network, self.optimize)
        if plan.stored > self.max_chunk_elements:
            raise ValueError(
                f"{spec.name}: too entangled for the tensor network: one token keeps {plan.stored:.1e} elements "
                f"(largest {plan.largest:.1e}) > max_chunk_elements {self.max_chunk_elements:.1e}; "
                "try optimize='random-greedy-128' (slow to plan) or the 'statevector' executor"
            )
        return TensorNetworkProgram(compiled, network, plan, self)


class TensorNetworkProgram(Program):
    """A compiled spec: ``(inputs (B, n_in), weights (n_w,)) -> (B, n_obs)``, differentiable in both.

    Attributes:
        plan: The contraction tree (``plan.flops``, ``plan.largest``, ``plan.stored``: per-token costs).
        chunk_size: Tokens per chunk, ``executor.chunk_size`` capped by ``executor.max_chunk_elements``.
    """

    def __init__(
        self, compiled: CompiledSpec, network: Network, plan: ContractionPlan, executor: TensorNetworkExecutor
    ) -> None:
        chunk = max(1, min(executor.chunk_size, int(executor.max_chunk_elements // plan.stored)))
        super().__init__(compiled.spec, dtype=executor.dtype, device=executor.device, chunk_size=chunk)
        self.compiled, self.network, self.plan, self.cdtype = compiled, network, plan, _COMPLEX[executor.dtype]
        self._const: dict[tuple[torch.dtype, torch.device], dict] = {}  # constant leaves, nodes and factors

    def _constants(self, cdtype: torch.dtype, device: torch.device) -> dict:
        key = (cdtype, device)
        if key not in self._const:
            net = self.network
            gates = {
                g: gate_tensor(gate, None, cdtype).to(device) for g, gate in enumerate(net.gates) if not gate.batched
            }
            leaves = {}
            for i, leaf in enumerate(net.leaves):
                if leaf.const is not None:
                    leaves[i] = torch.as_tensor(leaf.const, dtype=cdtype, device=device)
                elif leaf.gate is not None and leaf.gate in gates:
                    leaves[i] = gates[leaf.gate].conj() if leaf.conj else gates[leaf.gate]
            factors = [[torch.as_tensor(f, dtype=cdtype, device=device) for f in g.factors] for g in net.groups]
            coeffs = torch.as_tensor(net.coeffs, dtype=cdtype, device=device)
            self._const[key] = {"leaves": leaves, "nodes": {}, "factors": factors, "coeffs": coeffs}
        return self._const[key]

    def _run(self, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        net, cdtype = self.network, self.cdtype
        const = self._constants(cdtype, inputs.device)
        angles = self.compiled.angles(inputs, weights)  # (B, A)
        batch = inputs.shape[0]
        gates = {  # per-token gates (B, legs...), weight-only gates evaluated once (legs...)
            g: gate_tensor(gate, angles, cdtype) if gate.per_token else gate_tensor(gate, angles[:1], cdtype)[0]
            for g, gate in enumerate(net.gates)
            if gate.batched
        }
        leaves = []
        for i, leaf in enumerate(net.leaves):
            if i in const["leaves"]:
                leaves.append(const["leaves"][i])  # constant (2, ...) tensor
            elif leaf.batch_ones:
                leaves.append(torch.ones(batch, dtype=cdtype, device=inputs.device))  # (B,)
            else:
                t = gates[leaf.gate]  # ([B,] legs...)
                leaves.append(t.conj() if leaf.conj else t)
        values = self.plan.forward(leaves, const["nodes"])  # every node, root (B,) = Tr(rho) = 1
        terms = self.plan.terms(values, const["factors"], len(net.coeffs))  # (B, n_terms)
        if net.identity_terms:
            terms[:, list(net.identity_terms)] = values[-1][:, None]
        return (terms @ const["coeffs"]).real  # (B, n_obs)


class RingSweepProgram(Program):
    """A recognised Q-FFN as a ring of real ``D x D`` transfer matrices (:mod:`qldm.quantum.tensornet.ring`).

    The weight part of the site tensors is built once per call (differentiable, by autograd) and every chunk runs
    :func:`~qldm.quantum.tensornet.sweep.ring_expectations`, whose backward is hand-written.

    Attributes:
        ring: The recognised circuit (sites, layers, ancilla mode, readout masks).
        sweep: Which close each output takes.
        flops_per_token: Real flops of one token's forward+backward (:func:`~qldm.quantum.tensornet.sweep.sweep_flops`).
    """

    def __init__(self, spec: CircuitSpec, ring: QffnRing, sweep: SweepPlan, executor: TensorNetworkExecutor) -> None:
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
