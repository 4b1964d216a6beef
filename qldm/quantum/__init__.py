"""Torch execution of circuit specs: executors, grouped by family, and the ``QuantumLayer`` module.

Families: :mod:`qldm.quantum.statevector` (exact statevector and ancilla-branch executors),
:mod:`qldm.quantum.tensornet` (tensor network; Q-FFN ring sweep) and :mod:`qldm.quantum.aer` (Qiskit Aer).
Executors are built by name only in :mod:`qldm.quantum.registry`.
"""

from qldm.quantum.compile import UnsupportedInstructionError, compile_spec
from qldm.quantum.executor import Executor, Program
from qldm.quantum.layer import QuantumLayer
from qldm.quantum.registry import EXECUTORS, executor_class, make_executor
from qldm.quantum.statevector import BranchExecutor, StatevectorExecutor
from qldm.quantum.tensornet import RingExecutor, TensorNetworkExecutor

__all__ = [
    "BranchExecutor",
    "EXECUTORS",
    "Executor",
    "Program",
    "QuantumLayer",
    "RingExecutor",
    "StatevectorExecutor",
    "TensorNetworkExecutor",
    "UnsupportedInstructionError",
    "compile_spec",
    "executor_class",
    "make_executor",
]
