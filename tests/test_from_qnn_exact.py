"""``QuantumLayer.from_qnn`` stands in only for a QNN whose numbers are exact; any other is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from qiskit.circuit import QuantumCircuit
from qiskit.circuit.library import real_amplitudes, zz_feature_map
from qiskit.primitives import StatevectorEstimator
from qiskit_machine_learning.gradients import (
    LinCombEstimatorGradient,
    ParamShiftEstimatorGradient,
    SPSAEstimatorGradient,
)
from qiskit_machine_learning.neural_networks import EstimatorQNN

from qldm.quantum.layer import QuantumLayer


def _qnn(**kwargs) -> EstimatorQNN:
    fm, ansatz = zz_feature_map(2), real_amplitudes(2, reps=1)
    qc = QuantumCircuit(2)
    qc.compose(fm, inplace=True)
    qc.compose(ansatz, inplace=True)
    return EstimatorQNN(circuit=qc, input_params=fm.parameters, weight_params=ansatz.parameters, **kwargs)


def _forward(layer: QuantumLayer, qnn: EstimatorQNN) -> tuple[np.ndarray, np.ndarray]:
    x = np.array([[0.3, -0.7]])
    w = np.linspace(0.1, 0.8, qnn.num_weights)
    layer.weight.data = torch.as_tensor(w, dtype=layer.weight.dtype)
    return layer(torch.as_tensor(x)).detach().numpy(), qnn.forward(x, w)


@pytest.mark.parametrize(
    "make",
    [
        lambda: _qnn(),  # the default estimator, exact mode
        lambda: _qnn(estimator=StatevectorEstimator(), default_precision=0.0),
        lambda: _qnn(
            estimator=(e := StatevectorEstimator()),
            gradient=LinCombEstimatorGradient(e),
            default_precision=0.0,
        ),
        lambda: _qnn(
            estimator=(e := StatevectorEstimator()), gradient=ParamShiftEstimatorGradient(e), default_precision=0
        ),
    ],
)
def test_an_exact_qnn_is_taken_and_agrees(make):
    qnn = make()
    ours, theirs = _forward(QuantumLayer.from_qnn(qnn), qnn)
    assert np.allclose(ours, theirs, atol=1e-10)


def _aer_qnn() -> EstimatorQNN:
    from qiskit_aer.primitives import EstimatorV2

    return _qnn(estimator=EstimatorV2(options={"default_precision": 0.01}))


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda: _qnn(estimator=StatevectorEstimator()), "StatevectorEstimator, precision 0.015625"),  # noisy
        (_aer_qnn, "EstimatorV2"),  # shot-based
        (lambda: _qnn(gradient=SPSAEstimatorGradient(StatevectorEstimator())), "SPSAEstimatorGradient"),
        (
            lambda: _qnn(
                estimator=StatevectorEstimator(), gradient=ParamShiftEstimatorGradient(StatevectorEstimator())
            ),
            "precision",
        ),
    ],
)
def test_a_noisy_shot_based_or_inexact_gradient_qnn_is_refused(make, what):
    qnn = make()
    with pytest.raises(ValueError, match="from_circuit") as err:
        QuantumLayer.from_qnn(qnn)
    assert what in str(err.value) and "\n" not in str(err.value)
