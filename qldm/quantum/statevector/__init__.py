"""The statevector family: plan (gate regrouping), engine (adjoint kernels), readout, and the exact and branch
executors that run on it."""

from qldm.quantum.statevector.branch import BranchExecutor
from qldm.quantum.statevector.engine import PlanEngine
from qldm.quantum.statevector.executor import StatevectorExecutor

__all__ = ["BranchExecutor", "PlanEngine", "StatevectorExecutor"]
