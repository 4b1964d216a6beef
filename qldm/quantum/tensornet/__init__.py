"""The tensor-network family: network (ket-and-bra structure), tree (planned contraction), ring and sweep (the Q-FFN
as real transfer matrices) and the executor."""

from qldm.quantum.tensornet.executor import RingSweepProgram, TensorNetworkExecutor, TensorNetworkProgram

__all__ = ["TensorNetworkExecutor", "TensorNetworkProgram", "RingSweepProgram"]
