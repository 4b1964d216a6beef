"""The quantum feed-forward layer (Q-FFN): ``y = FFN(x) + lambda * post(Q(atan(pre(x))))``, and its config.

The classical FFN and the quantum branch run in parallel on the same (already layer-normed) tokens, as in the
original design. The arctan is the circuit's own encoding (``RY(atan(x_i))``), so ``pre`` hands raw features to Q.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from circuits.qffn import AncillaMode, Readout, qffn_circuit
from circuits.spec import CircuitSpec
from qldm.config_io import bounded, check_fields
from qldm.quantum.executor import Executor
from qldm.quantum.layer import QuantumLayer
from qldm.quantum.registry import EXECUTORS, make_executor

__all__ = ["QFFNConfig", "QuantumFeedForward"]

# constructor keyword of each executor -> the QFFNConfig field that sets it (the one place they are mapped)
_EXECUTOR_OPTIONS: dict[str, dict[str, str]] = {
    "statevector": {"dtype": "executor_dtype", "chunk_size": "executor_chunk_size"},
    "tensornet": {"dtype": "executor_dtype", "chunk_size": "executor_chunk_size", "optimize": "tn_optimize"},
    "branch": {"dtype": "executor_dtype", "chunk_size": "executor_chunk_size", "samples": "branch_samples"},
    "aer": {"chunk_size": "executor_chunk_size"},
}


@dataclass(frozen=True)
class QFFNConfig:
    """One Q-FFN: its circuit, the ablation branch, the gate, and the executor that runs the circuit.

    Attributes:
        n_qubits: Data qubits n (features into and out of the circuit).
        n_layers: Circuit layers (see ``circuits.qffn_circuit``).
        ancillas: Ancilla mode of the circuit (``"per-qubit"``, ``"shared"``, ``"none"``).
        readout: ``"ring"`` (original) or ``"local"``.
        branch: Ablation controls that isolate the circuit. ``"quantum"`` (the model), ``"mlp"`` (Q replaced by a
            classical n -> n tanh MLP with about as many parameters as the circuit), ``"shuffled"`` (the circuit's
            outputs permuted across tokens, which keeps their distribution but breaks the token correspondence).
        gate_init: Initial lambda (0.1, as the original).
        gate_trainable: If False, lambda is a fixed buffer (``gate_init=0`` then gives the "lambda = 0" control).
        weight_init: Circuit weight initialisation (see :class:`QuantumLayer`).
        executor: Registry name of the executor (``qldm.quantum.registry.EXECUTORS``, which checks the name).
        executor_dtype: Real precision of the simulation.
        executor_chunk_size: Tokens per executor chunk; None keeps the executor's own default.
        branch_samples: Ancilla branches K sampled per token by the ``branch`` executor.
        tn_optimize: Contraction-order optimiser of the ``tensornet`` executor (it checks the name).

    Options that do not apply to the chosen executor are ignored (see :meth:`executor_options`).
    """

    n_qubits: int = bounded(4, ge=1)
    n_layers: int = bounded(2, ge=1)
    ancillas: AncillaMode = "per-qubit"
    readout: Readout = "ring"
    branch: Literal["quantum", "mlp", "shuffled"] = "quantum"
    gate_init: float = 0.1
    gate_trainable: bool = True
    weight_init: Literal["uniform", "small"] = "uniform"
    executor: str = "statevector"
    executor_dtype: Literal["float32", "float64"] = "float32"
    executor_chunk_size: int | None = bounded(None, ge=1)
    branch_samples: int = bounded(1, ge=1)
    tn_optimize: str = "greedy"

    @property
    def uses_circuit(self) -> bool:
        """Whether a circuit runs (the ``mlp`` control replaces it)."""
        return self.branch != "mlp"

    def spec(self) -> CircuitSpec:
        """The circuit this config describes."""
        return qffn_circuit(self.n_qubits, n_layers=self.n_layers, ancillas=self.ancillas, readout=self.readout)

    def executor_options(self) -> dict[str, Any]:
        """Constructor keywords of ``executor`` from the ``executor_*`` / ``branch_*`` / ``tn_*`` fields.

        Unset options (None) are left out, so the executor's own default applies.
        """
        fields = _EXECUTOR_OPTIONS.get(self.executor, {})
        options = {kwarg: getattr(self, name) for kwarg, name in fields.items()}
        return {k: v for k, v in options.items() if v is not None}

    def make_executor(self) -> Executor:
        """Build the configured executor.

        Raises:
            ValueError: On an unknown executor name or a bad option.
        """
        return make_executor(self.executor, **self.executor_options())

    def validate(self, *, check_executor: bool = True) -> QFFNConfig:
        """Check every field; returns ``self``.

        Args:
            check_executor: Also build the executor and ask it whether it can run the circuit (its width limit).

        Raises:
            ValueError: Naming the first bad field (as ``qffn.<field>``) and what would be valid.
        """
        check_fields(self, prefix="qffn.")  # choices, types (floats finite) and the declared ranges
        if self.executor not in EXECUTORS:  # the registry is the one list of executor names
            raise ValueError(f"qffn.executor={self.executor!r} is not one of {sorted(EXECUTORS)}")
        if check_executor:
            executor = self.make_executor()
            spec = self.spec()
            try:
                executor.check_spec(spec)
            except ValueError as err:
                raise ValueError(
                    f"qffn.n_qubits={self.n_qubits} with ancillas={self.ancillas!r} needs {spec.num_qubits} wires; "
                    f"{err}"
                ) from None
        return self


class QuantumFeedForward(nn.Module):
    """Feed-forward block with a parallel quantum branch gated by a learnable scalar.

    Args:
        d_model: Token width d.
        config: The Q-FFN settings (circuit, branch, gate, weight init).
        executor: Runs the circuit; None builds the one ``config`` names. A U-Net passes one instance to all
            its blocks. Unused by the ``mlp`` branch.
        ff_mult: Hidden width multiplier of the FFN and of ``post``.
        dropout: Dropout after the FFN's activation.

    Attributes:
        gate: Scalar lambda, an ``nn.Parameter`` (or a buffer when ``config.gate_trainable`` is False).

    Raises:
        ValueError: On an invalid config.
    """

    def __init__(
        self,
        d_model: int,
        *,
        config: QFFNConfig,
        executor: Executor | None = None,
        ff_mult: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        config.validate(check_executor=False)
        self.config = config
        n, hidden = config.n_qubits, ff_mult * d_model
        self.ffn = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_model))
        self.pre = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, n))
        spec = config.spec()
        self.branch = config.branch
        if config.branch == "mlp":
            # as many parameters as the circuit: h(2n+1) + n ~= num_weights
            h = max(1, round((spec.num_weights - n) / (2 * n + 1)))
            self.quantum = nn.Sequential(nn.Linear(n, h), nn.Tanh(), nn.Linear(h, n), nn.Tanh())
        else:
            executor = config.make_executor() if executor is None else executor
            self.quantum = QuantumLayer(spec, executor=executor, init=config.weight_init)
        self.post = nn.Sequential(nn.Linear(n, hidden), nn.GELU(), nn.Linear(hidden, d_model))
        if config.gate_trainable:
            self.gate = nn.Parameter(torch.tensor(float(config.gate_init)))
        else:
            self.register_buffer("gate", torch.tensor(float(config.gate_init)))

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
