"""The quantum feed-forward layer (Q-FFN): ``y = FFN(x) + lambda * post(Q(atan(pre(x))))``.

The classical FFN and the quantum branch run in parallel on the same (already layer-normed) tokens, as in the
original design. The arctan is the circuit's own encoding (``RY(atan(x_i))``), so ``pre`` hands raw features to Q.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from circuits.qffn import qffn_circuit
from qldm.quantum.executor import Executor
from qldm.quantum.layer import QuantumLayer
from qldm.quantum.registry import make_executor

__all__ = ["QuantumFeedForward"]


class QuantumFeedForward(nn.Module):
    """Feed-forward block with a parallel quantum branch gated by a learnable scalar.

    Args:
        d_model: Token width d.
        n_qubits: Data qubits n (features into and out of the circuit).
        n_layers: Circuit layers.
        ancillas: Ancilla mode of the circuit (``"per-qubit"``, ``"shared"``, ``"none"``).
        readout: ``"ring"`` (original) or ``"local"``.
        executor: Executor instance or registry name.
        ff_mult: Hidden width multiplier of the FFN and of ``post``.
        dropout: Dropout after the FFN's activation.
        gate_init: Initial lambda (0.1, as the original).
        weight_init: Circuit weight initialisation (see :class:`QuantumLayer`).
        branch: Ablation controls that isolate the circuit. ``"quantum"`` (the model), ``"mlp"`` (Q replaced by a
            classical n -> n tanh MLP with about as many parameters as the circuit), ``"shuffled"`` (the circuit's
            outputs permuted across tokens, which keeps their distribution but breaks the token correspondence).
        gate_trainable: If False, lambda is a fixed buffer (``gate_init=0`` then gives the "lambda = 0" control).

    Attributes:
        gate: ``nn.Parameter`` scalar lambda.
    """

    def __init__(
        self,
        d_model: int,
        n_qubits: int,
        *,
        n_layers: int = 2,
        ancillas: Literal["per-qubit", "shared", "none"] = "per-qubit",
        readout: Literal["ring", "local"] = "ring",
        executor: Executor | str = "statevector",
        ff_mult: int = 4,
        dropout: float = 0.0,
        gate_init: float = 0.1,
        weight_init: Literal["uniform", "small"] = "uniform",
        branch: Literal["quantum", "mlp", "shuffled"] = "quantum",
        gate_trainable: bool = True,
    ) -> None:
        super().__init__()
        hidden = ff_mult * d_model
        self.ffn = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_model))
        self.pre = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, n_qubits))
        spec = qffn_circuit(n_qubits, n_layers=n_layers, ancillas=ancillas, readout=readout)
        if branch not in ("quantum", "mlp", "shuffled"):
            raise ValueError(f"unknown branch {branch!r}; choose 'quantum', 'mlp' or 'shuffled'")
        self.branch = branch
        if branch == "mlp":
            # as many parameters as the circuit: h(2n+1) + n ~= num_weights
            h = max(1, round((spec.num_weights - n_qubits) / (2 * n_qubits + 1)))
            self.quantum = nn.Sequential(nn.Linear(n_qubits, h), nn.Tanh(), nn.Linear(h, n_qubits), nn.Tanh())
        else:
            executor = make_executor(executor) if isinstance(executor, str) else executor
            self.quantum = QuantumLayer(spec, executor=executor, init=weight_init)
        self.post = nn.Sequential(nn.Linear(n_qubits, hidden), nn.GELU(), nn.Linear(hidden, d_model))
        if gate_trainable:
            self.gate = nn.Parameter(torch.tensor(float(gate_init)))
        else:
            self.register_buffer("gate", torch.tensor(float(gate_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, L, d) -> (B, L, d)`` (any leading shape works)."""
        classical = self.ffn(x)  # (B, L, d)
        z = self.pre(x)  # (B, L, n)   raw features; the circuit applies atan
        q = self._q(z)  # (B, L, n)   <Z_i> in [-1, 1]
        return classical + self.gate * self.post(q)  # (B, L, d)

    def quantum_branch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(pre(x), Q(pre(x)))`` for feature-map analysis, shapes ``(..., n)`` each."""
        z = self.pre(x)
        return z, self._q(z)

    def _q(self, z: torch.Tensor) -> torch.Tensor:
        q = self.quantum(z)  # (..., n)
        if self.branch == "shuffled":
            flat = q.reshape(-1, q.shape[-1])  # (T, n)
            perm = torch.randperm(flat.shape[0], device=flat.device)  # global RNG: checkpoint-safe
            q = flat[perm].reshape(q.shape)
        return q
