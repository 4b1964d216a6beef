"""The executor interface: how a :class:`CircuitSpec` becomes a differentiable torch function.

An executor is configured once (precision, device, chunking, shots...) and injected into a ``QuantumLayer``. Its
:meth:`Executor.compile` returns a :class:`Program`, a callable ``(inputs (B, n_in), weights (n_w,)) -> (B, n_obs)``
that supports autograd to both arguments. Every program shares one template (:meth:`Program.__call__`): it validates
the arguments once, casts them to the program's dtype and device, answers an empty batch, splits the batch into
chunks and calls the program's own :meth:`Program._run` per chunk. Stochastic executors draw their randomness from
torch's global RNG, which gradient checkpointing restores before a recompute, so recomputed forward passes reuse the
same random draws.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import torch

from circuits.spec import CircuitSpec

__all__ = ["Executor", "Program", "check_inputs", "option", "config_fields", "debug_checks"]


def debug_checks() -> bool:
    """Whether the finiteness checks run: each costs a host sync per call, so only under ``QLDM_DEBUG=1``."""
    return os.environ.get("QLDM_DEBUG") == "1"


def option(default: Any, *, config: str | None = None) -> Any:
    """A field of an executor's options dataclass.

    Args:
        default: The constructor's default.
        config: The :class:`~qldm.qffn.QFFNConfig` field that sets this option, if a config may set it.
    """
    return field(default=default, metadata={"config": config} if config else {})


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.dtype | torch.device):
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


@dataclass(frozen=True)
class NoOptions:
    """Options of an executor without constructor options."""


def config_fields(executor: type[Executor]) -> dict[str, str]:
    """Constructor keyword -> the ``QFFNConfig`` field that sets it, read from the executor's options dataclass."""
    return {f.name: f.metadata["config"] for f in fields(executor.Options) if "config" in f.metadata}


class Executor(ABC):
    """Base class of every executor (exact torch, tensor network, branch Monte Carlo, Aer, IBM runtime).

    Attributes:
        name: Registry name of the executor.
        exact: Whether results equal the exact expectation values up to floating-point error.
        Options: Class: the frozen dataclass of the constructor's options (fields made with :func:`option`).
        options: The instance's options, from which :meth:`describe` is generated.
    """

    name: ClassVar[str] = "executor"
    exact: ClassVar[bool] = True
    Options: ClassVar[type] = NoOptions
    options: Any = NoOptions()

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
        """Every constructor option, JSON-able, with ``name`` the registry name, stored with results and checkpoints.

        For the registry's executors, ``make_executor(**executor.describe())`` builds an executor with the
        same description. Generated from :attr:`options`, so it names every field of :attr:`Options`.
        """
        return {"name": self.name} | {f.name: _jsonable(getattr(self.options, f.name)) for f in fields(self.options)}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "name")
        return f"{type(self).__name__}({opts})"


def check_inputs(spec: CircuitSpec, inputs: torch.Tensor, weights: torch.Tensor) -> None:
    """Validate shapes, and under :func:`debug_checks` finiteness, before execution.

    Raises:
        ValueError: On a wrong feature width, a wrong weight count, or (debug mode) NaN/inf values, naming the problem.
    """
    n_in = spec.num_inputs
    if inputs.dim() != 2 or inputs.shape[1] != n_in:
        raise ValueError(
            f"{spec.name}: expected inputs of shape (batch, {n_in}) (last dimension {n_in}), "
            f"got shape {tuple(inputs.shape)}"
        )
    if weights.shape != (spec.num_weights,):
        raise ValueError(f"{spec.name}: expected {spec.num_weights} weights, got shape {tuple(weights.shape)}")
    if not debug_checks():  # each check below waits for the device; a training step would pay it per call
        return
    if not torch.isfinite(inputs).all():
        bad = (~torch.isfinite(inputs)).sum().item()
        raise ValueError(f"{spec.name}: inputs contain {bad} NaN/inf value(s)")
    if not torch.isfinite(weights).all():
        raise ValueError(f"{spec.name}: weights contain NaN/inf values")


class Program(ABC):
    """A compiled spec: ``(inputs (B, n_in), weights (n_w,)) -> expectations (B, n_obs)``, differentiable.

    Subclasses implement :meth:`_run` on one chunk of already validated and cast arguments; :meth:`__call__` is the
    template around it and is not overridden.

    Args:
        spec: The circuit spec.
        dtype: Real dtype the arguments are cast to before :meth:`_run`; ``None`` keeps the inputs' dtype.
        device: Device the arguments are moved to; ``None`` follows the inputs.
        chunk_size: Most tokens per :meth:`_run` call; ``None`` runs the whole batch at once.

    Attributes:
        cast_back: Class flag: return results in the inputs' dtype (programs that compute in float64 outside torch)
            instead of the program's dtype.
    """

    cast_back: ClassVar[bool] = False

    def __init__(
        self,
        spec: CircuitSpec,
        *,
        dtype: torch.dtype | None = None,
        device: str | torch.device | None = None,
        chunk_size: int | None = None,
    ) -> None:
        self.spec, self.dtype, self.device, self.chunk_size = spec, dtype, device, chunk_size

    def __call__(self, inputs: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Expectation values ``(B, n_obs)`` on the inputs' device for inputs ``(B, n_in)`` and weights ``(n_w,)``.

        Raises:
            ValueError: On a wrong feature width or weight count, or (``QLDM_DEBUG=1``) NaN/inf values (one line,
                naming the spec).
        """
        check_inputs(self.spec, inputs, weights)
        dev = self.device or inputs.device
        x = inputs.to(device=dev, dtype=self.dtype or inputs.dtype)  # (B, n_in)
        w = weights.to(device=dev, dtype=self.dtype or weights.dtype)  # (n_w,)
        out_dtype = inputs.dtype if self.cast_back else x.dtype
        batch = x.shape[0]
        if batch == 0:
            return inputs.new_zeros((0, self.spec.num_outputs), dtype=out_dtype)
        self._begin(batch)
        if self.chunk_size is None or batch <= self.chunk_size:
            out = self._run(x, w)  # (B, n_obs)
        else:
            # torch.split (not slicing) so that autograd joins the chunks' input gradients with one cat
            out = torch.cat([self._run(chunk, w) for chunk in x.split(self.chunk_size)])  # (B, n_obs)
        return out.to(device=inputs.device, dtype=out_dtype)

    def _begin(self, batch: int) -> None:
        """Called once per call with the batch size, before the chunks run (noise seeds, per-call memory plans)."""
        return None

    @abstractmethod
    def _run(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Expectation values ``(b, n_obs)`` of one chunk ``x (b, n_in)``, ``b >= 1``, with weights ``w (n_w,)``.

        Both arguments have the right shape and are in the program's dtype and on its device (and finite when
        :func:`debug_checks` is on).
        """
