"""Executors by name, for configs and the command line. Hardware executors live in ``hardware/``."""

from __future__ import annotations

from typing import Any

import torch

from qldm.quantum.executor import Executor

__all__ = ["EXECUTORS", "make_executor", "executor_class"]


def _statevector(**kw: Any) -> Executor:
    from qldm.quantum.statevector import StatevectorExecutor

    return StatevectorExecutor(**kw)


def _tensornet(**kw: Any) -> Executor:
    from qldm.quantum.tensornet import TensorNetworkExecutor

    return TensorNetworkExecutor(**kw)


def _branch(**kw: Any) -> Executor:
    from qldm.quantum.branch import BranchExecutor

    return BranchExecutor(**kw)


def _aer(**kw: Any) -> Executor:
    from qldm.quantum.aer import AerExecutor

    return AerExecutor(**kw)


EXECUTORS = {"statevector": _statevector, "tensornet": _tensornet, "branch": _branch, "aer": _aer}


def make_executor(name: str, **options: Any) -> Executor:
    """Build an executor by registry name.

    Args:
        name: One of ``EXECUTORS`` (``statevector``, ``tensornet``, ``branch``, ``aer``).
        **options: Keyword options of that executor's constructor; ``dtype`` may be given as ``"float64"``.

    Raises:
        ValueError: On an unknown name, listing the valid ones.
    """
    if name not in EXECUTORS:
        raise ValueError(f"unknown quantum executor {name!r}; choose one of {sorted(EXECUTORS)}")
    if isinstance(options.get("dtype"), str):
        options["dtype"] = getattr(torch, options["dtype"])
    return EXECUTORS[name](**options)


def executor_class(name: str) -> type[Executor]:
    """The class behind a registry name (for ``check_spec`` limits without building the executor's state).

    Raises:
        ValueError: On an unknown name, listing the valid ones.
    """
    if name not in EXECUTORS:
        raise ValueError(f"unknown quantum executor {name!r}; choose one of {sorted(EXECUTORS)}")
    return type(EXECUTORS[name]())
