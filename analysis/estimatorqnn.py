"""qiskit-machine-learning's tutorial classifier, trained with ``TorchConnector(EstimatorQNN)`` and the fast layer.

The tutorial ("Torch Connector and Hybrid QNNs", part 1, classification with ``EstimatorQNN``): points uniform in
``[-1, 1]^d`` labelled ``+1`` if their coordinates sum to ``>= 0`` and ``-1`` otherwise, a ``ZZFeatureMap`` +
``RealAmplitudes`` circuit read out with ``EstimatorQNN``'s default observable, small random initial weights, and
full-batch L-BFGS on the summed squared error. :func:`train_both` runs it with both stacks from the same initial
weights, so their loss traces can be compared step by step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["TutorialData", "tutorial_data", "tutorial_qnn", "train_lbfgs", "TrainTrace", "train_both", "loss_table"]


@dataclass(frozen=True)
class TutorialData:
    """Inputs ``x (num_samples, num_inputs)`` and labels ``y (num_samples, 1)`` in ``{-1, +1}``, float64."""

    x: torch.Tensor
    y: torch.Tensor


@dataclass(frozen=True)
class TrainTrace:
    """Loss after each closure evaluation of L-BFGS, final weights, accuracy and wall time of one training run."""

    losses: tuple[float, ...]
    weights: np.ndarray
    accuracy: float
    seconds: float


def tutorial_data(*, num_inputs: int = 2, num_samples: int = 20, seed: int = 42) -> TutorialData:
    """The tutorial's data set: ``x ~ U[-1, 1]^num_inputs``, ``y = +1`` if ``sum(x) >= 0`` else ``-1``."""
    rng = np.random.default_rng(seed)
    x = 2 * rng.random((num_samples, num_inputs)) - 1
    y = 2 * (x.sum(axis=1) >= 0).astype(float) - 1
    return TutorialData(torch.as_tensor(x), torch.as_tensor(y).reshape(-1, 1))


def tutorial_qnn(*, num_inputs: int = 2, reps: int = 1):
    """The tutorial's ``EstimatorQNN``: ``ZZFeatureMap`` + ``RealAmplitudes`` (class API), default observable.

    ``input_gradients=True`` as the tutorial recommends for ``TorchConnector``, and ``default_precision=0`` so that
    the reference estimator returns exact values instead of adding noise of width 1/64.
    """
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import RealAmplitudes, ZZFeatureMap
    from qiskit_machine_learning.neural_networks import EstimatorQNN

    feature_map, ansatz = ZZFeatureMap(num_inputs), RealAmplitudes(num_inputs, reps=reps)
    qc = QuantumCircuit(num_inputs)
    qc.compose(feature_map, inplace=True)
    qc.compose(ansatz, inplace=True)
    return EstimatorQNN(
        circuit=qc,
        input_params=feature_map.parameters,
        weight_params=ansatz.parameters,
        input_gradients=True,
        default_precision=0.0,
    )


def train_lbfgs(model: nn.Module, data: TutorialData, *, max_iter: int = 20) -> TrainTrace:
    """Full-batch L-BFGS on ``MSELoss(reduction="sum")``, as the tutorial; one ``optimizer.step`` of ``max_iter``.

    Returns:
        The loss of every closure call, the final weights, the sign accuracy on the training set and the time.
    """
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=max_iter)
    loss_fn = nn.MSELoss(reduction="sum")
    losses: list[float] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn(model(data.x).double(), data.y)  # TorchConnector returns float32: compare in float64
        loss.backward()
        losses.append(float(loss))
        return loss

    model.train()
    start = time.perf_counter()
    optimizer.step(closure)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        accuracy = float((torch.sign(model(data.x).double()) == data.y).double().mean())
    weights = next(iter(model.parameters())).detach().double().numpy().copy()
    return TrainTrace(tuple(losses), weights, accuracy, seconds)


def train_both(
    *, num_inputs: int = 2, num_samples: int = 20, reps: int = 1, max_iter: int = 20, seed: int = 42
) -> dict[str, TrainTrace]:
    """Train the tutorial classifier with ``TorchConnector(EstimatorQNN)`` and ``QuantumLayer.from_qnn``.

    Both start from the tutorial's initial weights ``0.1 * U[-1, 1]`` (same draw).

    Returns:
        ``{"torchconnector": trace, "fast": trace}``.
    """
    from qiskit_machine_learning.connectors import TorchConnector

    from qldm.quantum.layer import QuantumLayer

    data = tutorial_data(num_inputs=num_inputs, num_samples=num_samples, seed=seed)
    qnn = tutorial_qnn(num_inputs=num_inputs, reps=reps)
    initial = 0.1 * (2 * np.random.default_rng(seed + 1).random(qnn.num_weights) - 1)
    # TorchConnector keeps float32 weights; the fast layer starts from the very same float32 values
    connector = TorchConnector(qnn, initial_weights=initial)
    fast = QuantumLayer.from_qnn(qnn, initial_weights=connector.weight.detach().double())
    return {
        "torchconnector": train_lbfgs(connector, data, max_iter=max_iter),
        "fast": train_lbfgs(fast, data, max_iter=max_iter),
    }


def loss_table(traces: dict[str, TrainTrace]) -> str:
    """A Markdown table of both loss traces side by side, their largest difference, accuracy and wall time.

    Raises:
        ValueError: If ``traces`` lacks one of ``"torchconnector"`` and ``"fast"``.
    """
    if set(traces) != {"torchconnector", "fast"}:
        raise ValueError(f"expected traces 'torchconnector' and 'fast', got {sorted(traces)}")
    ref, fast = traces["torchconnector"], traces["fast"]
    lines = ["| closure call | TorchConnector(EstimatorQNN) loss | fast layer loss | difference |", "|---|---|---|---|"]
    for i, (a, b) in enumerate(zip(ref.losses, fast.losses)):
        lines.append(f"| {i} | {a:.8f} | {b:.8f} | {abs(a - b):.1e} |")
    n = min(len(ref.losses), len(fast.losses))
    diff = max(abs(a - b) for a, b in zip(ref.losses[:n], fast.losses[:n]))
    lines.append("")
    lines.append(f"largest loss difference: {diff:.1e} (TorchConnector computes in float32 weights and outputs)")
    lines.append(f"training accuracy: TorchConnector {ref.accuracy:.2f}, fast {fast.accuracy:.2f}")
    lines.append(
        f"wall time: TorchConnector {ref.seconds:.2f} s, fast {fast.seconds:.3f} s "
        f"({ref.seconds / max(fast.seconds, 1e-9):.0f}x faster on this machine)"
    )
    return "\n".join(lines)
