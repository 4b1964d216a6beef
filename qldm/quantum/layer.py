"""``QuantumLayer``: a spec and an injected executor as an ``nn.Module`` with trainable circuit weights."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from circuits.spec import CircuitSpec
from qldm.quantum.executor import Executor
from qldm.quantum.registry import make_executor

__all__ = ["QuantumLayer"]


class QuantumLayer(nn.Module):
    """Expectation values of a parametrized circuit as a differentiable layer.

    ``forward`` maps ``x (..., n_inputs) -> (..., n_outputs)``: all leading dimensions are flattened into one batch
    that the executor runs (in chunks), so every token of a batch goes through the circuit together.

    Args:
        spec: The circuit.
        executor: An :class:`Executor`, or a registry name (``"statevector"``, ``"tensornet"``, ...).
        init: Weight initialisation. ``"uniform"``: U[0, 2*pi), as the original implementation and the
            barren-plateau experiments. ``"small"``: N(0, init_scale^2), near-identity rotations that keep
            gradients and output spread large at any width.
        init_scale: Standard deviation for ``init="small"``.

    Attributes:
        weight: ``nn.Parameter`` of shape ``(spec.num_weights,)``, ordered like ``spec.weight_params``.

    Raises:
        ValueError: On an unknown executor name or init.
    """

    def __init__(
        self,
        spec: CircuitSpec,
        *,
        executor: Executor | str = "statevector",
        init: Literal["uniform", "small"] = "uniform",
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.executor = make_executor(executor) if isinstance(executor, str) else executor
        self.program = self.executor.compile(spec)
        if init == "uniform":
            w = torch.rand(spec.num_weights) * 2 * math.pi
        elif init == "small":
            w = torch.randn(spec.num_weights) * init_scale
        else:
            raise ValueError(f"unknown init {init!r}; choose 'uniform' or 'small'")
        self.weight = nn.Parameter(w)

    def set_executor(self, executor: Executor | str) -> None:
        """Swap the executor (e.g. exact training, then hardware at sampling); the weights stay."""
        self.executor = make_executor(executor) if isinstance(executor, str) else executor
        self.program = self.executor.compile(self.spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., n_inputs) -> (..., n_outputs)``.

        Raises:
            ValueError: If the last dimension is not ``spec.num_inputs`` or ``x`` holds NaN/inf.
        """
        if x.dim() == 0 or x.shape[-1] != self.spec.num_inputs:
            raise ValueError(
                f"QuantumLayer({self.spec.name}) expects last dimension {self.spec.num_inputs}, "
                f"got shape {tuple(x.shape)}"
            )
        lead = x.shape[:-1]
        flat = x.reshape(-1, self.spec.num_inputs)  # (B, n_in)
        # complex simulation stays in full precision, outside any autocast region
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = self.program(flat.float() if flat.dtype in (torch.float16, torch.bfloat16) else flat, self.weight)
        return out.to(x.dtype).reshape(*lead, self.spec.num_outputs)  # (..., n_out)

    def extra_repr(self) -> str:
        return f"spec={self.spec.name}, executor={self.executor!r}"
