"""Executors by name, for configs and the command line: the only place a name becomes an executor.

Hardware executors (``emulator``, ``runtime``) live in ``hardware/`` and are built there.
"""

from __future__ import annotations

import importlib
from types import MappingProxyType
from typing import Any

import torch

from qldm.quantum.executor import Executor

__all__ = ["EXECUTORS", "make_executor", "executor_class"]

#: Registry name -> ``"module:Class"``; modules are imported on first use, so naming an executor costs nothing.
EXECUTORS = MappingProxyType(
    {
        "statevector": "qldm.quantum.statevector.executor:StatevectorExecutor",
        "tensornet": "qldm.quantum.tensornet.executor:TensorNetworkExecutor",
        "ring": "qldm.quantum.tensornet.ring_executor:RingExecutor",
        "branch": "qldm.quantum.statevector.branch:BranchExecutor",
        "aer": "qldm.quantum.aer:AerExecutor",
    }
)


def executor_class(name: str) -> type[Executor]:
    """The class behind a registry name, without building an executor (e.g. for ``check_spec`` limits).

    Raises:
        ValueError: On an unknown name, listing the valid ones.
    """
    if name not in EXECUTORS:
        raise ValueError(f"unknown quantum executor {name!r}; choose one of {sorted(EXECUTORS)}")
    module, cls = EXECUTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_executor(name: str, **options: Any) -> Executor:
    """Build an executor by registry name; ``make_executor(**executor.describe())`` rebuilds an executor.

    Args:
        name: One of ``EXECUTORS`` (``statevector``, ``tensornet``, ``ring``, ``branch``, ``aer``).
        **options: Keyword options of that executor's constructor; ``dtype`` may be a string (``"float64"`` or
            ``"torch.float64"``).

    Raises:
        ValueError: On an unknown name (listing the valid ones) or an unknown dtype name.
    """
    cls = executor_class(name)
    dtype = options.get("dtype")
    if isinstance(dtype, str):
        resolved = getattr(torch, dtype.removeprefix("torch."), None)
        if not isinstance(resolved, torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}; use 'float32' or 'float64'")
        options["dtype"] = resolved
    return cls(**options)
