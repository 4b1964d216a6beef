"""Exact expectation values by contracting the circuit as a ket-and-bra tensor network, batched over tokens.

This executor runs every circuit as the general network, the Q-FFN included; an unmodified Q-FFN runs much faster
on the ``ring`` executor (:mod:`qldm.quantum.tensornet.ring_executor`), which a config must name: this one never
switches to it, so the path that runs is always the one named.

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

from dataclasses import dataclass

import torch

from circuits.spec import CircuitSpec
from qldm.quantum.compile import CompiledSpec, compile_spec
from qldm.quantum.executor import Executor, Program, option
from qldm.quantum.tensornet.network import Network, build_network, gate_tensor
from qldm.quantum.tensornet.tree import ContractionPlan, plan_contraction

__all__ = ["TensorNetworkExecutor", "TensorNetworkOptions", "TensorNetworkProgram"]

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}
_OPTIMIZERS = ("greedy", "random-greedy", "random-greedy-128", "dp", "auto")


@dataclass(frozen=True)
class TensorNetworkOptions:
    """Constructor options of :class:`TensorNetworkExecutor` (see there)."""

    dtype: torch.dtype = option(torch.float32, config="executor_dtype")
    device: str | torch.device | None = option(None)
    chunk_size: int = option(4096, config="executor_chunk_size")
    max_chunk_elements: int = option(2**25)
    optimize: str = option("greedy", config="tn_optimize")


class TensorNetworkExecutor(Executor):
    """Exact expectation values by a planned, batched tensor-network contraction.

    Args:
        dtype: ``torch.float32`` (default) or ``torch.float64``; tensors use the matching complex type.
        device: Torch device of the contraction; ``None`` follows the inputs.
        chunk_size: Most tokens contracted at once.
        max_chunk_elements: Bound on the complex elements one chunk keeps (node values and environments, which
            autograd holds); a deep circuit gets a smaller chunk, so memory stays bounded for any token count.
            The two-layer Q-FFN keeps about 1.7e4 elements per token at n = 16.
        optimize: opt_einsum path optimiser (``random-greedy-128`` finds 2-8x cheaper paths for >= 3 layers,
            at a longer planning time), run once per compiled spec.

    Raises:
        ValueError: On an unsupported dtype, a non-positive chunk size or an unknown optimiser.
    """

    name = "tensornet"
    exact = True
    Options = TensorNetworkOptions

    def __init__(
        self,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device | None = None,
        chunk_size: int = 4096,
        max_chunk_elements: int = 2**25,
        optimize: str = "greedy",
    ) -> None:
        if dtype not in _COMPLEX:
            raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
        if int(chunk_size) < 1 or int(max_chunk_elements) < 1:
            raise ValueError(f"chunk_size and max_chunk_elements must be >= 1, got {chunk_size}, {max_chunk_elements}")
        if optimize not in _OPTIMIZERS:
            raise ValueError(f"unknown contraction optimiser {optimize!r}; choose one of {_OPTIMIZERS}")
        self.dtype, self.device, self.chunk_size, self.optimize = dtype, device, int(chunk_size), optimize
        self.max_chunk_elements = int(max_chunk_elements)
        self.options = TensorNetworkOptions(dtype, device, self.chunk_size, self.max_chunk_elements, optimize)

    def compile(self, spec: CircuitSpec) -> TensorNetworkProgram:
        """Compile the spec to a planned network (once), whatever the circuit.

        The path is planned for this circuit's own network; a circuit whose single token exceeds ``max_chunk_elements``
        under that path is refused rather than run out of memory.

        Raises:
            UnsupportedInstructionError: If the circuit holds an instruction that is not a unitary gate.
            ValueError: If even one token's contraction exceeds ``max_chunk_elements`` (too entangled).
        """
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
