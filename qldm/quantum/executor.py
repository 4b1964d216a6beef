"""The executor interface: how a :class:`CircuitSpec` becomes a differentiable torch function.

An executor is configured once (precision, device, chunking, shots...) and injected into a ``QuantumLayer``. Its
:meth:`Executor.compile` returns a :class:`Program`, a callable ``(inputs (B, n_in), weights (n_w,)) -> (B, n_obs)``
that supports autograd to both arguments. Stochastic executors draw their randomness from torch's global RNG, which
gradient checkpointing restores before a recompute, so recomputed forward passes reuse the same random draws.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Protocol

import torch

from circuits.spec import CircuitSpec

__all__ = ["Executor", "Program", "check_inputs"]


class Program(Protocol):
    """A compiled spec: ``(inputs (B, n_in), weights (n_w,)) -> expectations (B, n_obs)``, differentiable."""

    spec: CircuitSpec

    def __call__(self, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor: ...


class Executor(ABC):
    """Base class of every executor (exact torch, tensor network, branch Monte Carlo, Aer, IBM runtime).

    Attributes:
        name: Registry name of the executor.
        exact: Whether results equal the exact expectation values up to floating-point error.
    """

    name: ClassVar[str] = "executor"
    exact: ClassVar[bool] = True

    def check_spec(self, spec: CircuitSpec) -> None:
        """Refuse a spec this executor cannot run, before any work (the only place width limits live).

        Raises:
            ValueError: One line naming the limit and an executor that can run the spec.
        """
        return None  # no limit by default

    @abstractmethod
    def compile(self, spec: CircuitSpec) -> Program:
        """Prepare ``spec`` for repeated execution.

        Raises:
            UnsupportedInstructionError: If the spec holds an instruction this executor cannot run.
        """

    def describe(self) -> dict:
        """A JSON-able description of the executor and its options, stored with results and checkpoints."""
        return {"name": self.name}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "name")
        return f"{type(self).__name__}({opts})"


def check_inputs(spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor) -> None:
    """Validate shapes and finiteness before execution.

    Raises:
        ValueError: On a wrong feature width, a wrong weight count, or NaN/inf values, naming the problem.
    """
    if inputs.dim() != 2 or inputs.shape[1] != spec.num_inputs:
        raise ValueError(f"{spec.name}: expected inputs of shape (batch, {spec.num_inputs}), got {tuple(inputs.shape)}")
    if weights.shape != (spec.num_weights,):
        raise ValueError(f"{spec.name}: expected {spec.num_weights} weights, got shape {tuple(weights.shape)}")
    if not torch.isfinite(inputs).all():
        bad = (~torch.isfinite(inputs)).sum().item()
        raise ValueError(f"{spec.name}: inputs contain {bad} NaN/inf value(s)")
    if not torch.isfinite(weights).all():
        raise ValueError(f"{spec.name}: weights contain NaN/inf values")
