"""Bring your own circuit, beyond the peer's cases: lowering arbitrary Qiskit circuits (gates, expressions, library
circuits), what cannot be simulated, every exact executor, and the tutorial classifier trained both ways."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from conftest import reference_expectations
from qiskit import QuantumCircuit
from qiskit.circuit import Gate, Parameter, ParameterVector
from qiskit.circuit.library import (
    EfficientSU2,
    PauliEvolutionGate,
    RealAmplitudes,
    UnitaryGate,
    ZZFeatureMap,
    efficient_su2,
    zz_feature_map,
)
from qiskit.quantum_info import SparsePauliOp, random_unitary

from circuits.custom import lower_circuit, spec_from_circuit
from qldm.quantum.aer import AerExecutor
from qldm.quantum.layer import QuantumLayer
from qldm.quantum.statevector import StatevectorExecutor
from qldm.quantum.tensornet import TensorNetworkExecutor

warnings.filterwarnings("ignore", category=DeprecationWarning, module="qiskit")


# ---------------------------------------------------------------- lowering arbitrary circuits
def _spec_matches_qiskit(spec, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    x, w = rng.uniform(-1, 1, (3, spec.num_inputs)), rng.uniform(-1, 1, spec.num_weights)
    layer = QuantumLayer(spec, executor=StatevectorExecutor(dtype=torch.float64))
    layer.weight.data = torch.as_tensor(w)
    np.testing.assert_allclose(
        layer(torch.as_tensor(x)).detach().numpy(), reference_expectations(spec, x, w), atol=1e-10
    )


def test_lowering_gates_expressions_barriers_phase_and_final_measurements():
    x, w = ParameterVector("x", 2), ParameterVector("w", 3)
    qc = QuantumCircuit(3)
    qc.global_phase = 0.7 + w[0]
    qc.h(range(3))
    qc.ry(2 * x[0] + 0.5, 0)
    qc.rz(x[0] * x[1], 1)
    qc.barrier()
    qc.append(RealAmplitudes(2, reps=1).to_gate().control(1), [2, 0, 1])  # composite controlled gate
    qc.cx(0, 1, ctrl_state=0)  # open control: not a standard gate name
    qc.append(UnitaryGate(random_unitary(4, seed=3)), [1, 2])
    qc.append(PauliEvolutionGate(SparsePauliOp(["XZ", "YY"], [0.3, -0.2]), time=w[1]), [0, 2])
    sub = QuantumCircuit(2, name="mine")
    sub.crx(w[2], 0, 1)
    sub.rzz(x[1] - w[2], 0, 1)
    qc.append(sub.to_gate(), [2, 1])
    qc.measure_all()
    ra = [p for p in qc.parameters if p.name.startswith("θ")]
    spec = spec_from_circuit(
        qc, input_params=list(x), weight_params=list(w) + ra, observables=SparsePauliOp.from_list([("XYZ", 0.5)])
    )
    assert spec.circuit.num_clbits == 0 and w[0] in spec.circuit.global_phase.parameters  # phase kept, w[0] too
    assert {"measure", "mine", "PauliEvolution"}.isdisjoint(spec.circuit.count_ops())
    _spec_matches_qiskit(spec)


@pytest.mark.parametrize("library", ["classes", "functions"])
def test_lowering_library_circuits(library):
    n = 3
    if library == "classes":
        fm, an = ZZFeatureMap(n, reps=1), EfficientSU2(n, reps=1)
    else:
        fm, an = zz_feature_map(n, reps=1), efficient_su2(n, reps=1)
    qc = fm.compose(an)
    obs = [SparsePauliOp.from_list([("XXI", 1.0), ("IYZ", -0.5)]), SparsePauliOp("ZZZ")]
    _spec_matches_qiskit(
        spec_from_circuit(qc, input_params=fm.parameters, weight_params=an.parameters, observables=obs)
    )


def test_refuses_what_cannot_be_simulated():
    qc = QuantumCircuit(2, 1)
    qc.h(0)
    qc.measure(0, 0)
    qc.x(0)
    with pytest.raises(ValueError, match="mid-circuit measurement.*'measure'"):
        lower_circuit(qc)
    qc = QuantumCircuit(2)
    qc.h(0)
    qc.reset(1)
    with pytest.raises(ValueError, match="'reset'"):
        QuantumLayer.from_circuit(qc)
    qc = QuantumCircuit(2, 1)
    qc.measure(0, 0)
    with qc.if_test((qc.clbits[0], 1)):
        qc.x(1)
    with pytest.raises(ValueError, match="classical control flow 'if_else'"):
        QuantumLayer.from_circuit(qc)
    qc = QuantumCircuit(1)
    qc.append(Gate("opaque", 1, [Parameter("a")]), [0])
    with pytest.raises(ValueError, match="'opaque'.*no decomposition"):
        lower_circuit(qc)
    with pytest.raises(ValueError, match="Hermitian"):
        QuantumLayer.from_circuit(QuantumCircuit(1), observables=SparsePauliOp("Z", 1j))
    with pytest.raises(ValueError, match="acts on 2 qubits"):
        QuantumLayer.from_circuit(QuantumCircuit(1), observables=SparsePauliOp("ZZ"))


# ---------------------------------------------------------------- every exact executor
def test_every_exact_executor_accepts_custom_layers():
    fm, an = zz_feature_map(3, reps=1), efficient_su2(3, reps=1)
    qc = fm.compose(an)
    qc.measure_all()
    obs = [SparsePauliOp.from_list([("XYZ", 0.5), ("IZX", -1.2)]), SparsePauliOp("ZII")]
    kw = {"input_params": fm.parameters, "weight_params": an.parameters, "observables": obs, "input_gradients": True}
    ref = QuantumLayer.from_circuit(qc, **kw)
    x = torch.rand(5, 3, dtype=torch.float64, requires_grad=True)
    out = ref(x)
    gx, gw = torch.autograd.grad(out.sum(), [x, ref.weight])
    for executor in (TensorNetworkExecutor(dtype=torch.float64), AerExecutor()):
        layer = QuantumLayer.from_circuit(qc, executor=executor, initial_weights=ref.weight.detach(), **kw)
        got = layer(x)
        np.testing.assert_allclose(got.detach().numpy(), out.detach().numpy(), atol=1e-9)
        hx, hw = torch.autograd.grad(got.sum(), [x, layer.weight])
        np.testing.assert_allclose(hx.numpy(), gx.numpy(), atol=1e-8)
        np.testing.assert_allclose(hw.numpy(), gw.numpy(), atol=1e-8)


def test_tensornet_says_when_a_circuit_is_too_entangled():
    qc = efficient_su2(8, reps=3, entanglement="full")
    with pytest.raises(ValueError, match="too entangled for the tensor network"):
        QuantumLayer.from_circuit(
            qc, weight_params=qc.parameters, executor=TensorNetworkExecutor(max_chunk_elements=1000)
        )


@pytest.mark.slow
def test_tutorial_classifier_trains_identically():
    from analysis.estimatorqnn import loss_table, train_both

    traces = train_both(num_samples=8, max_iter=3)
    ref, fast = traces["torchconnector"].losses, traces["fast"].losses
    assert len(ref) == len(fast) >= 3
    np.testing.assert_allclose(fast, ref, atol=1e-5, rtol=0)  # TorchConnector steps float32 weights
    assert "largest loss difference" in loss_table(traces)
