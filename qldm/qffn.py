"""The quantum feed-forward layer (Q-FFN) and its config.

Two modes. ``parallel`` is the seed's design, ``y = FFN(x) + lambda * post(Q(atan(pre(x))))``: the classical FFN
and the quantum branch run side by side on the same (already layer-normed) tokens. ``quantum-only`` puts the circuit
on the critical path, ``y = post(Q(atan(pre(x))))``: no classical FFN beside it and no lambda. The arctan is the
circuit's own encoding (``RY(atan(x_i))``), so ``pre`` hands raw features to Q.

Every slot that holds a circuit (this FFN, the quanvolution of :mod:`qldm.quanv`) is a :class:`CircuitSlot`:
``pre -> core -> post``, where the n -> n core is the circuit or one of its twins (``QFFNConfig.branch``): the
classical twin (an n -> n tanh MLP with as many parameters as the built circuit layer) or the no-circuit twin (the
encoding's nonlinearity alone, ``atan``). So "quantum against classical of the same place and size" and "does the
circuit add anything beyond a nonlinearity" are each one config switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from circuits.qffn import AncillaMode, Readout, qffn_circuit
from circuits.spec import CircuitSpec
from qldm.config_io import bounded, check_fields
from qldm.quantum.executor import Executor, config_fields
from qldm.quantum.layer import QuantumLayer
from qldm.quantum.registry import EXECUTORS, executor_class, make_executor

__all__ = ["QFFNConfig", "QuantumFeedForward", "CircuitSlot", "ClassicalTwin", "make_core", "twin_shape"]


@dataclass(frozen=True)
class QFFNConfig:
    """One Q-FFN: its circuit, the ablation branch, the gate, and the executor that runs the circuit.

    Attributes:
        n_qubits: Data qubits n (features into and out of the circuit).
        n_layers: Circuit layers (see ``circuits.qffn_circuit``).
        ancillas: Ancilla mode of the circuit (``"per-qubit"``, ``"shared"``, ``"none"``).
        readout: ``"ring"`` (original) or ``"local"``.
        mode: ``"parallel"`` (the seed's design: classical FFN plus lambda times the branch) or ``"quantum-only"``
            (the block's FFN is the branch alone, ``post(Q(atan(pre(x))))``, with no lambda).
        branch: What fills the n -> n core. ``"quantum"`` (the circuit), ``"mlp"`` (the classical twin: an n -> n
            tanh MLP with as many parameters as the built circuit layer, see :func:`twin_shape`), ``"nocircuit"``
            (the no-circuit twin: ``atan(pre(x))`` straight into ``post``, the encoding's nonlinearity alone),
            ``"shuffled"`` (the circuit's outputs permuted across tokens, which keeps their distribution but breaks
            the token correspondence).
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
    mode: Literal["parallel", "quantum-only"] = "parallel"
    branch: Literal["quantum", "mlp", "nocircuit", "shuffled"] = "quantum"
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
        """Whether a circuit runs (the ``mlp`` and ``nocircuit`` twins replace it)."""
        return self.branch in ("quantum", "shuffled")

    @property
    def has_gate(self) -> bool:
        """Whether a lambda scales the branch (only beside a classical FFN, ``mode="parallel"``)."""
        return self.mode == "parallel"

    def spec(self) -> CircuitSpec:
        """The circuit this config describes."""
        return qffn_circuit(self.n_qubits, n_layers=self.n_layers, ancillas=self.ancillas, readout=self.readout)

    def executor_options(self) -> dict[str, Any]:
        """Constructor keywords of ``executor`` from the ``executor_*`` / ``branch_*`` / ``tn_*`` fields.

        Unset options (None) are left out, so the executor's own default applies.
        """
        # the executor's options dataclass names the config field of each option (``option(..., config=...)``)
        fields = config_fields(executor_class(self.executor)) if self.executor in EXECUTORS else {}
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


def twin_shape(n: int, target: int) -> tuple[int, bool, bool]:
    """Hidden width and biases of the n -> h -> n classical twin whose parameter count is closest to ``target``.

    The count is ``2 n h + h * hidden_bias + n * out_bias``; bias flags give the fine steps that whole hidden units
    cannot (a 16-qubit, 2-layer circuit's 96 weights are matched exactly by ``h = 3`` without biases).

    Returns:
        ``(h, hidden_bias, out_bias)``.

    Raises:
        ValueError: If ``n`` or ``target`` is not positive.
    """
    if n < 1 or target < 1:
        raise ValueError(f"twin_shape needs n >= 1 and target >= 1, got n={n}, target={target}")
    candidates = [(h, hb, ob) for h in range(1, target // (2 * n) + 2) for hb in (False, True) for ob in (False, True)]
    return min(candidates, key=lambda c: (abs(2 * n * c[0] + c[0] * c[1] + n * c[2] - target), -c[1] - c[2]))


class ClassicalTwin(nn.Sequential):
    """The classical twin of an n-qubit circuit: ``tanh(W2 tanh(W1 z + b1) + b2)``, outputs in (-1, 1) like <Z>.

    Args:
        n: Inputs and outputs (the circuit's data qubits).
        target: Parameters to match (counted on the built circuit layer).
    """

    def __init__(self, n: int, *, target: int) -> None:
        h, hidden_bias, out_bias = twin_shape(n, target)
        super().__init__(nn.Linear(n, h, bias=hidden_bias), nn.Tanh(), nn.Linear(h, n, bias=out_bias), nn.Tanh())


class _Atan(nn.Module):
    """The no-circuit twin: the encoding's nonlinearity alone (the circuit's ``RY(atan x)`` without the circuit)."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.atan(z)  # (..., n)


def make_core(config: QFFNConfig, executor: Executor | None = None) -> nn.Module:
    """The n -> n core that ``config.branch`` names: the circuit layer, its classical twin or the no-circuit twin.

    The classical twin's width comes from counting the parameters of the circuit layer that ``config`` builds.

    Raises:
        ValueError: On an invalid config, or an executor that cannot run the circuit.
    """
    spec = config.spec()
    if config.branch == "nocircuit":
        return _Atan()
    if config.branch == "mlp":
        # the circuit layer's trainable parameters are its weight vector (counted on the spec, no executor built)
        return ClassicalTwin(config.n_qubits, target=spec.num_weights)
    executor = config.make_executor() if executor is None else executor
    return QuantumLayer(spec, executor=executor, init=config.weight_init)


class CircuitSlot(nn.Module):
    """A place in a model that holds a circuit (or one of its twins): ``pre -> core -> post``.

    Subclasses build ``pre`` and ``post`` for their own shapes. ``core`` maps ``(..., L, n) -> (..., L, n)`` over the
    L tokens (or patches) of each image, which is where inference ablations hook in (:mod:`qldm.eval.ablation`).

    Attributes:
        config: The :class:`QFFNConfig` of the core.
        quantum: The core (a :class:`QuantumLayer`, :class:`ClassicalTwin` or the ``atan`` twin).
        branch: ``config.branch``.
    """

    config: QFFNConfig
    quantum: nn.Module
    branch: str

    def _init_core(self, config: QFFNConfig, executor: Executor | None) -> None:
        config.validate(check_executor=False)
        self.config, self.branch = config, config.branch
        self.quantum = make_core(config, executor)

    @property
    def circuit(self) -> QuantumLayer | None:
        """The circuit layer, or None for a twin."""
        return self.quantum if isinstance(self.quantum, QuantumLayer) else None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The core's inputs ``(B, L, n)`` for the slot's input ``x`` (``pre`` in token layout)."""
        raise NotImplementedError

    def quantum_branch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(pre(x), Q(pre(x)))`` in token layout for feature-map analysis, shapes ``(B, L, n)`` each."""
        z = self.features(x)
        return z, self._q(z)

    def _q(self, z: torch.Tensor) -> torch.Tensor:
        q = self.quantum(z)  # (..., n)
        if self.branch == "shuffled":
            flat = q.reshape(-1, q.shape[-1])  # (T, n)
            perm = torch.randperm(flat.shape[0], device=flat.device)  # global RNG: checkpoint-safe
            q = flat[perm].reshape(q.shape)
        return q


class QuantumFeedForward(CircuitSlot):
    """Feed-forward block with a quantum branch: beside a classical FFN (``parallel``) or alone (``quantum-only``).

    Args:
        d_model: Token width d.
        config: The Q-FFN settings (mode, circuit, branch, gate, weight init).
        executor: Runs the circuit; None builds the one ``config`` names. A U-Net passes one instance to all
            its blocks. Unused by the twins.
        ff_mult: Hidden width multiplier of the FFN and of ``post``.
        dropout: Dropout after the FFN's activation.

    Attributes:
        ffn: The classical FFN (None in ``quantum-only`` mode).
        gate: Scalar lambda, an ``nn.Parameter`` (or a buffer when ``config.gate_trainable`` is False); None in
            ``quantum-only`` mode.

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
        n, hidden = config.n_qubits, ff_mult * d_model
        self.ffn: nn.Module | None = None
        if config.has_gate:
            self.ffn = nn.Sequential(
                nn.Linear(d_model, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, d_model)
            )
        self.pre = nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, n))
        self._init_core(config, executor)
        self.post = nn.Sequential(nn.Linear(n, hidden), nn.GELU(), nn.Linear(hidden, d_model))
        gate = torch.tensor(float(config.gate_init)) if config.has_gate else None
        if gate is not None and config.gate_trainable:
            self.gate = nn.Parameter(gate)
        else:
            self.register_buffer("gate", gate)  # a fixed lambda, or None (quantum-only: no lambda at all)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, L, d) -> (B, L, d)`` (any leading shape works)."""
        z = self.pre(x)  # (B, L, n)   raw features; the circuit applies atan
        q = self._q(z)  # (B, L, n)   <Z_i> in [-1, 1] (or a twin's output)
        branch = self.post(q)  # (B, L, d)
        if self.ffn is None:
            return branch  # quantum-only: the circuit is the block's whole FFN
        return self.ffn(x) + self.gate * branch  # (B, L, d)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.pre(x)  # (B, L, d) -> (B, L, n)
