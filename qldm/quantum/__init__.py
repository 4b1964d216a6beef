"""Torch execution of circuit specs: executors and the ``QuantumLayer`` module."""

from qldm.quantum.compile import UnsupportedInstructionError, compile_spec
from qldm.quantum.executor import Executor, Program
from qldm.quantum.layer import QuantumLayer
from qldm.quantum.registry import EXECUTORS, make_executor
from qldm.quantum.statevector import StatevectorExecutor

__all__ = [
    "Executor",
    "Program",
    "QuantumLayer",
    "StatevectorExecutor",
    "UnsupportedInstructionError",
    "compile_spec",
    "make_executor",
    "EXECUTORS",
]
