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
    ) -> None:
        super().__init__()
        hidden = ff_mult * d_model
        self.ffn = nn.Sequential(
            nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_model)
        )
        self.pre = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, n_qubits))
        spec = qffn_circuit(n_qubits, n_layers=n_layers, ancillas=ancillas, readout=readout)
        self.quantum = QuantumLayer(spec, executor=executor, init=weight_init)
        self.post = nn.Sequential(nn.Linear(n_qubits, hidden), nn.GELU(), nn.Linear(hidden, d_model))
        self.gate = nn.Parameter(torch.tensor(float(gate_init)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, L, d) -> (B, L, d)`` (any leading shape works)."""
        classical = self.ffn(x)  # (B, L, d)
        z = self.pre(x)  # (B, L, n)   raw features; the circuit applies atan
        q = self.quantum(z)  # (B, L, n)   <Z_i> in [-1, 1]
        return classical + self.gate * self.post(q)  # (B, L, d)

    def quantum_branch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(pre(x), Q(pre(x)))`` for feature-map analysis, shapes ``(..., n)`` each."""
        z = self.pre(x)
        return z, self.quantum(z)
