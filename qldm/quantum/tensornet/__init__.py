"""The tensor-network family: network (ket-and-bra structure), tree (planned contraction) and the executor."""

from qldm.quantum.tensornet.executor import TensorNetworkExecutor, TensorNetworkProgram

__all__ = ["TensorNetworkExecutor", "TensorNetworkProgram"]
