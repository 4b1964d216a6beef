"""``QuantumLayer``: a spec and an injected executor as an ``nn.Module`` with trainable circuit weights."""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from circuits.spec import CircuitSpec
from qldm.quantum.executor import Executor

__all__ = ["QuantumLayer"]


class QuantumLayer(nn.Module):
    """Expectation values of a parametrized circuit as a differentiable layer.

    ``forward`` maps ``x (..., n_inputs) -> (..., n_outputs)``: all leading dimensions are flattened into one batch
    that the executor runs (in chunks), so every token of a batch goes through the circuit together.

    Args:
        spec: The circuit.
        executor: The :class:`Executor` instance that runs the circuit (build one by name with
            :func:`qldm.quantum.make_executor`).
        init: Weight initialisation. ``"uniform"``: U[0, 2*pi), as the original implementation and the
            barren-plateau experiments. ``"small"``: N(0, init_scale^2), near-identity rotations that keep
            gradients and output spread large at any width.
        init_scale: Standard deviation for ``init="small"``.

    Attributes:
        weight: ``nn.Parameter`` of shape ``(spec.num_weights,)``, ordered like ``spec.weight_params``.

    Raises:
        TypeError: If ``executor`` is not an :class:`Executor` instance.
        ValueError: On an unknown init, or a spec the executor refuses (:meth:`Executor.check_spec`).
    """

    def __init__(
        self,
        spec: CircuitSpec,
        *,
        executor: Executor,
        init: Literal["uniform", "small"] = "uniform",
        init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.spec = spec
        self.set_executor(executor)
        if init == "uniform":
            w = torch.rand(spec.num_weights) * 2 * math.pi
        elif init == "small":
            w = torch.randn(spec.num_weights) * init_scale
        else:
            raise ValueError(f"unknown init {init!r}; choose 'uniform' or 'small'")
        self.weight = nn.Parameter(w)

    def set_executor(self, executor: Executor) -> None:
        """Swap the executor (e.g. exact training, then hardware at sampling); the weights stay.

        Raises:
            TypeError: If ``executor`` is not an :class:`Executor` instance.
        """
        if not isinstance(executor, Executor):
            raise TypeError(
                f"QuantumLayer needs an Executor instance, got {executor!r}; build one with qldm.quantum.make_executor"
            )
        self.executor = executor
        self.program = executor.compile(self.spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (..., n_inputs) -> (..., n_outputs)``.

        Raises:
            ValueError: If the last dimension is not ``spec.num_inputs`` or ``x`` holds NaN/inf (the program checks).
        """
        lead = x.shape[:-1]
        flat = x.reshape(-1, x.shape[-1] if x.dim() else 1)  # (B, n_in)
        # complex simulation stays in full precision, outside any autocast region
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = self.program(flat.float() if flat.dtype in (torch.float16, torch.bfloat16) else flat, self.weight)
        return out.to(x.dtype).reshape(*lead, self.spec.num_outputs)  # (..., n_out)

    def extra_repr(self) -> str:
        return f"spec={self.spec.name}, executor={self.executor!r}"
