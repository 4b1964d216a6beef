"""QLDM: a hybrid quantum-classical latent diffusion model on Qiskit."""

from qldm.qffn import QuantumFeedForward
from qldm.quantum import Executor, QuantumLayer, StatevectorExecutor, make_executor

__all__ = ["QuantumFeedForward", "QuantumLayer", "Executor", "StatevectorExecutor", "make_executor"]
__version__ = "0.1.0"
