"""QLDM: a hybrid quantum-classical latent diffusion model on Qiskit.

The public names load on first use, so ``import qldm`` (and ``qldm --version`` or ``--help``) never pulls in torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["QuantumFeedForward", "QuantumLayer", "Executor", "StatevectorExecutor", "make_executor"]
__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "QuantumFeedForward": "qldm.qffn",
    "QuantumLayer": "qldm.quantum",
    "Executor": "qldm.quantum",
    "StatevectorExecutor": "qldm.quantum",
    "make_executor": "qldm.quantum",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'qldm' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this hook
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
