"""Aer executor against exact simulation, with each Qiskit-stack pitfall shown to be real and handled.

Reference values come from ``qiskit.quantum_info.Statevector`` (forward) and the float64 torch statevector
executor (gradients); a central finite difference of the Aer forward cross-checks the gradients independently.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import reference_expectations
from qiskit import QuantumCircuit
from qiskit.circuit import ParameterVector
from qiskit.primitives import BaseEstimatorV2
from qiskit.quantum_info import SparsePauliOp
from qiskit_aer.primitives import EstimatorV2

from circuits import CircuitSpec, qffn_circuit
from qldm.quantum import QuantumLayer, make_executor
from qldm.quantum.aer import AerExecutor, decompose_for_aer, resolve_aer_device
from qldm.quantum.statevector import StatevectorExecutor

F64 = torch.float64


def controlled_rotation_spec(seed: int = 3) -> CircuitSpec:
    """Seeded random 3-wire circuit: run-time-bound crx, cry, crz and cp on random wiring, plus encodings."""
    rng = np.random.default_rng(seed)
    x, w = ParameterVector("x", 2), ParameterVector("a", 8)  # "a" < "x": spec order differs from PUB order
    qc = QuantumCircuit(3)
    qc.h([0, 1, 2])
    qc.ry(x[0].arctan(), 0)
    qc.rx(x[1], 1)
    gates = ["crx", "cry", "crz", "cp"] * 2
    for k, name in enumerate(gates):
        c, t = (int(q) for q in rng.choice(3, size=2, replace=False))
        getattr(qc, name)(w[k], c, t)
        qc.cx(t, c)
        if name == "cp":
            qc.h(t)  # cp is diagonal: change basis so it affects the Z expectations
        else:
            qc.sx(t)
    obs = (
        SparsePauliOp.from_sparse_list([("Z", [0], 1.0)], 3),
        SparsePauliOp.from_sparse_list([("ZZ", [1, 2], 1.0)], 3),
        SparsePauliOp.from_sparse_list([("X", [2], 0.5), ("Y", [0], 0.5)], 3),
    )
    return CircuitSpec(qc, tuple(x), tuple(w), obs, data_qubits=(0, 1, 2), name=f"ctrl-rot-s{seed}")


SPECS = [lambda: qffn_circuit(2), controlled_rotation_spec]


@pytest.fixture(scope="module")
def qffn_spec() -> CircuitSpec:
    return qffn_circuit(2, n_layers=2, ancillas="per-qubit", readout="ring")


def _data(spec: CircuitSpec, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, spec.num_inputs, generator=g, dtype=F64)
    w = torch.rand(spec.num_weights, generator=g, dtype=F64) * 2 * np.pi
    return x, w


# ------------------------------------------------------------------ forward against exact (pitfall 1)
@pytest.mark.parametrize("method", ["pub", "qnn"])
def test_qffn_matches_statevector(qffn_spec: CircuitSpec, method: str) -> None:
    assert {"crz", "cry"} <= set(qffn_spec.circuit.count_ops())  # the Q-FFN circuit holds the broken gates
    x, w = _data(qffn_spec, 4)
    out = AerExecutor(method=method).compile(qffn_spec)(x, w)
    exact = reference_expectations(qffn_spec, x.numpy(), w.numpy())
    np.testing.assert_allclose(out.numpy(), exact, atol=1e-6)
    assert np.abs(exact).max() > 0.05  # the comparison is not between near-zero numbers


def test_controlled_rotations_pitfall_is_real_and_handled() -> None:
    spec = controlled_rotation_spec()
    assert {"crx", "cry", "crz", "cp"} <= set(spec.circuit.count_ops())
    x, w = _data(spec, 3, seed=1)
    exact = reference_expectations(spec, x.numpy(), w.numpy())
    # raw, undecomposed circuit on Aer, correctly ordered values: Aer reads the controlled angles as 0
    values = spec.parameter_values(x.numpy(), w.numpy())  # (B, P) in circuit.parameters order
    raw = EstimatorV2().run([(spec.circuit, [[o] for o in spec.observables], values)]).result()[0].data.evs.T
    assert np.abs(raw - exact).max() > 1e-2
    for method in ("pub", "qnn"):
        out = AerExecutor(method=method).compile(spec)(x, w)
        np.testing.assert_allclose(out.numpy(), exact, atol=1e-6)
    decomposed = decompose_for_aer(spec.circuit)
    parameterized = [i.operation.name for i in decomposed.data if i.operation.is_parameterized()]
    assert set(parameterized) <= {"rx", "ry", "rz"}


# ------------------------------------------------------------------ parameter order (pitfall 3)
@pytest.mark.parametrize("spec_fn", SPECS, ids=["qffn", "ctrl-rot"])
def test_parameter_order(spec_fn) -> None:
    spec = spec_fn()
    x, w = _data(spec, 3, seed=2)
    exact = reference_expectations(spec, x.numpy(), w.numpy())
    circuit = decompose_for_aer(spec.circuit)  # isolate the ordering effect from pitfall 1
    obs = [[o] for o in spec.observables]
    spec_order = np.concatenate([x.numpy(), np.broadcast_to(w.numpy(), (3, spec.num_weights))], axis=1)
    wrong = EstimatorV2().run([(circuit, obs, spec_order)]).result()[0].data.evs.T
    values = spec.parameter_values(x.numpy(), w.numpy())
    right = EstimatorV2().run([(circuit, obs, values)]).result()[0].data.evs.T
    assert np.abs(wrong - exact).max() > 1e-3
    np.testing.assert_allclose(right, exact, atol=1e-6)
    for method in ("pub", "qnn"):
        np.testing.assert_allclose(AerExecutor(method=method).compile(spec)(x, w).numpy(), exact, atol=1e-6)


# ------------------------------------------------------------------ precision (pitfall 2) and shots
def test_default_precision_pitfall_and_exact_path(qffn_spec: CircuitSpec) -> None:
    from qiskit_machine_learning.neural_networks import EstimatorQNN

    x, w = _data(qffn_spec, 4, seed=3)
    exact = reference_expectations(qffn_spec, x.numpy(), w.numpy())
    circuit = decompose_for_aer(qffn_spec.circuit)
    default_qnn = EstimatorQNN(
        circuit=circuit, estimator=EstimatorV2(), observables=list(qffn_spec.observables),
        input_params=list(qffn_spec.input_params), weight_params=list(qffn_spec.weight_params),
    )  # fmt: skip
    a, b = default_qnn.forward(x.numpy(), w.numpy()), default_qnn.forward(x.numpy(), w.numpy())
    assert np.abs(a - b).max() > 1e-4 and np.abs(a - exact).max() > 1e-4  # library default is noisy
    for method in ("pub", "qnn"):
        program = AerExecutor(method=method).compile(qffn_spec)
        first, second = program(x, w), program(x, w)
        assert torch.equal(first, second)
        np.testing.assert_allclose(first.numpy(), exact, atol=1e-6)


def test_shots_within_standard_error(qffn_spec: CircuitSpec) -> None:
    shots = 4096
    x, w = _data(qffn_spec, 64, seed=4)
    exact = reference_expectations(qffn_spec, x.numpy(), w.numpy())
    executor = AerExecutor(shots=shots)
    assert not executor.exact and executor.precision == pytest.approx(1 / 64)
    program = executor.compile(qffn_spec)
    torch.manual_seed(0)
    noisy = program(x, w).numpy()
    err = noisy - exact  # 128 draws of N(0, 1/sqrt(shots))
    assert np.abs(err).max() < 5 / np.sqrt(shots)
    assert 0.7 < err.std() * np.sqrt(shots) < 1.3
    torch.manual_seed(0)  # noise seed comes from torch's global RNG: replayable (gradient checkpointing)
    np.testing.assert_array_equal(program(x, w).numpy(), noisy)
    assert not np.array_equal(program(x, w).numpy(), noisy)  # and fresh noise on the next call


# ------------------------------------------------------------------ gradients
@pytest.mark.parametrize("method", ["pub", "qnn"])
@pytest.mark.parametrize("spec_fn", SPECS, ids=["qffn", "ctrl-rot"])
def test_gradients_match_exact(spec_fn, method: str) -> None:
    spec = spec_fn()
    x, w = _data(spec, 3, seed=5)
    cot = torch.randn(3, spec.num_outputs, generator=torch.Generator().manual_seed(6), dtype=F64)

    def grads(program):
        xs, ws = x.clone().requires_grad_(), w.clone().requires_grad_()
        return torch.autograd.grad((program(xs, ws) * cot).sum(), [xs, ws])

    aer = AerExecutor(method=method).compile(spec)
    gx, gw = grads(aer)
    rx, rw = grads(StatevectorExecutor(dtype=F64).compile(spec))
    for g, r in ((gx, rx), (gw, rw)):
        assert r.abs().max() > 1e-2
        np.testing.assert_allclose(g.numpy(), r.numpy(), atol=1e-8 + 1e-6 * r.abs().max().item())
    # directional central finite difference of the Aer forward itself
    dx, dw = torch.randn_like(x), torch.randn_like(w)
    eps = 1e-5
    fd = ((aer(x + eps * dx, w + eps * dw) - aer(x - eps * dx, w - eps * dw)) * cot).sum() / (2 * eps)
    assert float(fd) == pytest.approx(float((gx * dx).sum() + (gw * dw).sum()), rel=1e-5, abs=1e-8)


def test_quantum_layer_chunks_and_float32(qffn_spec: CircuitSpec) -> None:
    layer = QuantumLayer(qffn_spec, executor=make_executor("aer", chunk_size=2))
    x = torch.randn(2, 3, qffn_spec.num_inputs, requires_grad=True)  # (..., n_in), 6 tokens in 3 chunks
    out = layer(x)
    assert out.shape == (2, 3, qffn_spec.num_outputs) and out.dtype == torch.float32
    out.sum().backward()
    ref = QuantumLayer(qffn_spec, executor=StatevectorExecutor(dtype=F64))
    ref.weight.data.copy_(layer.weight.data)
    x64 = x.detach().double().requires_grad_()
    ref(x64).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), ref(x64).detach().numpy(), atol=1e-6)
    np.testing.assert_allclose(layer.weight.grad.numpy(), ref.weight.grad.numpy(), atol=1e-5)
    np.testing.assert_allclose(x.grad.numpy(), x64.grad.numpy(), atol=1e-5)


# ------------------------------------------------------------------ configuration and errors
def test_injected_estimator_is_used(qffn_spec: CircuitSpec) -> None:
    class Counting(BaseEstimatorV2):
        def __init__(self) -> None:
            self.inner, self.calls = EstimatorV2(), 0

        def run(self, pubs, *, precision=None):
            self.calls += 1
            return self.inner.run(pubs, precision=precision)

    est = Counting()
    executor = AerExecutor(estimator=est)
    x, w = _data(qffn_spec, 2)
    out = executor.compile(qffn_spec)(x, w)
    assert est.calls == 1 and executor.describe()["device"] == "injected"
    np.testing.assert_allclose(out.numpy(), reference_expectations(qffn_spec, x.numpy(), w.numpy()), atol=1e-6)


def test_device_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    from qiskit_aer import AerSimulator

    monkeypatch.setattr(AerSimulator, "available_devices", lambda self: ("CPU", "GPU"))
    assert resolve_aer_device("auto") == "GPU"
    monkeypatch.setattr(AerSimulator, "available_devices", lambda self: ("CPU",))
    assert resolve_aer_device("auto") == "CPU"
    with pytest.raises(ValueError, match="not available"):
        resolve_aer_device("GPU")
    with pytest.raises(ValueError, match="unknown Aer device"):
        resolve_aer_device("TPU")  # type: ignore[arg-type]


def test_bad_input_errors(qffn_spec: CircuitSpec, monkeypatch) -> None:
    monkeypatch.setenv("QLDM_DEBUG", "1")  # NaN/inf checks run only in debug mode
    program = AerExecutor().compile(qffn_spec)
    x, w = _data(qffn_spec, 2)
    with pytest.raises(ValueError, match="expected inputs of shape"):
        program(torch.zeros(2, 3, dtype=F64), w)
    with pytest.raises(ValueError, match="NaN/inf"):
        program(torch.full_like(x, float("nan")), w)
    with pytest.raises(ValueError, match="unknown Aer method"):
        AerExecutor(method="fast")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="either shots or precision"):
        AerExecutor(shots=100, precision=0.1)
    assert program(x[:0], w).shape == (0, qffn_spec.num_outputs)


def test_seeded_noise_is_reproducible(qffn_spec: CircuitSpec) -> None:
    x, w = _data(qffn_spec, 8, seed=7)
    a = AerExecutor(precision=0.05, seed=11).compile(qffn_spec)
    b = AerExecutor(precision=0.05, seed=11).compile(qffn_spec)
    first = a(x, w)
    torch.testing.assert_close(first, b(x, w), rtol=0, atol=0)  # same seed, same noise
    assert (a(x, w) - first).abs().max() > 1e-3  # the private stream moves on between calls


@pytest.mark.gpu
def test_gpu_device_matches_exact(qffn_spec: CircuitSpec) -> None:
    from qiskit_aer import AerSimulator

    if "GPU" not in AerSimulator().available_devices():
        pytest.skip("qiskit-aer-gpu is not installed or sees no GPU")
    executor = AerExecutor(device="auto")
    assert executor.device == "GPU"
    x, w = _data(qffn_spec, 4)
    exact = reference_expectations(qffn_spec, x.numpy(), w.numpy())
    np.testing.assert_allclose(executor.compile(qffn_spec)(x, w).numpy(), exact, atol=1e-6)
