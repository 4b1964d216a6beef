"""The tensor-network family: network (ket-and-bra structure), tree (planned contraction) and the general executor;
ring and sweep (the Q-FFN as real transfer matrices) and the ring executor."""

from qldm.quantum.tensornet.executor import TensorNetworkExecutor, TensorNetworkProgram
from qldm.quantum.tensornet.ring_executor import RingExecutor, RingSweepProgram

__all__ = ["TensorNetworkExecutor", "TensorNetworkProgram", "RingExecutor", "RingSweepProgram"]
