"""Bring your own circuit: ``QuantumLayer.from_circuit`` / ``from_qnn`` against ``TorchConnector(EstimatorQNN)``.

The circuits, observables and inputs are the peer's own: qiskit-machine-learning's ``test_estimator_qnn.py``
(hand-built 1-2 qubit circuits, single and multiple observables, inputs of rank 0 to 3, no inputs, no weights,
default observables), ``test_torch_connector.py`` (``ZFeatureMap`` + ``RealAmplitudes``) and its documentation
(``qnn_circuit``, ``zz_feature_map`` + ``real_amplitudes``). Every forward and backward must equal the reference
to 1e-6 in float64.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.circuit.library import (
    EfficientSU2,
    RealAmplitudes,
    ZFeatureMap,
    ZZFeatureMap,
    real_amplitudes,
    zz_feature_map,
)
from qiskit.quantum_info import SparsePauliOp
from qiskit_machine_learning.circuit.library import qnn_circuit
from qiskit_machine_learning.connectors import TorchConnector
from qiskit_machine_learning.neural_networks import EstimatorQNN

from qldm.quantum.layer import QuantumLayer

warnings.filterwarnings("ignore", category=DeprecationWarning, module="qiskit")
ATOL = 1e-6


def _qnn(circuit, inputs, weights, observables=None, input_gradients=True) -> EstimatorQNN:
    # default_precision=0: the reference estimator adds Gaussian noise of that width otherwise
    return EstimatorQNN(
        circuit=circuit,
        input_params=inputs,
        weight_params=weights,
        observables=observables,
        input_gradients=input_gradients,
        default_precision=0.0,
    )


def _both(qnn: EstimatorQNN, weights) -> tuple[TorchConnector, QuantumLayer]:
    connector = TorchConnector(qnn, initial_weights=np.asarray(weights, dtype=float))
    layer = QuantumLayer.from_qnn(qnn, initial_weights=connector.weight.detach().double())
    return connector, layer


def _compare(connector: TorchConnector, layer: QuantumLayer, x: torch.Tensor | None, seed: int = 0) -> None:
    """Forward, input gradient and weight gradient of both, for one random upstream gradient.

    ``TorchConnector`` rounds EstimatorQNN's float64 results to float32 (``torch.float``), so it is met to 1e-6
    plus that rounding (relative 2**-23); the float64 values it rounds, from ``EstimatorQNN.forward``/``backward``
    contracted with the same upstream gradient, are met to 1e-6 absolute.
    """
    qnn = connector.neural_network
    connector.zero_grad()
    layer.zero_grad()
    # TorchConnector's own backward breaks on input gradients of rank-3 inputs (its gradient has the wrong
    # shape); there only the float64 EstimatorQNN reference is compared
    rank3 = x is not None and x.dim() >= 3
    xa = None if x is None else x.double().clone().requires_grad_(not rank3)
    xb = None if x is None else x.double().clone().requires_grad_()
    out_a, out_b = connector(xa), layer(xb)
    assert out_a.shape == out_b.shape
    data = None if x is None else x.double().numpy()
    weights = layer.weight.detach().numpy()
    n_out = qnn.output_shape[0]
    ref = qnn.forward(data, weights).reshape(out_b.shape)  # float64
    np.testing.assert_allclose(out_b.detach().numpy(), ref, atol=ATOL, rtol=0)
    np.testing.assert_allclose(out_b.detach().numpy(), out_a.detach().double().numpy(), atol=ATOL, rtol=2**-23)
    if not out_b.requires_grad:  # no parameters at all: nothing flows back (TorchConnector gives None too)
        return
    g = torch.randn(out_a.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    (out_a.double() * g).sum().backward()
    (out_b * g).sum().backward()
    g2 = g.reshape(-1, n_out).numpy()  # (N, n_out)
    input_grad, weight_grad = qnn.backward(data, weights)
    if connector.weight.numel():
        ref_w = np.einsum("no,now->w", g2, weight_grad.reshape(len(g2), n_out, -1))
        np.testing.assert_allclose(layer.weight.grad.numpy(), ref_w, atol=ATOL, rtol=0)
        np.testing.assert_allclose(
            layer.weight.grad.numpy(), connector.weight.grad.double().numpy(), atol=ATOL, rtol=2**-23
        )
    if x is not None and x.numel():
        if qnn.input_gradients:
            ref_x = np.einsum("no,noi->ni", g2, input_grad.reshape(len(g2), n_out, -1)).reshape(xb.shape)
            np.testing.assert_allclose(xb.grad.numpy(), ref_x, atol=ATOL, rtol=0)
            if not rank3:
                np.testing.assert_allclose(xb.grad.numpy(), xa.grad.double().numpy(), atol=ATOL, rtol=2**-23)
        else:
            assert xa.grad is None and xb.grad is None  # input_gradients=False: no gradient to the inputs


def _compare_qnn(qnn: EstimatorQNN, layer: QuantumLayer, data, weights) -> None:
    """Against ``EstimatorQNN.forward``/``backward`` in float64 (also for rank-0 input, which TorchConnector
    refuses): per-sample Jacobians to inputs, summed Jacobians to weights."""
    forward = qnn.forward(data, weights)  # (N, n_out)
    x = None if data is None else torch.as_tensor(np.asarray(data, dtype=float)).requires_grad_()
    out = layer(x)
    np.testing.assert_allclose(out.detach().numpy().reshape(forward.shape), forward, atol=1e-9)  # (..., n_out)
    input_grad, weight_grad = qnn.backward(data, weights)  # (..., n_out, n_in), (..., n_out, n_w)
    n_out = forward.shape[-1]
    input_grad = None if input_grad is None else input_grad.reshape(-1, n_out, qnn.num_inputs)  # (N, n_out, n_in)
    weight_grad = None if weight_grad is None else weight_grad.reshape(-1, n_out, qnn.num_weights)  # (N, n_out, n_w)
    if not out.requires_grad:  # no parameters at all: nothing to differentiate, and the peer returns None
        assert input_grad is None and weight_grad is None
        return
    for k in range(n_out):
        params = [layer.weight] + ([x] if x is not None and qnn.input_gradients else [])
        grads = torch.autograd.grad(out[..., k].sum(), params, retain_graph=True, allow_unused=True)
        if weight_grad is not None:
            np.testing.assert_allclose(grads[0].numpy(), weight_grad[:, k].sum(0), atol=1e-9)
        if input_grad is not None and x is not None and x.numel():
            np.testing.assert_allclose(grads[1].reshape(-1, qnn.num_inputs).numpy(), input_grad[:, k], atol=1e-9)


# ---------------------------------------------------------------- the peer's EstimatorQNN test circuits
def _one_qubit(names=("input1", "weight1")):
    params = [Parameter(n) for n in names]
    qc = QuantumCircuit(1)
    qc.h(0)
    qc.ry(params[0], 0)
    qc.rx(params[1], 0)
    return qc, params


def _two_qubit():
    params = [Parameter(n) for n in ("input1", "input2", "weight1", "weight2")]
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.ry(params[0], 0)
    qc.ry(params[1], 1)
    qc.rx(params[2], 0)
    qc.rx(params[3], 1)
    return qc, params


ZX = SparsePauliOp.from_list([("Z", 1), ("X", 1)])
RANKS_1 = [1.0, [1.0], [[1.0], [2.0]], [[[1.0], [2.0]], [[3.0], [4.0]]]]  # input ranks 0 to 3


def _peer_case(name: str):
    """(circuit, input params, weight params, observables, test inputs, weights, expected forwards)."""
    if name == "shape_1_1":
        qc, p = _one_qubit()
        return qc, p[:1], p[1:], [ZX], RANKS_1, [1.0], [[0.08565359], [-0.90744233], [-1.06623996], [-0.24474149]]
    if name == "shape_2_1":
        qc, p = _two_qubit()
        obs = [SparsePauliOp.from_list([("ZZ", 1), ("XX", 1)])]
        return qc, p[:2], p[2:], obs, [[1.0, 2.0], [[1.0, 2.0], [3.0, 4.0]]], [1.0, 2.0], [[0.41256026], [0.72848859]]
    if name == "shape_1_2":
        qc, p = _one_qubit()
        obs = [ZX, SparsePauliOp.from_list([("Z", 2), ("X", 2)])]
        return qc, p[:1], p[1:], obs, RANKS_1, [1.0], [[0.08565359, 0.17130718], [-0.90744233, -1.81488467]]
    if name == "shape_2_2":
        qc, p = _two_qubit()
        obs = [SparsePauliOp("ZZ"), SparsePauliOp("XX")]
        return qc, p[:2], p[2:], obs, [[1.0, 2.0], [[1.0, 2.0], [3.0, 4.0]]], [1.0, 2.0], [[-0.07873524, 0.4912955]]
    if name == "no_input_parameters":
        qc, p = _one_qubit(("weight0", "weight1"))
        return qc, None, p, [ZX], [None], [1.0, 1.0], [[0.08565359]]
    if name == "no_weight_parameters":
        qc, p = _one_qubit(("input0", "input1"))
        return qc, p, None, [ZX], [[1.0, 1.0]], None, [[0.08565359]]
    if name == "no_parameters":
        qc = QuantumCircuit(1)
        qc.h(0)
        return qc, None, None, [ZX], [None], None, [[1.0]]
    if name == "default_observables":
        qc, p = _one_qubit()
        return qc, p[:1], p[1:], None, [[[1.0], [2.0]]], [1.0], [[-0.45464871], [-0.4912955]]
    if name == "single_observable":
        qc, p = _one_qubit()
        return qc, p[:1], p[1:], ZX, RANKS_1, [1.0], [[0.08565359], [-0.90744233], [-1.06623996], [-0.24474149]]
    raise KeyError(name)


PEER_CASES = [
    "shape_1_1",
    "shape_2_1",
    "shape_1_2",
    "shape_2_2",
    "no_input_parameters",
    "no_weight_parameters",
    "no_parameters",
    "default_observables",
    "single_observable",
]


@pytest.mark.parametrize("input_gradients", [True, False])
@pytest.mark.parametrize("case", PEER_CASES)
def test_peer_estimator_qnn_cases(case, input_gradients):
    qc, inputs, weights, obs, data, w, expected = _peer_case(case)
    qnn = _qnn(qc, inputs, weights, obs, input_gradients=input_gradients)
    layer = QuantumLayer.from_qnn(qnn, initial_weights=w if w is not None else [])
    # the peer's own expected values (its largest-rank input lists every sample)
    got = layer(None if data[-1] is None else torch.tensor(data[-1], dtype=torch.float64))
    np.testing.assert_allclose(
        got.detach().reshape(-1, qnn.output_shape[0]).numpy()[: len(expected)], expected, atol=ATOL
    )
    for item in data:
        _compare_qnn(qnn, layer, item, w if w is not None else [])
        if item is None or np.ndim(item) >= 1:  # TorchConnector refuses rank-0 input; the QNN case covers it
            connector, fast = _both(qnn, w if w is not None else [])
            _compare(connector, fast, None if item is None else torch.tensor(item))


def test_from_circuit_matches_from_qnn_keywords_and_defaults():
    qc, p = _one_qubit()
    layer = QuantumLayer.from_circuit(qc, input_params=p[:1], weight_params=p[1:])
    assert layer.spec.observables[0] == SparsePauliOp("Z")  # EstimatorQNN's default, Z on every qubit
    assert layer.input_gradients is False  # EstimatorQNN's default
    assert layer.weight.dtype == torch.float64 and layer.executor.dtype == torch.float64
    qc2, p2 = _two_qubit()
    spec = QuantumLayer.from_circuit(qc2, input_params=p2[:2], weight_params=p2[2:]).spec
    assert spec.observables[0] == SparsePauliOp("ZZ")
    with pytest.raises(ValueError, match="initial_weights"):
        QuantumLayer.from_circuit(qc, input_params=p[:1], weight_params=p[1:], initial_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="undeclared"):
        QuantumLayer.from_circuit(qc, input_params=p[:1])
    with pytest.raises(ValueError, match="EstimatorQNN"):
        QuantumLayer.from_qnn(object())


# ---------------------------------------------------------------- the peer's TorchConnector cases
@pytest.mark.parametrize(
    "num_qubits, observables",
    [
        (1, None),
        (1, SparsePauliOp.from_list([("Z", 1)])),
        (2, None),
        (2, SparsePauliOp.from_list([("ZZ", 1)])),
        (2, [SparsePauliOp.from_list([("ZI", 1)]), SparsePauliOp.from_list([("IZ", 1)])]),
    ],
)
def test_peer_torch_connector_cases(num_qubits, observables):
    fmap, ansatz = ZFeatureMap(num_qubits, reps=1), RealAmplitudes(num_qubits, reps=1)
    qc = QuantumCircuit(num_qubits)
    qc.compose(fmap, inplace=True)
    qc.compose(ansatz, inplace=True)
    qnn = _qnn(qc, fmap.parameters, ansatz.parameters, observables)
    rng = np.random.default_rng(num_qubits)
    connector, layer = _both(qnn, rng.uniform(-1, 1, qnn.num_weights))
    test_data = [[1.0], [1.0, 2.0], [[1.0, 2.0]], [[1.0], [2.0]], [[[1.0], [2.0]], [[3.0], [4.0]]]]
    for item in test_data:  # the peer's data list, where it fits the input width
        if np.shape(item)[-1] == num_qubits:
            _compare(connector, layer, torch.tensor(item))
    for batch in (1, 2):
        _compare(connector, layer, torch.rand(batch, num_qubits, dtype=torch.float64))


# ---------------------------------------------------------------- the peer's documentation circuits
def _docs_circuits(num_qubits: int):
    qc, fm_params, anz_params = qnn_circuit(num_qubits)  # EstimatorQNN docstring, function API
    yield "qnn_circuit", qc, fm_params, anz_params
    fm, an = zz_feature_map(num_qubits), real_amplitudes(num_qubits)  # docstring, explicit composition
    qc = QuantumCircuit(num_qubits)
    qc.compose(fm, inplace=True)
    qc.compose(an, inplace=True)
    yield "zz+ra functions", qc, fm.parameters, an.parameters
    fm, an = ZZFeatureMap(num_qubits), RealAmplitudes(num_qubits)  # the tutorials' class API
    qc = QuantumCircuit(num_qubits)
    qc.compose(fm, inplace=True)
    qc.compose(an, inplace=True)
    yield "ZZ+RA classes", qc, fm.parameters, an.parameters


@pytest.mark.parametrize("input_gradients", [True, False])
def test_docs_circuits_two_qubits(input_gradients):
    for _, qc, fm_params, anz_params in _docs_circuits(2):
        qnn = _qnn(qc, fm_params, anz_params, input_gradients=input_gradients)
        connector, layer = _both(qnn, np.linspace(-1, 1, qnn.num_weights))
        _compare(connector, layer, torch.rand(3, 2, dtype=torch.float64))
        _compare(connector, layer, torch.rand(2, 2, 2, dtype=torch.float64))


@pytest.mark.slow
def test_docs_circuits_three_qubits_pauli_observables():
    obs = [SparsePauliOp.from_list([("XYZ", 0.5), ("IZX", -1.25), ("YYI", 0.3)]), SparsePauliOp("ZII")]
    for _, qc, fm_params, anz_params in _docs_circuits(3):
        qnn = _qnn(qc, fm_params, anz_params, obs)
        connector, layer = _both(qnn, np.linspace(-1, 1, qnn.num_weights))
        _compare(connector, layer, torch.rand(4, 3, dtype=torch.float64))
    fm, an = ZZFeatureMap(3, reps=1), EfficientSU2(3, reps=1)
    qc = fm.compose(an)
    qnn = _qnn(qc, fm.parameters, an.parameters, obs)
    connector, layer = _both(qnn, np.linspace(-1, 1, qnn.num_weights))
    _compare(connector, layer, torch.rand(3, 3, dtype=torch.float64))
